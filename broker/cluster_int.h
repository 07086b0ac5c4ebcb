/*
 * cluster_int.h - what broker/cluster.c, cluster_fwd.c and
 * cluster_topics.c share: the loop's cluster state and the functions each
 * file offers the others. @thread loop
 */
#ifndef SL_BROKER_CLUSTER_INT_H
#define SL_BROKER_CLUSTER_INT_H

#include <stddef.h>

#include <event2/util.h>

#include "broker/binary.h"
#include "broker/cluster.h"
#include "broker/cluster_ops.h"
#include "broker/forward.h"
#include "broker/replica.h"
#include "cluster/meta.h"
#include "cluster/node.h"

struct fwd;

struct sl_bcluster {
    sl_cluster_node *node;
    sl_meta image; /* the loop's copy, @thread loop */
    struct event *drain_ev;
    sl_replicas *replicas; /* followers' fetchers (replica.c) */
    sl_fwd *fwd;           /* appends sent to their leader (forward.c) */
    char **known;          /* topic names of the image at the last drain */
    size_t nknown;
    struct event *reg_ev; /* until the image holds our addresses */
    int reg_inflight;
    int64_t reg_sent_ms;    /* when the registration in flight was sent */
    struct fwd *fwds;       /* forwards in flight (stop completes them) */
    struct fwd *ri_link;    /* READ_INDEX's open connection (in fwds) */
    struct ac_pending *acs; /* auto-creations in flight */
    sl_bops *ops;           /* operations (cluster_ops.c) */
    struct sl_bread *rd;    /* read barriers (cluster_read.c) */
    int test_delay_ms;      /* SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS */
    struct event *delay_ev;
};

/* A topic auto-created through the quorum, and the requests waiting for
 * it (docs/cluster.md 2.6). */
typedef struct ac_wait {
    struct ac_wait *next;
    sl_reply *r; /* NULL once the connection closed */
    sl_conn *c;
    sl_req req; /* body copied */
    sl_binary_handler fn;
} ac_wait;

typedef struct ac_pending {
    struct ac_pending *next;
    sl_broker *b;
    char name[256];
    int done; /* the log answered: run the waiters once it exists here */
    sl_err rc;
    ac_wait *waits;
} ac_pending;

/* cluster.c: create locally what the image has and this node lacks;
 * delete what it no longer has. */
void sl_bcluster_reconcile(sl_broker *b);

/* cluster_fwd.c */
/* Send cmd to the node at addr; fn(arg, rc, msg) runs exactly once, later,
 * if this returns SL_OK (never from inside this call). */
sl_err sl_bcluster_forward(sl_broker *b, const char *addr, const void *cmd,
                           size_t len, sl_cluster_done_fn fn, void *arg);
/* Complete f with rc (if not yet) and free it. */
void sl_bcluster_fwd_finish(struct fwd *f, sl_err rc, const char *msg);
/* The metadata leader's binary address, or NULL (msg says why). */
const char *sl_bcluster_leader_addr(sl_broker *b, char *msg, size_t len);
/* 1 with msg naming the leader when this node is not the metadata
 * leader, else 0. */
int sl_bcluster_not_leader_msg(sl_broker *b, char *msg, size_t len);
/* 30 CLUSTER_FORWARD */
void sl_bcluster_h_forward(sl_broker *b, sl_conn *c, const sl_req *req,
                           sl_reply *r);
/* reg_ev's callback: register this node's addresses through the leader */
void sl_bcluster_reg_cb(evutil_socket_t fd, short what, void *arg);

/* cluster_read.c */
/* READ_INDEX: a CLUSTER_FORWARD request (u8 version, u8 type, nothing
 * else) that is answered, not logged: the leader's applied index. */
#define SL_BREQ_READ_INDEX 40
/* fn(arg, rc, msg) once this node's image applied index (or after the
 * bound); never from inside this call. */
void sl_bcluster_after_index(sl_broker *b, uint64_t index, sl_err rc,
                             const char *msg, sl_cluster_done_fn fn, void *arg);
/* On the metadata leader: fn(arg, SL_OK, "") once its copy holds every
 * change committed before its term (sl_cluster_leader_ready), or
 * SL_ERR_BUSY when it lost the leadership or that took two election
 * timeouts; never from inside this call. */
void sl_bcluster_after_ready(sl_broker *b, sl_cluster_done_fn fn, void *arg);
/* The leader answered READ_INDEX request arg (from cluster_fwd.c) with
 * its read index: wait for this node's image, then end the barrier. */
void sl_bcluster_read_answered(sl_broker *b, void *arg, uint64_t index);
/* After each drain: run the waiters the image reached. */
void sl_bcluster_read_check(sl_broker *b);
/* Stop: complete every waiter (after the forwards in flight). */
void sl_bcluster_read_stop(sl_broker *b);

/* cluster_topics.c */
void sl_bcluster_h_create_topics(sl_broker *b, sl_conn *c, const sl_req *req,
                                 sl_reply *r);
void sl_bcluster_h_delete_topics(sl_broker *b, sl_conn *c, const sl_req *req,
                                 sl_reply *r);
/* Run the requests waiting for auto-created topics that now exist. */
void sl_bcluster_ac_poll(sl_broker *b);
/* Answer or run a's waiting requests, unlink and free a. */
void sl_bcluster_ac_run(sl_broker *b, ac_pending *a);
/* b->auto_create and b->defer_create (broker.h) */
sl_err sl_bcluster_auto_create(sl_broker *b, const char *topic);
sl_err sl_bcluster_defer_create(sl_broker *b, const char *topic, sl_conn *c,
                                const sl_req *req, sl_reply *r,
                                sl_binary_handler fn);

#endif
