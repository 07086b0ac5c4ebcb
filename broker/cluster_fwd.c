/*
 * cluster_fwd.c - metadata commands on their way to the metadata leader
 * (docs/cluster.md): a follower forwards what it cannot propose
 * (sl_bcluster_propose), the leader answers CLUSTER_FORWARD, and a
 * follower registers its client addresses through it. Part of the
 * broker's cluster mode (cluster.c); shares cluster_int.h.
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
#include "broker/cluster_int.h"
#include "broker/cluster_ops.h"
#include "broker/peer_auth.h"
#include "cluster/node.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

/* ---- forwarding a command to the metadata leader -----------------------
 *
 * A node that is not the metadata leader sends a command (its own
 * REGISTER_NODE, a CREATE_TOPIC a client asked it for) to the leader's
 * binary port as CLUSTER_FORWARD, on a connection of its own, and gets
 * the result once the leader applied it. One connection per command:
 * metadata writes are rare.
 *
 * READ_INDEX (cluster_read.c) is not rare: every admin read and login
 * through a follower asks one. Its connection stays open once answered
 * (sl_bcluster.ri_link, logged in once) and carries the next READ_INDEX
 * to the same address: a new connection and the brokers' login per
 * request cost about 60 us more than the round trip (docs/benchmarks.md,
 * "Read barriers"). cluster_read.c has at most one READ_INDEX in flight;
 * when an unanswered one is still on the link (its time ran out), the
 * next gets a link of its own and the old one closes when answered. */

typedef struct fwd {
    struct fwd *next, **pprev; /* in sl_bcluster.fwds */
    sl_broker *b;
    int wait_index; /* answer once this node's image has the command */
    int read_index; /* READ_INDEX (cluster_read.c): its answer goes there */
    int keep;       /* the READ_INDEX link: stays open once answered */
    uint32_t corr;  /* of the request in flight */
    char addr[SL_CLUSTER_ADDR_MAX];
    struct bufferevent *bev;
    sl_cluster_done_fn fn;
    void *arg;
    int done;
    sl_peer_login login; /* with a cluster secret (peer_auth.c) */
} fwd;

void sl_bcluster_fwd_finish(fwd *f, sl_err rc, const char *msg)
{
    if (!f->done) {
        f->done = 1;
        f->fn(f->arg, rc, msg);
    }
    if (f->b->cluster && f->b->cluster->ri_link == f)
        f->b->cluster->ri_link = NULL;
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
            sl_bcluster_fwd_finish(f, SL_ERR_AUTHENTICATION_FAILED, msg);
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
        sl_bcluster_fwd_finish(f, SL_ERR_PROTOCOL,
                               "bad reply from the metadata leader");
        return;
    }
    sl_rd_init(&rd, p + SL_RESP_HDR_SIZE, flen - SL_RESP_HDR_SIZE);
    err = (int32_t)sl_rd_u32(&rd);
    if (f->read_index && (f->done || corr != f->corr)) {
        evbuffer_drain(in, flen); /* not the request in flight: dropped */
        return;
    }
    if (err == SL_OK && sl_rd_left(&rd) >= 8 && f->read_index) {
        uint64_t index = sl_rd_u64(&rd);
        f->done = 1;
        if (f->keep) { /* idle until the next READ_INDEX */
            evbuffer_drain(in, flen);
            sl_bcluster_read_answered(f->b, f->arg, index);
            return;
        }
        sl_bcluster_read_answered(f->b, f->arg, index);
        sl_bcluster_fwd_finish(f, SL_OK, "");
        return;
    }
    if (err == SL_OK && sl_rd_left(&rd) >= 8 && f->wait_index && !f->done) {
        /* the leader's read index once it applied the command (older
         * leaders send none): answer once this node's copy has it too
         * (cluster_read.c) */
        uint64_t index = sl_rd_u64(&rd);
        f->done = 1;
        sl_bcluster_after_index(f->b, index, SL_OK, "", f->fn, f->arg);
        sl_bcluster_fwd_finish(f, SL_OK, "");
        return;
    }
    if (err != SL_OK && sl_rd_left(&rd) >= 2) {
        uint16_t n = 0;
        const char *m = sl_rd_str16(&rd, &n);
        if (m)
            snprintf(msg, sizeof(msg), "%.*s", (int)n, m);
    }
    sl_bcluster_fwd_finish(f, (sl_err)err, msg);
}

static void fwd_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sl_bcluster_fwd_finish(
            arg, SL_ERR_DISCONNECTED,
            "lost the connection to the metadata leader; the "
            "command may or may not be applied: check, then retry");
}

/* READ_INDEX on the open link to addr, if there is one and it is idle:
 * SL_OK (fn runs later), else SL_ERR_NOT_FOUND (open one). */
static sl_err ri_link_send(sl_broker *b, const char *addr, const void *cmd,
                           size_t len, sl_cluster_done_fn fn, void *arg)
{
    fwd *f = b->cluster->ri_link;
    sl_wb wb;
    sl_err rc;
    if (!f)
        return SL_ERR_NOT_FOUND;
    if (!f->done || strcmp(f->addr, addr)) {
        /* another leader now, or the one in flight unanswered: that one
         * closes when answered (or at once when idle) */
        b->cluster->ri_link = NULL;
        f->keep = 0;
        if (f->done)
            sl_bcluster_fwd_finish(f, SL_OK, "");
        return SL_ERR_NOT_FOUND;
    }
    f->corr++;
    sl_wb_init(&wb, len + 32);
    rc = sl_cluster_forward_req_encode(&wb, f->corr, cmd, len);
    if (rc == SL_OK && bufferevent_write(f->bev, wb.p, wb.len) != 0)
        rc = SL_ERR_NOMEM;
    sl_wb_fini(&wb);
    if (rc != SL_OK)
        return rc;
    f->fn = fn;
    f->arg = arg;
    f->done = 0;
    return SL_OK;
}

/* Send cmd to the node at addr; fn(arg, rc, msg) runs exactly once, later,
 * if this returns SL_OK (never from inside this call). */
sl_err sl_bcluster_forward(sl_broker *b, const char *addr, const void *cmd,
                           size_t len, sl_cluster_done_fn fn, void *arg)
{
    fwd *f;
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    int ri = len == 2 && ((const uint8_t *)cmd)[0] == SL_META_VERSION &&
             ((const uint8_t *)cmd)[1] == SL_BREQ_READ_INDEX;
    sl_wb wb;
    sl_err rc = SL_ERR_NOMEM;

    if (ri &&
        (rc = ri_link_send(b, addr, cmd, len, fn, arg)) != SL_ERR_NOT_FOUND)
        return rc;
    rc = SL_ERR_NOMEM;
    f = calloc(1, sizeof(*f));
    sl_wb_init(&wb, len + 32);
    if (!f)
        goto fail;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &slen) != 0) {
        rc = SL_ERR_INVALID_ARG;
        goto fail;
    }
    f->corr = 1;
    if (sl_cluster_forward_req_encode(&wb, f->corr, cmd, len) != SL_OK ||
        !(f->bev = sl_peer_bev_new(b, addr)))
        goto fail;
    f->fn = fn;
    f->arg = arg;
    f->b = b;
    snprintf(f->addr, sizeof(f->addr), "%s", addr);
    /* not an in-sync set change: a partition leader acts on the answer
     * (replica_leader.c) and must not wait a heartbeat for its image */
    f->wait_index =
        !ri && sl_meta_cmd_type(cmd, len) != SL_MCMD_PARTITION_CHANGE;
    f->read_index = ri;
    f->keep = ri;
    bufferevent_setcb(f->bev, fwd_read_cb, NULL, fwd_event_cb, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(b, &f->login, f->bev) != SL_OK ||
        bufferevent_write(f->bev, wb.p, wb.len) != 0 ||
        bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, slen) != 0) {
        rc = SL_ERR_DISCONNECTED;
        goto fail;
    }
    sl_wb_fini(&wb);
    f->next = b->cluster->fwds;
    if (f->next)
        f->next->pprev = &f->next;
    f->pprev = &b->cluster->fwds;
    b->cluster->fwds = f;
    if (f->keep)
        b->cluster->ri_link = f;
    return SL_OK;
fail:
    if (f && f->bev)
        bufferevent_free(f->bev);
    free(f);
    sl_wb_fini(&wb);
    return rc;
}

/* The metadata leader's binary address, or NULL (msg says why). */
const char *sl_bcluster_leader_addr(sl_broker *b, char *msg, size_t len)
{
    sl_cluster_status st;
    const sl_mi_node *ln;
    sl_cluster_status_get(b->cluster->node, &st);
    if (!st.leader_id) {
        snprintf(msg, len,
                 "no metadata leader yet (election in progress "
                 "or no quorum); retry");
        return NULL;
    }
    ln = sl_meta_node_find(&b->cluster->image, st.leader_id);
    if (!ln || !ln->addr[0]) {
        snprintf(msg, len,
                 "the metadata leader (node %d) has not "
                 "registered its address yet; retry",
                 (int)st.leader_id);
        return NULL;
    }
    return ln->addr;
}

/* 1 with msg naming the leader when this node is not the metadata
 * leader, else 0. */
int sl_bcluster_not_leader_msg(sl_broker *b, char *msg, size_t len)
{
    sl_cluster_status st;
    const sl_mi_node *ln;
    sl_cluster_status_get(b->cluster->node, &st);
    if (st.role == 3)
        return 0;
    if (!st.leader_id) {
        snprintf(msg, len,
                 "no metadata leader yet (election in progress "
                 "or no quorum); retry");
        return 1;
    }
    ln = sl_meta_node_find(&b->cluster->image, st.leader_id);
    snprintf(msg, len, "not the metadata leader; the leader is node %d%s%s",
             (int)st.leader_id, ln && ln->addr[0] ? " at " : "",
             ln && ln->addr[0] ? ln->addr : "");
    return 1;
}

sl_err sl_bcluster_propose(sl_broker *b, const void *cmd, size_t len,
                           sl_cluster_done_fn fn, void *arg)
{
    char msg[256];
    const char *to;
    if (!b->cluster || !b->cluster->node)
        return SL_ERR_SHUTTING_DOWN;
    if (!sl_bcluster_not_leader_msg(b, msg, sizeof(msg)))
        return sl_cluster_propose(b->cluster->node, cmd, len, fn, arg);
    to = sl_bcluster_leader_addr(b, msg, sizeof(msg));
    if (!to)
        return SL_ERR_BUSY;
    return sl_bcluster_forward(b, to, cmd, len, fn, arg);
}

typedef struct fwd_in {
    sl_broker *b;
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
            sl_wb_init(&wb, 24);
            st = sl_resp_begin(&wb, x->corr, SL_OK);
            /* the read index: the command is in this image (or the
             * forwarder asked only for the index, READ_INDEX) */
            sl_wb_u64(&wb, x->b->cluster ? x->b->cluster->image.applied : 0);
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

/* The waiting answer of a forwarded command, or NULL when this node is not
 * the metadata leader or out of memory (r is then answered). */
static fwd_in *fwd_in_new(sl_broker *b, sl_reply *r, uint32_t corr)
{
    char msg[256];
    fwd_in *x;
    if (sl_bcluster_not_leader_msg(b, msg, sizeof(msg))) {
        sl_reply_error(r, SL_ERR_BUSY, msg);
        return NULL;
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    x->b = b;
    x->r = r;
    x->corr = corr;
    return x;
}

/* 30 CLUSTER_FORWARD: a command from another node, proposed here. Only
 * the commands other nodes have reason to send: their own REGISTER_NODE,
 * a client's CREATE_TOPIC, and a partition leader's ISR change
 * (PARTITION_CHANGE, broker/replica.c). */
void sl_bcluster_h_forward(sl_broker *b, sl_conn *c, const sl_req *req,
                           sl_reply *r)
{
    const uint8_t *cmd;
    size_t len;
    fwd_in *x;
    int type;
    (void)c;

    if (sl_cluster_forward_req_decode(req->body, req->len, &cmd, &len) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "CLUSTER_FORWARD: bad body");
        return;
    }
    if (len == 2 && cmd[0] == SL_META_VERSION &&
        cmd[1] == SL_BREQ_READ_INDEX) { /* answered, not logged */
        /* by a new leader only once its copy holds what its predecessor
         * answered (cluster_read.c); until then the asker waits */
        if ((x = fwd_in_new(b, r, req->correlation_id))) {
            sl_reply_set_cancel(r, fwd_in_cancel, x);
            sl_bcluster_after_ready(b, fwd_in_done, x);
        }
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
    if (!(x = fwd_in_new(b, r, req->correlation_id)))
        return;
    if (sl_cluster_propose(b->cluster->node, cmd, len, fwd_in_done, x) !=
        SL_OK) {
        free(x);
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    sl_reply_set_cancel(r, fwd_in_cancel, x);
}

/* Followers register their client addresses through the leader; until
 * the image holds them, retry every half second. A registration whose
 * answer has not come in two election timeouts is sent again (to whoever
 * leads now): a leader paused with it in hand answers only once resumed,
 * and until then this node's new addresses (a restart on other ports) are
 * not in the image, so clients and replicas kept the old ones. */
static void reg_done(void *arg, sl_err rc, const char *msg)
{
    sl_broker *b = arg;
    b->cluster->reg_inflight = 0;
    if (rc != SL_OK)
        sl_log(SL_DEBUG, "cluster", "registration: %s",
               msg && msg[0] ? msg : sl_strerror(rc));
}

void sl_bcluster_reg_cb(evutil_socket_t fd, short what, void *arg)
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
    if ((bc->reg_inflight &&
         sl_now_ms() - bc->reg_sent_ms <
             2 * (int64_t)b->cfg.cluster_election_timeout_ms) ||
        sl_broker_stopping(b) ||
        (me && !strcmp(me->addr, sl_peer_my_addr(b, 0)) &&
         !strcmp(me->stomp_addr, sl_peer_my_addr(b, 1)) &&
         !strcmp(me->tls_addr, sl_bcluster_tls_addr(b)) &&
         me->fenced != SL_MI_STOPPED))
        return;
    if (!sl_bcluster_not_leader_msg(b, msg, sizeof(msg)))
        return; /* the leader registers itself (cluster/node.c) */
    to = sl_bcluster_leader_addr(b, msg, sizeof(msg));
    if (!to)
        return;
    sl_wb_init(&wb, 128);
    sl_meta_enc_register_tls(&wb, (int32_t)b->cfg.node_id, "",
                             sl_peer_my_addr(b, 0), sl_peer_my_addr(b, 1),
                             sl_bcluster_tls_addr(b));
    if (!wb.err &&
        sl_bcluster_forward(b, to, wb.p, wb.len, reg_done, b) == SL_OK) {
        bc->reg_inflight = 1;
        bc->reg_sent_ms = sl_now_ms();
        /* tests/cluster/test_cluster_registration.py waits for this */
        sl_log(SL_DEBUG, "cluster", "registration: sent to %s (binary %s)", to,
               sl_peer_my_addr(b, 0));
    }
    sl_wb_fini(&wb);
}
