/*
 * admin_int.h - what the files of the admin verbs share (admin.c,
 * admin_topics.c, admin_groups.c, admin_dlq.c): the call, its argument
 * helpers, and the verbs for the table in admin.c.
 * @thread loop
 */
#ifndef SL_ADMIN_INT_H
#define SL_ADMIN_INT_H

#include <stdint.h>

#include <event2/buffer.h>

#include "broker/admin.h"
#include "broker/json.h"
#include "storage/partition.h"

struct sl_groups;
struct sl_topic;

#define PEEK_MAX 1000

/* Calls still running (waiting for a commit or a redrive) are on
 * b->admin_calls: cancelled at module fini, so nothing answers into a
 * freed HTTP request or reply. */
struct sl_admin_call {
    sl_admin_call *next, *prev; /* b->admin_calls */
    sl_broker *b;
    const sl_admin_args *args;
    struct evbuffer *out;
    sl_jw j;
    char msg[512];
    int wait;    /* answer after the groups commit */
    int pending; /* the verb answers later itself (finish) */
    int in_verb; /* inside the verb function */
    sl_err later_rc;
    int64_t moved, skipped;
    int later_done;
    int cancelled;         /* the requester went away */
    struct adm_copy *copy; /* the arguments, while a read barrier waits */
    sl_admin_done_fn done;
    void *arg;
};

typedef sl_err (*verb_fn)(sl_admin_call *x);

/* Listings show what the caller may describe (broker/acl.c). */
int adm_may_list(const sl_admin_call *x, int kind, const char *name);
/* Arguments: the value of key k (NULL when absent); a non-empty one or
 * SL_ERR_INVALID_ARG naming it; a number within [lo, hi] (dflt when
 * absent). */
const char *adm_arg(const sl_admin_call *x, const char *k);
sl_err adm_need(sl_admin_call *x, const char *k, const char **out);
sl_err adm_int_arg(sl_admin_call *x, const char *k, int64_t lo, int64_t hi,
                   int64_t dflt, int64_t *out);
/* The groups module, or NULL with x->msg set. */
struct sl_groups *adm_groups(sl_admin_call *x);
/* Topic name, or SL_ERR_UNKNOWN_TOPIC with x->msg set. */
sl_err adm_topic_or_fail(sl_admin_call *x, const char *name,
                         struct sl_topic **t);
/* One record as a JSON object (attempts < 0: not shown). */
void adm_record_json(sl_jw *j, int32_t partition, const sl_record *rec,
                     int64_t attempts);
/* Answer x with rc and free it (a verb that answers later calls it). */
void adm_finish(sl_admin_call *x, sl_err rc);
/* admin_dlq.c: the redrive group of a DLQ, and its record counts. */
void adm_redrive_group(const char *dlq, char *buf, size_t len);
int adm_dlq_counts(sl_broker *b, const char *dlq, int64_t *total,
                   int64_t *pending);

/* admin_groups.c: every queue group x topic, sorted by topic then group
 * (the queues and dlq.list verbs); the caller frees r->v (on success
 * only). */
typedef struct qrow {
    char group[256], topic[256], dlq[256];
} qrow;

typedef struct qrows {
    qrow *v;
    size_t n, cap;
    int nomem;
} qrows;
sl_err adm_queue_rows(struct sl_groups *g, qrows *r);

/* admin_groups_cluster.c: in a cluster, the group verbs (groups,
 * queues; group, group.reset, group.delete, queue.purge, queue.peek) are
 * answered for the whole cluster: 1 when the verb must return *rc at once
 * (x answered later by other nodes' help, or an error with x->msg set);
 * 0: answer locally (a single node, this node coordinates the group, or
 * scope=node). A verb calls it first. */
int adm_route(sl_admin_call *x, const char *verb, sl_err *rc);

/* The verbs (admin.c's table). */
sl_err v_connection_close(sl_admin_call *x);
sl_err v_connections(sl_admin_call *x);
sl_err v_dlq_list(sl_admin_call *x);
sl_err v_dlq_purge(sl_admin_call *x);
sl_err v_dlq_redrive(sl_admin_call *x);
sl_err v_dlq_show(sl_admin_call *x);
sl_err v_group(sl_admin_call *x);
sl_err v_group_delete(sl_admin_call *x);
sl_err v_group_reset(sl_admin_call *x);
sl_err v_groups(sl_admin_call *x);
sl_err v_queue_peek(sl_admin_call *x);
sl_err v_queue_purge(sl_admin_call *x);
sl_err v_queues(sl_admin_call *x);
sl_err v_status(sl_admin_call *x);
sl_err v_topic(sl_admin_call *x);
sl_err v_topic_add_partitions(sl_admin_call *x);
sl_err v_topic_alter(sl_admin_call *x);
sl_err v_topic_create(sl_admin_call *x);
sl_err v_topic_delete(sl_admin_call *x);
sl_err v_topics(sl_admin_call *x);
sl_err v_version(sl_admin_call *x);
/* cluster_reassign.c (docs/cluster.md 10):
 *   partition.reassign       topic, partition, replicas "A,B,C"
 *   partition.reassignments  [topic]: the reassignments in progress
 *   cluster.rebalance        spread replicas and leaders evenly
 *   cluster.add_node         node, address (its cluster-listen HOST:PORT)
 *   cluster.remove_node      node: moves its partitions ("moving"), then
 *                            removes it ("removed") */
sl_err v_partition_reassign(sl_admin_call *x);
sl_err v_partition_reassignments(sl_admin_call *x);
sl_err v_cluster_rebalance(sl_admin_call *x);
sl_err v_cluster_add_node(sl_admin_call *x);
sl_err v_cluster_remove_node(sl_admin_call *x);

#endif
