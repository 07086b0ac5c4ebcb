/*
 * cluster_topics.c - topics created and deleted through the metadata
 * quorum (docs/cluster.md 2.6): CREATE_TOPICS and DELETE_TOPICS in
 * cluster mode, and topics auto-created by a produce. Part of the
 * broker's cluster mode (cluster.c); shares cluster_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_int.h"
#include "broker/ops.h"
#include "cluster/node.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- 2 CREATE_TOPICS through the quorum ------------------------------- */

typedef struct create_op create_op;

typedef struct create_one {
    create_op *op;
    char name[256];
    sl_err rc;
    char msg[256];
} create_one;

struct create_op {
    sl_broker *b;
    sl_reply *r; /* NULL once the connection closed */
    uint32_t corr;
    uint32_t n, left;
    create_one *one;
    int del; /* DELETE_TOPICS (same answer layout) */
};

static void create_reply(create_op *op)
{
    sl_create_topics_resp s;
    sl_topic_result *res = calloc(op->n + 1, sizeof(*res));
    sl_wb wb;

    sl_wb_init(&wb, 256);
    if (!res) {
        sl_reply_error(op->r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    memset(&s, 0, sizeof(s));
    s.ntopics = op->n;
    s.topics = res;
    for (uint32_t i = 0; i < op->n; i++) {
        res[i].name = sl_str_c(op->one[i].name);
        res[i].error = op->one[i].rc;
        if (op->one[i].rc != SL_OK)
            res[i].message =
                sl_str_c(op->one[i].msg[0] ? op->one[i].msg
                                           : sl_strerror(op->one[i].rc));
    }
    if ((op->del ? sl_delete_topics_resp_encode(&wb, op->corr, &s)
                 : sl_create_topics_resp_encode(&wb, op->corr, &s)) != SL_OK ||
        sl_reply_add(op->r, wb.p, wb.len) != SL_OK)
        sl_reply_error(op->r, SL_ERR_NOMEM, "out of memory");
    else
        sl_reply_done(op->r);
out:
    free(res);
    sl_wb_fini(&wb);
}

static void create_op_free(create_op *op)
{
    free(op->one);
    free(op);
}

/* A CREATE_TOPICS or DELETE_TOPICS of n topics waiting for the quorum;
 * NULL (and the request answered with NOMEM) when memory is short. */
static create_op *create_op_new(sl_broker *b, sl_reply *r, const sl_req *req,
                                uint32_t n, int del)
{
    create_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->one = calloc(n + 1, sizeof(*op->one)))) {
        free(op);
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    op->b = b;
    op->r = r;
    op->corr = req->correlation_id;
    op->n = n;
    op->del = del;
    return op;
}

static void create_cancel(void *arg)
{
    create_op *op = arg;
    op->r = NULL; /* the completions still come; they free op */
}

static void create_done(void *arg, sl_err rc, const char *msg)
{
    create_one *one = arg;
    create_op *op = one->op;
    one->rc = rc;
    if (msg && msg[0])
        snprintf(one->msg, sizeof(one->msg), "%s", msg);
    if (rc == SL_OK)
        sl_bcluster_reconcile(
            op->b); /* the partitions exist here before the answer */
    if (--op->left > 0)
        return;
    if (op->r) {
        sl_reply_set_cancel(op->r, NULL, NULL);
        create_reply(op);
    }
    create_op_free(op);
}

static int live_nodes(const sl_meta *m)
{
    int n = 0;
    for (size_t i = 0; i < m->nnodes; i++)
        n += !m->nodes[i].fenced;
    return n;
}

/* Validate one topic and propose it; on a local refusal, fill one->rc. */
static void create_propose(sl_broker *b, const sl_create_topic *ct,
                           create_one *one)
{
    const sl_meta *m = &b->cluster->image;
    int64_t rf = 0;
    int32_t np = ct->partitions ? (int32_t)ct->partitions
                                : (int32_t)b->cfg.default_partitions;
    const char **keys = calloc(ct->nconfigs + 1, sizeof(char *));
    const char **vals = calloc(ct->nconfigs + 1, sizeof(char *));
    char **own = calloc(2 * ct->nconfigs + 1, sizeof(char *));
    int32_t *rep = NULL;
    uint32_t nk = 0, no = 0;
    const char *fwd_to = NULL;
    sl_wb wb;

    sl_wb_init(&wb, 256);
    one->rc = SL_OK;
    if (sl_bcluster_not_leader_msg(b, one->msg, sizeof(one->msg))) {
        /* not the leader: validated and placed here (from this node's
         * image, which may lag the leader's by a heartbeat; apply on the
         * leader checks it again), then forwarded */
        fwd_to = sl_bcluster_leader_addr(b, one->msg, sizeof(one->msg));
        if (!fwd_to) {
            one->rc = SL_ERR_BUSY;
            goto out;
        }
        one->msg[0] = 0;
    }
    if (!keys || !vals || !own) {
        one->rc = SL_ERR_NOMEM;
        goto out;
    }
    if (sl_topic_name_check(one->name, strlen(one->name)) != SL_OK) {
        one->rc = SL_ERR_INVALID_TOPIC;
        snprintf(one->msg, sizeof(one->msg),
                 "invalid topic name: use 1..249 of [A-Za-z0-9._-]");
        goto out;
    }
    if (ct->partitions > 10000) {
        one->rc = SL_ERR_INVALID_CONFIG;
        snprintf(one->msg, sizeof(one->msg),
                 "%u partitions is more than "
                 "10000",
                 ct->partitions);
        goto out;
    }
    for (uint32_t k = 0; k < ct->nconfigs; k++) {
        const sl_kv *kv = &ct->configs[k];
        char *key = kv->key.p ? strndup(kv->key.p, kv->key.len) : NULL;
        char *val = kv->value.p ? strndup(kv->value.p, kv->value.len) : NULL;
        if (key)
            own[no++] = key;
        if (val)
            own[no++] = val;
        if (!key || !val) {
            one->rc = SL_ERR_INVALID_CONFIG;
            snprintf(one->msg, sizeof(one->msg), "config %u: null key/value",
                     k);
            goto out;
        }
        if (!strcmp(key, "replication-factor")) {
            char *e;
            rf = strtoll(val, &e, 10);
            if (*e || rf < 1 || rf > SL_META_MAX_RF) {
                one->rc = SL_ERR_INVALID_CONFIG;
                snprintf(one->msg, sizeof(one->msg),
                         "replication-factor '%s' is not in 1..%d", val,
                         SL_META_MAX_RF);
                goto out;
            }
            continue;
        }
        keys[nk] = key;
        vals[nk] = val;
        nk++;
    }
    {
        /* refuse bad configs before they reach the log: every node
         * creates the topic from it and would refuse them there */
        sl_part_cfg pc;
        one->rc = sl_config_part_cfg(&b->cfg, keys, vals, nk, &pc, one->msg,
                                     sizeof(one->msg));
        if (one->rc != SL_OK)
            goto out;
    }
    if (rf == 0) {
        rf = b->cfg.cluster_replication_factor;
        if (rf > live_nodes(m))
            rf = live_nodes(m) > 0 ? live_nodes(m) : 1;
    }
    rep = calloc((size_t)np * (size_t)rf + 1, sizeof(int32_t));
    if (!rep) {
        one->rc = SL_ERR_NOMEM;
        goto out;
    }
    one->rc = sl_meta_place(m, one->name, np, (int32_t)rf, rep, one->msg,
                            sizeof(one->msg));
    if (one->rc != SL_OK)
        goto out;
    sl_meta_enc_create_topic(&wb, one->name, np, (int32_t)rf, keys, vals, nk,
                             rep);
    if (wb.err) {
        one->rc = SL_ERR_NOMEM;
        goto out;
    }
    if (fwd_to) {
        one->rc =
            sl_bcluster_forward(b, fwd_to, wb.p, wb.len, create_done, one);
        if (one->rc != SL_OK)
            snprintf(one->msg, sizeof(one->msg),
                     "cannot forward to the metadata leader at %s", fwd_to);
    } else {
        one->rc = sl_cluster_propose(b->cluster->node, wb.p, wb.len,
                                     create_done, one);
    }
out:
    for (uint32_t i = 0; i < no; i++)
        free(own[i]);
    free(own);
    free(keys);
    free(vals);
    free(rep);
    sl_wb_fini(&wb);
}

void sl_bcluster_h_create_topics(sl_broker *b, sl_conn *c, const sl_req *req,
                                 sl_reply *r)
{
    sl_arena a;
    sl_create_topics_req q;
    create_op *op = NULL;
    uint32_t proposed = 0;
    (void)c;

    sl_arena_init(&a);
    if (sl_create_topics_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "CREATE_TOPICS: bad body");
        goto out;
    }
    if (!(op = create_op_new(b, r, req, q.ntopics, 0)))
        goto out;
    for (uint32_t i = 0; i < q.ntopics; i++) {
        create_one *one = &op->one[i];
        const sl_str *nm = &q.topics[i].name;
        one->op = op;
        snprintf(one->name, sizeof(one->name), "%.*s",
                 nm->p ? (int)(nm->len < 255 ? nm->len : 255) : 0,
                 nm->p ? nm->p : "");
        create_propose(b, &q.topics[i], one);
        if (one->rc == SL_OK)
            proposed++;
    }
    op->left = proposed;
    if (proposed == 0) {
        create_reply(op);
        create_op_free(op);
    } else {
        sl_reply_set_cancel(r, create_cancel, op);
    }
out:
    sl_arena_fini(&a);
}

/* ---- 3 DELETE_TOPICS through the quorum -------------------------------
 * A DELETE_TOPIC command per topic, proposed here or forwarded to the
 * metadata leader; every node deletes its copy when it applies it
 * (reconcile_deleted), this one before it answers. */

static void delete_done(void *arg, sl_err rc, const char *msg)
{
    create_done(arg, rc, msg); /* the same bookkeeping; reconcile deletes */
}

void sl_bcluster_h_delete_topics(sl_broker *b, sl_conn *c, const sl_req *req,
                                 sl_reply *r)
{
    sl_arena a;
    sl_delete_topics_req q;
    create_op *op = NULL;
    uint32_t proposed = 0;
    (void)c;

    sl_arena_init(&a);
    if (sl_delete_topics_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "DELETE_TOPICS: bad body");
        goto out;
    }
    if (!(op = create_op_new(b, r, req, q.ntopics, 1)))
        goto out;
    for (uint32_t i = 0; i < q.ntopics; i++) {
        create_one *one = &op->one[i];
        const sl_str *nm = &q.topics[i];
        sl_wb wb;
        one->op = op;
        snprintf(one->name, sizeof(one->name), "%.*s",
                 nm->p ? (int)(nm->len < 255 ? nm->len : 255) : 0,
                 nm->p ? nm->p : "");
        if (!sl_meta_topic_find(&b->cluster->image, one->name)) {
            one->rc = SL_ERR_UNKNOWN_TOPIC;
            snprintf(one->msg, sizeof(one->msg),
                     "unknown topic '%.200s' (not in the cluster's "
                     "metadata)",
                     one->name);
            continue;
        }
        sl_wb_init(&wb, 64);
        sl_meta_enc_delete_topic(&wb, one->name);
        one->rc = wb.err
                      ? SL_ERR_NOMEM
                      : sl_bcluster_propose(b, wb.p, wb.len, delete_done, one);
        sl_wb_fini(&wb);
        if (one->rc == SL_OK)
            proposed++;
        else
            snprintf(one->msg, sizeof(one->msg),
                     "cannot delete through the cluster now: %s; retry",
                     sl_strerror(one->rc));
    }
    op->left = proposed;
    if (proposed == 0) {
        create_reply(op);
        create_op_free(op);
    } else {
        sl_reply_set_cancel(r, create_cancel, op);
    }
out:
    sl_arena_fini(&a);
}

/* ---- topics auto-created through the quorum ---------------------------
 *
 * A produce (or a STOMP destination, a queue group) naming a topic that
 * does not exist, with auto-create-topics on, creates it like `topic
 * create` would, through the metadata log: default-partitions partitions,
 * cluster-replication-factor (capped to the live nodes), no configs. One
 * difference: the node that got the request is made the first replica
 * (the leader) of every partition it holds a replica of, so a client that
 * wrote to it can keep writing to it (clients do not route by leader yet,
 * section 5). A binary PRODUCE waits for the topic (its body is copied)
 * and runs again once the topic exists on this node; other callers get
 * UNKNOWN_TOPIC now and find the topic on their next try. */

void sl_bcluster_ac_run(sl_broker *b, ac_pending *a)
{
    ac_pending **pp;
    for (pp = &b->cluster->acs; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    while (a->waits) {
        ac_wait *w = a->waits;
        a->waits = w->next;
        if (w->r) {
            sl_reply_set_cancel(w->r, NULL, NULL);
            if (a->rc != SL_OK) {
                char msg[320];
                snprintf(msg, sizeof(msg),
                         "topic '%s' could not be auto-created through the "
                         "cluster: %s",
                         a->name, sl_strerror(a->rc));
                sl_reply_error(w->r, a->rc, msg);
            } else {
                b->no_defer = 1;
                w->fn(b, w->c, &w->req, w->r);
                b->no_defer = 0;
            }
        }
        free(w->req.body);
        free(w);
    }
    free(a);
}

void sl_bcluster_ac_poll(sl_broker *b)
{
    ac_pending *a, *next;
    for (a = b->cluster->acs; a; a = next) {
        int32_t np;
        next = a->next;
        if (a->done &&
            (a->rc != SL_OK ||
             sl_ops_topic_get(b, a->name, SL_OPS_NO_CREATE, &np) == SL_OK))
            sl_bcluster_ac_run(b, a);
    }
}

static void ac_done(void *arg, sl_err rc, const char *msg)
{
    ac_pending *a = arg;
    sl_broker *b = a->b;
    a->done = 1;
    a->rc = rc == SL_ERR_TOPIC_EXISTS ? SL_OK : rc;
    if (a->rc != SL_OK) {
        sl_log(SL_WARN, "cluster", "auto-create of topic %s failed: %s",
               a->name, msg && msg[0] ? msg : sl_strerror(rc));
        sl_bcluster_ac_run(b, a);
        return;
    }
    sl_bcluster_reconcile(
        b); /* creates it here if the image has it; runs ac_poll */
}

static void ac_cancel(void *arg)
{
    ((ac_wait *)arg)->r = NULL;
}

static ac_pending *ac_start(sl_broker *b, const char *topic, sl_err *rc)
{
    const sl_meta *m = &b->cluster->image;
    ac_pending *a;
    int32_t np = (int32_t)b->cfg.default_partitions, rf, self;
    int32_t *rep;
    char msg[256];
    sl_wb wb;

    for (a = b->cluster->acs; a; a = a->next)
        if (!strcmp(a->name, topic))
            return a;
    self = (int32_t)b->cfg.node_id;
    rf = (int32_t)b->cfg.cluster_replication_factor;
    if (rf > live_nodes(m))
        rf = live_nodes(m) > 0 ? live_nodes(m) : 1;
    if (np < 1)
        np = 1;
    rep = calloc((size_t)np * (size_t)rf, sizeof(*rep));
    a = calloc(1, sizeof(*a));
    if (!rep || !a) {
        free(rep);
        free(a);
        *rc = SL_ERR_NOMEM;
        return NULL;
    }
    *rc = sl_meta_place(m, topic, np, rf, rep, msg, sizeof(msg));
    if (*rc != SL_OK) {
        sl_log(SL_WARN, "cluster", "auto-create of topic %s: %s", topic, msg);
        free(rep);
        free(a);
        return NULL;
    }
    for (int32_t p = 0; p < np; p++) { /* this node leads what it holds */
        int32_t *r = rep + (size_t)p * (size_t)rf;
        for (int32_t k = 1; k < rf; k++)
            if (r[k] == self) {
                r[k] = r[0];
                r[0] = self;
            }
    }
    a->b = b;
    snprintf(a->name, sizeof(a->name), "%s", topic);
    sl_wb_init(&wb, 256);
    sl_meta_enc_create_topic(&wb, topic, np, rf, NULL, NULL, 0, rep);
    free(rep);
    *rc = wb.err ? SL_ERR_NOMEM
                 : sl_bcluster_propose(b, wb.p, wb.len, ac_done, a);
    sl_wb_fini(&wb);
    if (*rc != SL_OK) {
        free(a);
        return NULL;
    }
    a->next = b->cluster->acs;
    b->cluster->acs = a;
    sl_log(SL_INFO, "cluster", "auto-creating topic %s through the quorum",
           topic);
    return a;
}

sl_err sl_bcluster_auto_create(sl_broker *b, const char *topic)
{
    sl_err rc = SL_OK;
    ac_start(b, topic, &rc);
    return SL_ERR_UNKNOWN_TOPIC;
}

sl_err sl_bcluster_defer_create(sl_broker *b, const char *topic, sl_conn *c,
                                const sl_req *req, sl_reply *r,
                                sl_binary_handler fn)
{
    sl_err rc = SL_OK;
    ac_pending *a = ac_start(b, topic, &rc);
    ac_wait *w, **pw;
    if (!a)
        return rc;
    w = calloc(1, sizeof(*w));
    if (!w)
        return SL_ERR_NOMEM;
    w->req = *req;
    w->req.body = malloc(req->len + 1);
    if (!w->req.body) {
        free(w);
        return SL_ERR_NOMEM;
    }
    memcpy(w->req.body, req->body, req->len);
    w->req.peer = NULL;
    w->r = r;
    w->c = c;
    w->fn = fn;
    /* appended: the waiting requests run in the order they came, so a
     * producer's pipelined batches keep their order (and sequences) */
    for (pw = &a->waits; *pw; pw = &(*pw)->next)
        ;
    *pw = w;
    sl_reply_set_cancel(r, ac_cancel, w);
    return SL_OK;
}
