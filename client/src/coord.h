/*
 * coord.h - finding a group's coordinator in a cluster (docs/cluster.md
 * 6): the leader of partition fnv1a32(group) mod partitions of the group
 * state topic, asked with METADATA version 2. Queue consumers and stream
 * consumers with a group.id keep their group connection there.
 *
 * The lookup is asked of any node that answers: the bootstrap list, then
 * the brokers the last METADATA reply named (as a Kafka consumer asks
 * the nodes of its metadata, not only its bootstrap servers). A
 * bootstrap list gone stale (its nodes dead, or restarted at other
 * addresses) does not cut a consumer off from a cluster that still runs.
 */
#ifndef SL_CLIENT_COORD_H
#define SL_CLIENT_COORD_H

#include "client/src/conn.h"

/* Brokers remembered from the last METADATA reply (a larger cluster:
 * the first ones; any live node answers a lookup). */
#define SL_CL_COORD_KNOWN 16

typedef struct sl_cl_coord {
    char host[256], port[16]; /* conn->fixed_host/port point here */
    /* the brokers the last METADATA reply named, at the address this
     * client uses (their TLS address over TLS) */
    struct {
        char host[256], port[16];
    } known[SL_CL_COORD_KNOWN];
    int nknown;
} sl_cl_coord;

/* Connect conn if it is not: through the bootstrap list (none of it
 * answering: the brokers the last METADATA reply named), then, in a
 * cluster, to the coordinator of group (a single node, a cluster without
 * the state topic yet, or an unreachable coordinator: the connection to
 * whichever node answered stays). Like sl_cl_conn_ensure otherwise:
 * within reconnect.backoff.ms of a round on which no node answered it
 * fails at once with SL_ERR_DISCONNECTED. */
sl_err sl_cl_coord_ensure(sl_cl_conn *conn, const char *group, sl_cl_coord *co);
/* conn is connected: move it to group's coordinator if another node is.
 * Any failure keeps the connection as it is. */
void sl_cl_coord_move(sl_cl_conn *conn, const char *group, sl_cl_coord *co);

#endif
