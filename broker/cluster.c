/*
 * cluster.c - the broker's side of cluster mode (docs/cluster.md): starts
 * this node's member of the metadata quorum (cluster/node.c), keeps the
 * loop's copy of the metadata image, answers CLUSTER_STATUS from it on
 * every node, and sends topic creation through the quorum.
 *
 * The Raft thread calls notify() after each applied command; that activates
 * drain_ev on the loop, which applies the same commands to b->cluster->image
 * (cluster/node.h) and then creates, on this node, the partitions of every
 * topic the image has and the local registry lacks. A CREATE_TOPICS is
 * answered when its command was applied to the loop's image, so a describe
 * on the same node right after it sees the topic.
 *
 * Without --node-id none of this runs (sl_bcluster_start returns at once)
 * except CLUSTER_STATUS, which answers node_id 0 ("a single node").
 *
 * Not yet built (docs/cluster.md section 9): forwarding a metadata write
 * from a follower to the leader (a follower answers SL_ERR_BUSY naming the
 * leader), DELETE_TOPICS through the quorum (refused in cluster mode),
 * partition data replication and leadership enforcement on produce/fetch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_ops.h"
#include "broker/cluster_users.h"
#include "broker/forward.h"
#include "broker/group_state.h"
#include "broker/ops.h"
#include "broker/peer_auth.h"
#include "broker/replica.h"
#include "cluster/node.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

struct sl_bcluster {
    sl_cluster_node *node;
    sl_meta image; /* the loop's copy, @thread loop */
    struct event *drain_ev;
    sl_replicas *replicas; /* followers' fetchers (replica.c) */
    sl_fwd *fwd;           /* appends sent to their leader (forward.c) */
    char **known;          /* topic names of the image at the last drain */
    size_t nknown;
    struct event *reg_ev;  /* until the image holds our addresses */
    int reg_inflight;
    struct fwd *fwds; /* forwards in flight (stop completes them) */
    struct ac_pending *acs; /* auto-creations in flight */
    sl_bops *ops;           /* operations (cluster_ops.c) */
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

static void ac_poll(sl_broker *b);

/* ---- forwarding a command to the metadata leader -----------------------
 *
 * A node that is not the metadata leader sends a command (its own
 * REGISTER_NODE, a CREATE_TOPIC a client asked it for) to the leader's
 * binary port as CLUSTER_FORWARD, on a connection of its own, and gets
 * the result once the leader applied it. One connection per command:
 * metadata writes are rare. */

typedef struct fwd {
    struct fwd *next, **pprev; /* in sl_bcluster.fwds */
    struct bufferevent *bev;
    sl_cluster_done_fn fn;
    void *arg;
    int done;
    sl_peer_login login; /* with a cluster secret (peer_auth.c) */
} fwd;

static void fwd_finish(fwd *f, sl_err rc, const char *msg)
{
    if (!f->done) {
        f->done = 1;
        f->fn(f->arg, rc, msg);
    }
    if (f->pprev) {
        *f->pprev = f->next;
        if (f->next)
            f->next->pprev = f->pprev;
    }
    bufferevent_free(f->bev);
    free(f);
}

static void fwd_read_cb(struct bufferevent *bev, void *arg)
{
    fwd *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t avail = evbuffer_get_length(in), flen = 0;
    const uint8_t *p;
    uint32_t corr;
    sl_rd rd;
    int32_t err;
    char msg[256] = "";

    int prc;

    if (f->login.left) {
        prc = sl_peer_login_read(&f->login, in, msg, sizeof(msg));
        if (prc < 0) {
            sl_peer_login_warn("cluster", 0, "metadata leader", msg);
            fwd_finish(f, SL_ERR_AUTHENTICATION_FAILED, msg);
        }
        if (prc <= 0)
            return;
        avail = evbuffer_get_length(in);
    }
    if (avail < 4)
        return;
    p = evbuffer_pullup(in, 4);
    prc = p ? sl_frame_peek(p, 4, 1u << 20, &flen) : SL_ERR_NOMEM;
    if (prc == SL_FRAME_PARTIAL && avail < flen)
        return;
    if ((prc != SL_FRAME_PARTIAL && prc != SL_OK) ||
        flen < SL_RESP_HDR_SIZE + 4 ||
        !(p = evbuffer_pullup(in, (ssize_t)flen)) ||
        sl_resp_hdr_decode(p, flen, &corr) != SL_OK) {
        fwd_finish(f, SL_ERR_PROTOCOL, "bad reply from the metadata leader");
        return;
    }
    sl_rd_init(&rd, p + SL_RESP_HDR_SIZE, flen - SL_RESP_HDR_SIZE);
    err = (int32_t)sl_rd_u32(&rd);
    if (err != SL_OK && sl_rd_left(&rd) >= 2) {
        uint16_t n = 0;
        const char *m = sl_rd_str16(&rd, &n);
        if (m)
            snprintf(msg, sizeof(msg), "%.*s", (int)n, m);
    }
    fwd_finish(f, (sl_err)err, msg);
}

static void fwd_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fwd_finish(arg, SL_ERR_DISCONNECTED,
                   "lost the connection to the metadata leader; the "
                   "command may or may not be applied: check, then retry");
}

/* Send cmd to the node at addr; fn(arg, rc, msg) runs exactly once, later,
 * if this returns SL_OK (never from inside this call). */
static sl_err forward(sl_broker *b, const char *addr, const void *cmd,
                      size_t len, sl_cluster_done_fn fn, void *arg)
{
    fwd *f = calloc(1, sizeof(*f));
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    sl_wb wb;
    sl_err rc = SL_ERR_NOMEM;

    sl_wb_init(&wb, len + 32);
    if (!f)
        goto fail;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &slen) != 0) {
        rc = SL_ERR_INVALID_ARG;
        goto fail;
    }
    if (sl_cluster_forward_req_encode(&wb, 1, cmd, len) != SL_OK ||
        !(f->bev = sl_peer_bev_new(b, addr)))
        goto fail;
    f->fn = fn;
    f->arg = arg;
    bufferevent_setcb(f->bev, fwd_read_cb, NULL, fwd_event_cb, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(b, &f->login, f->bev) != SL_OK ||
        bufferevent_write(f->bev, wb.p, wb.len) != 0 ||
        bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, slen) !=
            0) {
        rc = SL_ERR_DISCONNECTED;
        goto fail;
    }
    sl_wb_fini(&wb);
    f->next = b->cluster->fwds;
    if (f->next)
        f->next->pprev = &f->next;
    f->pprev = &b->cluster->fwds;
    b->cluster->fwds = f;
    return SL_OK;
fail:
    if (f && f->bev)
        bufferevent_free(f->bev);
    free(f);
    sl_wb_fini(&wb);
    return rc;
}

/* The metadata leader's binary address, or NULL (msg says why). */
static const char *leader_addr(sl_broker *b, char *msg, size_t len)
{
    sl_cluster_status st;
    const sl_mi_node *ln;
    sl_cluster_status_get(b->cluster->node, &st);
    if (!st.leader_id) {
        snprintf(msg, len, "no metadata leader yet (election in progress "
                 "or no quorum); retry");
        return NULL;
    }
    ln = sl_meta_node_find(&b->cluster->image, st.leader_id);
    if (!ln || !ln->addr[0]) {
        snprintf(msg, len, "the metadata leader (node %d) has not "
                 "registered its address yet; retry",
                 (int)st.leader_id);
        return NULL;
    }
    return ln->addr;
}

/* @thread raft */
static void notify(void *arg)
{
    sl_broker *b = arg;
    event_active(b->cluster->drain_ev, 0, 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete locally the topics the image had at the last drain and has no
 * more (a DELETE_TOPIC applied), then remember the image's names. A node
 * that was down when a topic was deleted does not see it go: its copy
 * stays until removed by hand (docs/cluster.md 9). */
static void reconcile_deleted(sl_broker *b)
{
    sl_bcluster *bc = b->cluster;
    const sl_meta *m = &bc->image;
    char **now;
    size_t n = 0;
    for (size_t i = 0; i < bc->nknown; i++)
        if (!sl_meta_topic_find(m, bc->known[i])) {
            sl_err rc = sl_ops_topic_delete(b, bc->known[i]);
            if (rc != SL_OK && rc != SL_ERR_UNKNOWN_TOPIC)
                sl_log(SL_ERROR, "cluster",
                       "topic %s was deleted through the metadata log but "
                       "cannot be deleted here: %s",
                       bc->known[i], sl_strerror(rc));
            else
                sl_log(SL_INFO, "cluster", "topic %s deleted", bc->known[i]);
            if (bc->replicas)
                sl_replicas_topic_deleted(bc->replicas, bc->known[i]);
        }
    now = calloc(m->ntopics + 1, sizeof(*now));
    if (!now)
        return; /* keep the old list: deletions are found next time */
    for (size_t i = 0; i < m->ntopics; i++) {
        if (!(now[n] = strdup(m->topics[i]->name)))
            break;
        n++;
    }
    if (n < m->ntopics) {
        while (n)
            free(now[--n]);
        free(now);
        return;
    }
    qsort(now, n, sizeof(*now), cmp_str);
    for (size_t i = 0; i < bc->nknown; i++)
        free(bc->known[i]);
    free(bc->known);
    bc->known = now;
    bc->nknown = n;
}

/* Create locally what the image has and this node lacks; delete what it
 * no longer has. */
static void reconcile(sl_broker *b)
{
    const sl_meta *m = &b->cluster->image;
    reconcile_deleted(b);
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        char err[256] = "";
        int32_t np;
        sl_err rc;
        if (sl_ops_topic_get(b, t->name, SL_OPS_NO_CREATE, &np) == SL_OK)
            continue;
        rc = sl_ops_topic_create(b, t->name, t->nparts,
                                 (const char *const *)t->keys,
                                 (const char *const *)t->vals, t->ncfg, err,
                                 sizeof(err));
        if (rc != SL_OK && rc != SL_ERR_TOPIC_EXISTS)
            sl_log(SL_ERROR, "cluster",
                   "topic %s from the metadata log cannot be created here: "
                   "%s",
                   t->name, err[0] ? err : sl_strerror(rc));
        else
            sl_log(SL_INFO, "cluster", "topic %s: %d partition(s), RF %d",
                   t->name, (int)t->nparts, (int)t->rf);
    }
    sl_bops_sync_topics(b); /* partitions added, configs changed */
    if (b->cluster->replicas)
        sl_replicas_update(b->cluster->replicas);
    sl_gstate_on_image(b); /* group coordinators follow the leaders */
    ac_poll(b);
    sl_cluster_users_sync(b);
    sl_bops_changed(b->cluster->ops);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    (void)fd;
    (void)what;
    /* completions run inside drain, after the image applied their command;
     * reconcile first would be too late for them, so reconcile in the
     * completion too (create_done) */
    if (sl_cluster_drain(b->cluster->node, &b->cluster->image) > 0)
        reconcile(b);
}

/* ---- 28 CLUSTER_STATUS ------------------------------------------------ */

static void fill_topic(sl_arena *a, const sl_mi_topic *t, sl_cl_topic *ct)
{
    ct->name = sl_str_c(t->name);
    ct->error = SL_OK;
    ct->parts = sl_arena_alloc(a, sizeof(*ct->parts) * (size_t)t->nparts);
    if (!ct->parts) {
        ct->error = SL_ERR_NOMEM;
        return;
    }
    ct->nparts = (uint32_t)t->nparts;
    for (int32_t p = 0; p < t->nparts; p++) {
        const sl_mi_part *mp = &t->parts[p];
        sl_cl_part *cp = &ct->parts[p];
        cp->partition = (uint32_t)p;
        cp->leader = mp->leader;
        cp->leader_epoch = mp->leader_epoch;
        cp->nreplicas = (uint32_t)mp->nrep;
        cp->replicas = (int32_t *)mp->rep;
        cp->nisr = (uint32_t)mp->nisr;
        cp->isr = (int32_t *)mp->isr;
    }
}

static void h_cluster_status(sl_broker *b, sl_conn *c, const sl_req *req,
                             sl_reply *r)
{
    sl_arena a;
    sl_wb wb;
    sl_cluster_status_req q;
    sl_cluster_status_resp s;
    (void)c;

    sl_arena_init(&a);
    sl_wb_init(&wb, 512);
    memset(&s, 0, sizeof(s));
    if (sl_cluster_status_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "CLUSTER_STATUS: bad body");
        goto out;
    }
    if (b->cluster) {
        const sl_meta *m = &b->cluster->image;
        sl_cluster_status st;
        sl_cluster_status_get(b->cluster->node, &st);
        s.node_id = st.node_id;
        s.leader_id = st.leader_id;
        s.term = st.term;
        s.applied = m->applied;
        s.nodes = sl_arena_alloc(&a, sizeof(*s.nodes) * (m->nnodes + 1));
        s.topics = sl_arena_alloc(&a, sizeof(*s.topics) * (q.ntopics + 1));
        if (!s.nodes || !s.topics) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m->nnodes; i++) {
            const sl_mi_node *n = &m->nodes[i];
            s.nodes[i].id = n->id;
            s.nodes[i].up = !n->fenced;
            s.nodes[i].raft_addr = sl_str_c(n->raft_addr);
            s.nodes[i].addr = sl_str_c(n->addr);
            s.nodes[i].stomp_addr = sl_str_c(n->stomp_addr);
        }
        s.nnodes = (uint32_t)m->nnodes;
        for (uint32_t i = 0; i < q.ntopics; i++) {
            char name[256];
            const sl_mi_topic *t = NULL;
            if (q.topics[i].p && q.topics[i].len < sizeof(name)) {
                memcpy(name, q.topics[i].p, q.topics[i].len);
                name[q.topics[i].len] = 0;
                t = sl_meta_topic_find(m, name);
            }
            if (t) {
                fill_topic(&a, t, &s.topics[i]);
            } else {
                s.topics[i].name = q.topics[i];
                s.topics[i].error = SL_ERR_UNKNOWN_TOPIC;
            }
        }
        s.ntopics = q.ntopics;
    }
    if (sl_cluster_status_resp_encode(&wb, req->correlation_id, &s) != SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "CLUSTER_STATUS: cannot encode");
        goto out;
    }
    if (sl_reply_add(r, wb.p, wb.len) != SL_OK)
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
    else
        sl_reply_done(r);
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

void sl_bcluster_meta_fill(sl_broker *b, sl_arena *a, sl_metadata_resp *r)
{
    const sl_meta *m;
    if (!b->cluster)
        return;
    m = &b->cluster->image;
    r->node_id = (int32_t)b->cfg.node_id;
    r->brokers = sl_arena_alloc(a, sizeof(*r->brokers) * (m->nnodes + 1));
    if (r->brokers) {
        for (size_t i = 0; i < m->nnodes; i++) {
            r->brokers[i].id = m->nodes[i].id;
            r->brokers[i].addr = sl_str_c(m->nodes[i].addr);
            r->brokers[i].up = !m->nodes[i].fenced;
        }
        r->nbrokers = (uint32_t)m->nnodes;
    }
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl_meta_topic *t = &r->topics[i];
        char name[256];
        const sl_mi_topic *mt;
        if (t->error != SL_OK || !t->name.p || t->name.len >= sizeof(name))
            continue;
        memcpy(name, t->name.p, t->name.len);
        name[t->name.len] = 0;
        mt = sl_meta_topic_find(m, name);
        if (!mt)
            continue;
        for (uint32_t j = 0; j < t->nparts && (int32_t)j < mt->nparts; j++) {
            const sl_mi_part *mp = &mt->parts[j];
            sl_meta_part *p = &t->parts[j];
            p->leader = mp->leader >= 0 ? mp->leader : SL_META_LEADER_NONE;
            p->leader_epoch = mp->leader_epoch;
            p->nreplicas = (uint32_t)mp->nrep;
            p->replicas = (int32_t *)mp->rep;
            p->nisr = (uint32_t)mp->nisr;
            p->isr = (int32_t *)mp->isr;
        }
    }
}

static int not_leader_msg(sl_broker *b, char *msg, size_t len);

sl_err sl_bcluster_propose(sl_broker *b, const void *cmd, size_t len,
                           sl_cluster_done_fn fn, void *arg)
{
    char msg[256];
    const char *to;
    if (!b->cluster || !b->cluster->node)
        return SL_ERR_SHUTTING_DOWN;
    if (!not_leader_msg(b, msg, sizeof(msg)))
        return sl_cluster_propose(b->cluster->node, cmd, len, fn, arg);
    to = leader_addr(b, msg, sizeof(msg));
    if (!to)
        return SL_ERR_BUSY;
    return forward(b, to, cmd, len, fn, arg);
}

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
            res[i].message = sl_str_c(op->one[i].msg[0]
                                          ? op->one[i].msg
                                          : sl_strerror(op->one[i].rc));
    }
    if ((op->del ? sl_delete_topics_resp_encode(&wb, op->corr, &s)
                 : sl_create_topics_resp_encode(&wb, op->corr, &s)) !=
            SL_OK ||
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
        reconcile(op->b); /* the partitions exist here before the answer */
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

/* 1 with msg naming the leader when this node is not the metadata
 * leader, else 0. */
static int not_leader_msg(sl_broker *b, char *msg, size_t len)
{
    sl_cluster_status st;
    const sl_mi_node *ln;
    sl_cluster_status_get(b->cluster->node, &st);
    if (st.role == 3)
        return 0;
    if (!st.leader_id) {
        snprintf(msg, len, "no metadata leader yet (election in progress "
                 "or no quorum); retry");
        return 1;
    }
    ln = sl_meta_node_find(&b->cluster->image, st.leader_id);
    snprintf(msg, len, "not the metadata leader; the leader is node %d%s%s",
             (int)st.leader_id, ln && ln->addr[0] ? " at " : "",
             ln && ln->addr[0] ? ln->addr : "");
    return 1;
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
    if (not_leader_msg(b, one->msg, sizeof(one->msg))) {
        /* not the leader: validated and placed here (from this node's
         * image, which may lag the leader's by a heartbeat; apply on the
         * leader checks it again), then forwarded */
        fwd_to = leader_addr(b, one->msg, sizeof(one->msg));
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
        snprintf(one->msg, sizeof(one->msg), "%u partitions is more than "
                 "10000", ct->partitions);
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
        one->rc = forward(b, fwd_to, wb.p, wb.len, create_done, one);
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

static void h_create_topics(sl_broker *b, sl_conn *c, const sl_req *req,
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

typedef struct fwd_in {
    sl_reply *r; /* NULL once the connection closed */
    uint32_t corr;
} fwd_in;

static void fwd_in_cancel(void *arg)
{
    ((fwd_in *)arg)->r = NULL;
}

static void fwd_in_done(void *arg, sl_err rc, const char *msg)
{
    fwd_in *x = arg;
    if (x->r) {
        sl_reply_set_cancel(x->r, NULL, NULL);
        if (rc == SL_OK) {
            sl_wb wb;
            size_t st;
            sl_wb_init(&wb, 16);
            st = sl_resp_begin(&wb, x->corr, SL_OK);
            if (sl_frame_finish(&wb, st) == SL_OK &&
                sl_reply_add(x->r, wb.p, wb.len) == SL_OK)
                sl_reply_done(x->r);
            else
                sl_reply_error(x->r, SL_ERR_NOMEM, "out of memory");
            sl_wb_fini(&wb);
        } else {
            sl_reply_error(x->r, rc, msg && msg[0] ? msg : sl_strerror(rc));
        }
    }
    free(x);
}

/* 30 CLUSTER_FORWARD: a command from another node, proposed here. Only
 * the commands other nodes have reason to send: their own REGISTER_NODE,
 * a client's CREATE_TOPIC, and a partition leader's ISR change
 * (PARTITION_CHANGE, broker/replica.c). */
static void h_cluster_forward(sl_broker *b, sl_conn *c, const sl_req *req,
                              sl_reply *r)
{
    const uint8_t *cmd;
    size_t len;
    char msg[256];
    fwd_in *x;
    int type;
    (void)c;

    if (sl_cluster_forward_req_decode(req->body, req->len, &cmd, &len) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "CLUSTER_FORWARD: bad body");
        return;
    }
    type = sl_meta_cmd_type(cmd, len);
    if (type != SL_MCMD_REGISTER_NODE && type != SL_MCMD_CREATE_TOPIC &&
        type != SL_MCMD_DELETE_TOPIC && type != SL_MCMD_PARTITION_CHANGE &&
        type != SL_MCMD_USER_UPSERT && type != SL_MCMD_USER_DELETE &&
        type != SL_MCMD_ACL_CHANGE && !sl_bops_forwardable(cmd, len)) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "CLUSTER_FORWARD: only node registrations, topic "
                       "creation and deletion, in-sync set changes, "
                       "changes to users and rules and operations "
                       "(docs/cluster.md 10) are forwarded");
        return;
    }
    if (not_leader_msg(b, msg, sizeof(msg))) {
        sl_reply_error(r, SL_ERR_BUSY, msg);
        return;
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    x->r = r;
    x->corr = req->correlation_id;
    if (sl_cluster_propose(b->cluster->node, cmd, len, fwd_in_done, x) !=
        SL_OK) {
        free(x);
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    sl_reply_set_cancel(r, fwd_in_cancel, x);
}

/* Followers register their client addresses through the leader; until
 * the image holds them, retry every half second. */
static void reg_done(void *arg, sl_err rc, const char *msg)
{
    sl_broker *b = arg;
    b->cluster->reg_inflight = 0;
    if (rc != SL_OK)
        sl_log(SL_DEBUG, "cluster", "registration: %s", msg && msg[0]
               ? msg : sl_strerror(rc));
}

static void reg_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    sl_bcluster *bc = b->cluster;
    const sl_mi_node *me;
    const char *to;
    char msg[256];
    sl_wb wb;
    (void)fd;
    (void)what;

    me = sl_meta_node_find(&bc->image, (int32_t)b->cfg.node_id);
    /* a node that stopped itself (SL_MI_STOPPED) registers again when it
     * is back, not while it is stopping (cluster_ops.c) */
    if (bc->reg_inflight || sl_broker_stopping(b) ||
        (me && !strcmp(me->addr, sl_peer_my_addr(b, 0)) &&
         !strcmp(me->stomp_addr, sl_peer_my_addr(b, 1)) &&
         me->fenced != SL_MI_STOPPED))
        return;
    if (!not_leader_msg(b, msg, sizeof(msg)))
        return; /* the leader registers itself (cluster/node.c) */
    to = leader_addr(b, msg, sizeof(msg));
    if (!to)
        return;
    sl_wb_init(&wb, 128);
    sl_meta_enc_register(&wb, (int32_t)b->cfg.node_id, "",
                         sl_peer_my_addr(b, 0), sl_peer_my_addr(b, 1));
    if (!wb.err && forward(b, to, wb.p, wb.len, reg_done, b) == SL_OK)
        bc->reg_inflight = 1;
    sl_wb_fini(&wb);
}

/* ---- 3 DELETE_TOPICS through the quorum -------------------------------
 * A DELETE_TOPIC command per topic, proposed here or forwarded to the
 * metadata leader; every node deletes its copy when it applies it
 * (reconcile_deleted), this one before it answers. */

static void delete_done(void *arg, sl_err rc, const char *msg)
{
    create_done(arg, rc, msg); /* the same bookkeeping; reconcile deletes */
}

static void h_delete_topics(sl_broker *b, sl_conn *c, const sl_req *req,
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
        one->rc = wb.err ? SL_ERR_NOMEM
                         : sl_bcluster_propose(b, wb.p, wb.len, delete_done,
                                               one);
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

/* Client appends (PRODUCE, STOMP SEND) go to the partition's leader only:
 * a record appended on a follower would make its log diverge from the
 * leader's. Topics the image does not know (created locally, e.g. by
 * auto-create) are not guarded. */
static sl_err append_guard(sl_broker *b, const char *topic, int32_t part)
{
    const sl_mi_topic *t = sl_meta_topic_find(&b->cluster->image, topic);
    if (!t || part < 0 || part >= t->nparts)
        return SL_OK;
    if (t->parts[part].leader == (int32_t)b->cfg.node_id)
        return SL_OK;
    sl_log(SL_DEBUG, "cluster", "append to %s/%d refused: leader is %d",
           topic, (int)part, (int)t->parts[part].leader);
    return SL_ERR_NOT_LEADER;
}

/* A durable produce needs min-insync-replicas in the ISR (docs/cluster.md
 * 3.3); refused before anything is appended. An idempotent producer the
 * partition does not know is then expected to resend the first batch
 * before any later one (sl_part_idem_refused). */
static sl_err durable_guard(sl_broker *b, const char *topic, int32_t part,
                            const uint8_t *records, size_t len)
{
    const sl_mi_topic *t = sl_meta_topic_find(&b->cluster->image, topic);
    const sl_mi_part *mp;
    if (!t || part < 0 || part >= t->nparts)
        return SL_OK;
    mp = &t->parts[part];
    if (mp->leader != (int32_t)b->cfg.node_id ||
        mp->nisr >= sl_replicas_min_insync(b, t))
        return SL_OK;
    sl_log(SL_DEBUG, "cluster", "durable produce to %s/%d refused: ISR %d < "
           "min-insync-replicas %d", topic, (int)part, (int)mp->nisr,
           (int)sl_replicas_min_insync(b, t));
    {
        sl_batch_hdr h;
        sl_part *p;
        if (sl_batch_hdr_decode(records, len, &h) == SL_OK &&
            h.producer_id >= 0 &&
            sl_ops_part(b, topic, part, SL_OPS_NO_CREATE, &p) == SL_OK)
            sl_part_idem_refused(p, &h);
    }
    return SL_ERR_NOT_ENOUGH_REPLICAS;
}

static sl_err forward_append(sl_broker *b, const char *topic, int32_t part,
                             const uint8_t *batch, size_t len, int durable,
                             void (*cb)(void *arg, sl_err rc), void *arg)
{
    if (!b->cluster->fwd)
        return SL_ERR_NOT_LEADER;
    return sl_fwd_append(b->cluster->fwd, topic, part, batch, len, durable,
                         cb, arg);
}

static void replica_fetch(sl_broker *b, sl_fetch_req *q)
{
    if (b->cluster->replicas)
        sl_replicas_on_fetch(b->cluster->replicas, q);
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

static void ac_run(sl_broker *b, ac_pending *a)
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

static void ac_poll(sl_broker *b)
{
    ac_pending *a, *next;
    for (a = b->cluster->acs; a; a = next) {
        int32_t np;
        next = a->next;
        if (a->done &&
            (a->rc != SL_OK ||
             sl_ops_topic_get(b, a->name, SL_OPS_NO_CREATE, &np) == SL_OK))
            ac_run(b, a);
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
        ac_run(b, a);
        return;
    }
    reconcile(b); /* creates it here if the image has it; runs ac_poll */
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
        sl_log(SL_WARN, "cluster", "auto-create of topic %s: %s", topic,
               msg);
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

static sl_err auto_create(sl_broker *b, const char *topic)
{
    sl_err rc = SL_OK;
    ac_start(b, topic, &rc);
    return SL_ERR_UNKNOWN_TOPIC;
}

static sl_err defer_create(sl_broker *b, const char *topic, sl_conn *c,
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

/* ---- start / stop ------------------------------------------------------- */

sl_err sl_bcluster_start(sl_broker *b, char *err, size_t errlen)
{
    sl_cluster_cfg cc;
    sl_bcluster *bc;
    char dir[4096];
    sl_err rc;

    sl_binary_register(b, SL_API_CLUSTER_STATUS, 1, 1, h_cluster_status);
    if (b->cfg.node_id == 0)
        return SL_OK;
    if (!b->cfg.cluster_listen || !b->cfg.cluster_listen[0] ||
        !b->cfg.cluster_peers || !b->cfg.cluster_peers[0]) {
        snprintf(err, errlen, "node-id %d needs cluster-listen and "
                 "cluster-peers (see docs/cluster.md)",
                 (int)b->cfg.node_id);
        return SL_ERR_INVALID_CONFIG;
    }
    bc = calloc(1, sizeof(*bc));
    if (!bc)
        return SL_ERR_NOMEM;
    sl_meta_init(&bc->image);
    bc->drain_ev = event_new(b->base, -1, 0, drain_cb, b);
    if (!bc->drain_ev) {
        free(bc);
        return SL_ERR_NOMEM;
    }
    b->cluster = bc;
    snprintf(dir, sizeof(dir), "%s/raft", b->cfg.data);
    memset(&cc, 0, sizeof(cc));
    cc.node_id = (int32_t)b->cfg.node_id;
    cc.listen = b->cfg.cluster_listen;
    cc.peers = b->cfg.cluster_peers;
    cc.dir = dir;
    cc.addr = sl_peer_my_addr(b, 0); /* the TLS ones with cluster-tls */
    cc.stomp_addr = sl_peer_my_addr(b, 1);
    cc.election_ms = (unsigned)b->cfg.cluster_election_timeout_ms;
    cc.heartbeat_ms = (unsigned)b->cfg.cluster_heartbeat_ms;
    cc.session_ms = (unsigned)b->cfg.cluster_session_timeout_ms;
    cc.snapshot_threshold = (unsigned)b->cfg.cluster_snapshot_threshold;
    cc.join = b->cfg.cluster_join;
    cc.notify = notify;
    cc.notify_arg = b;
    cc.secret = sl_peer_secret(b, &cc.secret_len); /* the Raft port too */
    rc = sl_replicas_new(b, cc.node_id, &bc->image, &bc->replicas);
    if (rc == SL_OK)
        rc = sl_fwd_new(b, &bc->image, &bc->fwd);
    if (rc == SL_OK)
        rc = sl_cluster_node_start(&cc, &bc->node, err, errlen);
    if (rc == SL_OK)
        rc = sl_bops_new(b, &bc->ops);
    if (rc != SL_OK) {
        sl_bcluster_stop(b);
        return rc;
    }
    bc->reg_ev = event_new(b->base, -1, EV_PERSIST, reg_cb, b);
    if (bc->reg_ev) {
        struct timeval tv = {0, 500 * 1000};
        event_add(bc->reg_ev, &tv);
    }
    sl_binary_register(b, SL_API_CLUSTER_FORWARD, 1, 1, h_cluster_forward);
    b->append_guard = append_guard;
    b->forward_append = forward_append;
    b->durable_guard = durable_guard;
    b->replica_fetch = replica_fetch;
    b->auto_create = auto_create;
    b->defer_create = defer_create;
    sl_binary_register(b, SL_API_CREATE_TOPICS, 1, 1, h_create_topics);
    sl_binary_register(b, SL_API_DELETE_TOPICS, 1, 1, h_delete_topics);
    sl_cluster_users_start(b);
    return SL_OK;
}

void sl_bcluster_stop(sl_broker *b)
{
    sl_bcluster *bc = b->cluster;
    if (!bc)
        return;
    b->append_guard = NULL;
    b->forward_append = NULL;
    b->durable_guard = NULL;
    b->replica_fetch = NULL;
    b->auto_create = NULL;
    b->defer_create = NULL;
    /* completes what is pending (their replies, if still wanted) */
    sl_cluster_node_stop(bc->node);
    bc->node = NULL;
    while (bc->fwds)
        fwd_finish(bc->fwds, SL_ERR_SHUTTING_DOWN, "the broker is stopping");
    sl_cluster_users_stop(b); /* after the completions above */
    while (bc->acs) { /* their requests fail: the topic is not there */
        bc->acs->done = 1;
        bc->acs->rc = SL_ERR_SHUTTING_DOWN;
        ac_run(b, bc->acs);
    }
    sl_bops_free(bc->ops); /* after the completions above */
    bc->ops = NULL;
    sl_replicas_free(bc->replicas);
    bc->replicas = NULL;
    sl_fwd_free(bc->fwd);
    bc->fwd = NULL;
    if (bc->drain_ev)
        event_free(bc->drain_ev);
    if (bc->reg_ev)
        event_free(bc->reg_ev);
    sl_meta_fini(&bc->image);
    for (size_t i = 0; i < bc->nknown; i++)
        free(bc->known[i]);
    free(bc->known);
    free(bc);
    b->cluster = NULL;
}

const sl_meta *sl_bcluster_image(sl_broker *b)
{
    return b->cluster ? &b->cluster->image : NULL;
}

sl_cluster_node *sl_bcluster_node(const sl_broker *b)
{
    return b->cluster ? b->cluster->node : NULL;
}

/* ---- /metrics ------------------------------------------------------------ */

int sl_bcluster_stats_get(sl_broker *b, sl_bcluster_stats *out)
{
    const sl_meta *m;
    sl_cluster_status st;
    memset(out, 0, sizeof(*out));
    if (!b->cluster)
        return -1;
    m = &b->cluster->image;
    sl_cluster_status_get(b->cluster->node, &st);
    out->node_id = st.node_id;
    out->leader_id = st.leader_id;
    out->role = st.role;
    out->term = st.term;
    out->applied = m->applied;
    out->nodes = (int64_t)m->nnodes;
    for (size_t i = 0; i < m->nnodes; i++)
        out->nodes_up += !m->nodes[i].fenced;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
            const sl_mi_part *mp = &m->topics[t]->parts[p];
            out->partitions++;
            out->partitions_led += mp->leader == st.node_id;
            out->partitions_offline += mp->leader < 0;
            out->partitions_under_replicated += mp->nisr < mp->nrep;
        }
    return 0;
}

void sl_bcluster_foreach_part(sl_broker *b,
                              void (*fn)(void *arg, const char *topic,
                                         int32_t partition, int32_t leader,
                                         int32_t replicas, int32_t in_sync),
                              void *arg)
{
    const sl_meta *m;
    if (!b->cluster)
        return;
    m = &b->cluster->image;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
            const sl_mi_part *mp = &m->topics[t]->parts[p];
            fn(arg, m->topics[t]->name, p, mp->leader, mp->nrep, mp->nisr);
        }
}
