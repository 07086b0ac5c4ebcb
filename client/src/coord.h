/*
 * coord.h - finding a group's coordinator in a cluster (docs/cluster.md
 * 6): the leader of partition fnv1a32(group) mod partitions of the group
 * state topic, asked with METADATA version 2. Queue consumers and stream
 * consumers with a group.id keep their group connection there.
 */
#ifndef SL_CLIENT_COORD_H
#define SL_CLIENT_COORD_H

#include "client/src/conn.h"

typedef struct sl_cl_coord {
    char host[256], port[16]; /* conn->fixed_host/port point here */
} sl_cl_coord;

/* Connect conn if it is not: through the bootstrap list, then, in a
 * cluster, to the coordinator of group (a single node, a cluster without
 * the state topic yet, or an unreachable coordinator: the bootstrap
 * connection stays). Like sl_cl_conn_ensure otherwise. */
sl_err sl_cl_coord_ensure(sl_cl_conn *conn, const char *group, sl_cl_coord *co);
/* conn is connected: move it to group's coordinator if another node is.
 * Any failure keeps the connection as it is. */
void sl_cl_coord_move(sl_cl_conn *conn, const char *group, sl_cl_coord *co);

#endif
