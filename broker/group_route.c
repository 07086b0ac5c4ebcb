/*
 * group_route.c - `sluice group list` and `group describe` answered for
 * the whole cluster by whichever node the client asked
 * (docs/cluster.md 6.4).
 *
 * In a cluster a group lives in memory on one node only, its coordinator
 * (group_state.c): the leader of the group's partition of
 * __sluice_group_state. Other nodes know nothing of its members, windows
 * or offsets. So a node asked by a client (version 1 of the request):
 *
 * - GROUP_LIST: asks every other live node of its image for that node's
 *   own groups (GROUP_LIST version 2, "this node only"), adds its own,
 *   and answers the union, sorted by name. A group two nodes both list
 *   (its coordinator moved between their answers) is taken from the node
 *   this node's image names as its coordinator. Every name is filtered
 *   by what the client may see (its rules), here: the peers answer a
 *   broker login (peer_auth.c) and filter nothing. A node that does not
 *   answer within ROUTE_TIMEOUT_MS (down, paused, cut off) is left out
 *   and logged: its groups move to other coordinators within seconds.
 * - GROUP_DESCRIBE: answered here when this node coordinates the group
 *   (or the group is a STOMP temp queue's, local by design), else sent
 *   as version 2 to the coordinator its image names, and that node's
 *   answer relayed as it is (its correlation id replaced). Version 2 is
 *   answered only by the coordinator (NOT_COORDINATOR otherwise), so a
 *   request is sent on at most once, even while two images disagree.
 *
 * - ADMIN (sl_groute_admin): an admin verb of groups sent to one node or
 *   to every live one with scope=node, the answers handed back to
 *   admin_groups_cluster.c, which merges or relays them (the HTTP API and
 *   the console).
 *
 * - CALL (sl_groute_call): one request to one node, its answer handed
 *   back as a frame (observer.c asks a partition's leader LIST_OFFSETS
 *   for a start=latest group).
 *
 * One connection per request to a node, closed after its answer: these
 * are operator commands and rare lookups, not a data path. With a cluster
 * secret the connection logs in as a broker first (peer_auth.c), with
 * cluster-tls it is TLS (sl_peer_bev_new), as the replica fetcher's.
 *
 * @thread loop (everything here)
 */
#include "broker/group_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/acl.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/group_state.h"
#include "broker/ops_groups.h"
#include "broker/peer_auth.h"
#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

#define ROUTE_TIMEOUT_MS 5000
#define NAME_MAX_ 256 /* group names, with NUL (as binary_groups.h) */
/* GROUP_LIST / GROUP_DESCRIBE version 2: the answering node's own */
#define ROUTE_LOCAL_VERSION 2

enum { OP_LIST, OP_DESCRIBE, OP_ADMIN, OP_CALL };

typedef struct gr_op gr_op;

/* One request to one node. */
typedef struct gr_call {
    struct gr_call *next; /* in op->calls */
    gr_op *op;
    int32_t node;
    char addr[80];
    struct bufferevent *bev;
    sl_peer_login login;
    uint32_t corr;
} gr_call;

/* One node's answer (a whole response frame), or why there is none. */
typedef struct gr_res {
    int32_t node;
    uint8_t *frame;
    size_t len;
    sl_err rc;
    char why[160];
} gr_res;

/* One client request being answered with other nodes' help. */
struct gr_op {
    gr_op *next, **pprev; /* in gr->ops */
    sl_groute *gr;
    int kind;
    sl_conn *c;
    sl_reply *r;
    uint32_t corr; /* the client's */
    int cancelled; /* the client's connection closed */
    gr_call *calls;
    int left; /* calls not finished */
    gr_res *res;
    size_t nres, capres;
    char group[NAME_MAX_];
    struct event *timer;
    sl_groute_admin_fn admin_fn; /* OP_ADMIN: answered to it, not to r */
    void *admin_arg;
    sl_groute_call_fn call_fn; /* OP_CALL: the one answer goes to it */
};

struct sl_groute {
    sl_broker *b;
    gr_op *ops;
    uint32_t corr;
};

/* ---- the calls ---------------------------------------------------------- */

static gr_res *res_add(gr_op *o, int32_t node)
{
    gr_res *r;
    if (o->nres == o->capres) {
        size_t n = o->capres ? o->capres * 2 : 4;
        gr_res *v = realloc(o->res, n * sizeof(*v));
        if (!v)
            return NULL;
        o->res = v;
        o->capres = n;
    }
    r = &o->res[o->nres++];
    memset(r, 0, sizeof(*r));
    r->node = node;
    return r;
}

/* Record k's outcome in its op and free k; 1 when it was the op's last. */
static int call_done(gr_call *k, sl_err rc, const uint8_t *frame, size_t len,
                     const char *why)
{
    gr_op *o = k->op;
    gr_res *r = res_add(o, k->node);
    for (gr_call **pp = &o->calls; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    if (r) {
        r->rc = rc;
        snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
        if (rc == SL_OK && !(r->frame = malloc(len)))
            r->rc = SL_ERR_NOMEM;
        else if (rc == SL_OK) {
            memcpy(r->frame, frame, len);
            r->len = len;
        }
        if (r->rc != SL_OK && o->kind != OP_DESCRIBE && o->kind != OP_CALL)
            sl_log(SL_WARN, "groups", "%s: node %d (%s) left out: %s%s%s",
                   o->kind == OP_LIST ? "group list" : o->group, (int)k->node,
                   k->addr, sl_strerror(r->rc), r->why[0] ? ": " : "", r->why);
    }
    if (k->bev)
        bufferevent_free(k->bev);
    free(k);
    return --o->left == 0;
}

static void op_finish(gr_op *o);
static void admin_answer(gr_op *o);

static void call_read_cb(struct bufferevent *bev, void *arg)
{
    gr_call *k = arg;
    gr_op *o = k->op;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t avail, flen = 0;
    const uint8_t *p;
    uint32_t corr;
    int rc;

    if (k->login.left) {
        char msg[300];
        int lr = sl_peer_login_read(&k->login, in, msg, sizeof(msg));
        if (lr < 0) {
            sl_peer_login_warn("groups", k->node, k->addr, msg);
            if (call_done(k, SL_ERR_AUTHENTICATION_FAILED, NULL, 0, msg))
                op_finish(o);
        }
        if (lr <= 0)
            return;
    }
    avail = evbuffer_get_length(in);
    p = evbuffer_pullup(in, avail < 4 ? (ssize_t)avail : 4);
    if (avail < 4 || !p)
        return;
    rc = sl_frame_peek(p, 4, SL_DEFAULT_MAX_FRAME, &flen);
    if (rc == SL_FRAME_PARTIAL && avail < flen)
        return;
    if ((rc != SL_OK && rc != SL_FRAME_PARTIAL) ||
        !(p = evbuffer_pullup(in, (ssize_t)flen)) ||
        sl_resp_hdr_decode(p, flen, &corr) != SL_OK || corr != k->corr) {
        if (call_done(k, SL_ERR_PROTOCOL, NULL, 0, "bad reply"))
            op_finish(o);
        return;
    }
    if (call_done(k, SL_OK, p, flen, NULL))
        op_finish(o);
}

static void call_event_cb(struct bufferevent *bev, short what, void *arg)
{
    gr_call *k = arg;
    gr_op *o = k->op;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        if (call_done(k, SL_ERR_DISCONNECTED, NULL, 0,
                      "connection lost or refused"))
            op_finish(o);
}

/* Send frame (a whole request with correlation id corr) to node at
 * addr for o. SL_OK: counted in o->left and answered through call_done. */
static sl_err call_start(gr_op *o, int32_t node, const char *addr,
                         const uint8_t *frame, size_t len, uint32_t corr)
{
    sl_broker *b = o->gr->b;
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    gr_call *k;

    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &slen))
        return SL_ERR_INVALID_ARG;
    if (!(k = calloc(1, sizeof(*k))))
        return SL_ERR_NOMEM;
    k->op = o;
    k->node = node;
    k->corr = corr;
    snprintf(k->addr, sizeof(k->addr), "%s", addr);
    if (!(k->bev = sl_peer_bev_new(b, addr))) { /* TLS with cluster-tls */
        free(k);
        return SL_ERR_NOMEM;
    }
    bufferevent_setcb(k->bev, call_read_cb, NULL, call_event_cb, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(b, &k->login, k->bev) != SL_OK ||
        bufferevent_write(k->bev, frame, len) != 0 ||
        bufferevent_socket_connect(k->bev, (struct sockaddr *)&ss, slen) != 0) {
        bufferevent_free(k->bev);
        free(k);
        return SL_ERR_DISCONNECTED;
    }
    k->next = o->calls;
    o->calls = k;
    o->left++;
    return SL_OK;
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    gr_op *o = arg;
    (void)fd;
    (void)what;
    while (o->calls)
        call_done(o->calls, SL_ERR_TIMEOUT, NULL, 0, "no answer in time");
    op_finish(o);
}

static void op_cancel(void *arg)
{
    ((gr_op *)arg)->cancelled = 1; /* finished when its calls are */
}

static gr_op *op_new(sl_groute *gr, int kind, sl_conn *c, const sl_req *req,
                     sl_reply *r)
{
    gr_op *o = calloc(1, sizeof(*o));
    struct timeval tv = {ROUTE_TIMEOUT_MS / 1000,
                         (ROUTE_TIMEOUT_MS % 1000) * 1000};
    if (!o)
        return NULL;
    o->gr = gr;
    o->kind = kind;
    o->c = c;
    o->r = r;
    o->corr = req ? req->correlation_id : 0;
    o->timer = evtimer_new(sl_broker_base(gr->b), op_timeout, o);
    if (!o->timer) {
        free(o);
        return NULL;
    }
    evtimer_add(o->timer, &tv);
    o->next = gr->ops;
    if (o->next)
        o->next->pprev = &o->next;
    o->pprev = &gr->ops;
    gr->ops = o;
    if (r)
        sl_reply_set_cancel(r, op_cancel, o);
    return o;
}

static void op_free(gr_op *o)
{
    while (o->calls) {
        gr_call *k = o->calls;
        o->calls = k->next;
        bufferevent_free(k->bev);
        free(k);
    }
    *o->pprev = o->next;
    if (o->next)
        o->next->pprev = o->pprev;
    event_free(o->timer);
    for (size_t i = 0; i < o->nres; i++)
        free(o->res[i].frame);
    free(o->res);
    free(o);
}

/* ---- GROUP_LIST --------------------------------------------------------- */

typedef struct lent {
    sl_group_entry e;
    int32_t node;
    char name[NAME_MAX_];
} lent;

static int lent_cmp(const void *a, const void *b)
{
    return strcmp(((const lent *)a)->name, ((const lent *)b)->name);
}

static void list_answer(gr_op *o)
{
    sl_broker *b = o->gr->b;
    sl_arena a;
    lent *v = NULL;
    size_t n = 0, cap = 0, k = 0;
    sl_group_list_resp out;
    sl_wb wb;

    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    memset(&out, 0, sizeof(out));
    for (size_t i = 0; i < o->nres; i++) {
        sl_group_list_resp resp;
        gr_res *r = &o->res[i];
        memset(&resp, 0, sizeof(resp));
        if (r->rc != SL_OK)
            continue;
        if (sl_group_list_resp_decode(r->frame + SL_RESP_HDR_SIZE,
                                      r->len - SL_RESP_HDR_SIZE, &a,
                                      &resp) != SL_OK ||
            resp.error != SL_OK) {
            sl_log(SL_WARN, "groups", "group list: node %d answered %s",
                   (int)r->node,
                   sl_strerror(resp.error ? resp.error : SL_ERR_PROTOCOL));
            continue;
        }
        for (uint32_t j = 0; j < resp.ngroups; j++) {
            sl_group_entry *e = &resp.groups[j];
            if (!e->group.p || e->group.len >= NAME_MAX_)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                lent *nv = realloc(v, nc * sizeof(*nv));
                if (!nv)
                    goto nomem;
                v = nv;
                cap = nc;
            }
            v[n].e = *e;
            v[n].node = r->node;
            memcpy(v[n].name, e->group.p, e->group.len);
            v[n].name[e->group.len] = 0;
            n++;
        }
    }
    if (n)
        qsort(v, n, sizeof(*v), lent_cmp);
    /* one entry per name: the coordinator's when two nodes listed it */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1, pick = i;
        int32_t coord = sl_gstate_coordinator(b, v[i].name);
        for (; j < n && !strcmp(v[j].name, v[i].name); j++)
            if (v[j].node == coord)
                pick = j;
        if (sl_acl_conn_may_list(b, o->c, SL_RES_GROUP, v[pick].name))
            v[k++] = v[pick];
        i = j;
    }
    out.groups = calloc(k + 1, sizeof(*out.groups));
    if (!out.groups)
        goto nomem;
    for (size_t i = 0; i < k; i++)
        out.groups[i] = v[i].e;
    out.ngroups = (uint32_t)k;
    if (sl_group_list_resp_encode(&wb, o->corr, &out) != SL_OK || wb.err)
        goto nomem;
    sl_reply_add(o->r, wb.p, wb.len);
    sl_reply_done(o->r);
    goto out;
nomem:
    sl_reply_error(o->r, SL_ERR_NOMEM, "GROUP_LIST: out of memory");
out:
    free(out.groups);
    free(v);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

int sl_groute_list(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r,
                   sl_groute_local_fn local)
{
    sl_gstate *gs = sl_ops_gstate(b);
    const sl_meta *m = sl_bcluster_image(b);
    int32_t self = (int32_t)b->cfg.node_id;
    sl_groute *gr = sl_gstate_route(gs);
    gr_res *mine;
    gr_op *o;
    sl_wb wb;

    if (!gs || !m || !gr || req->api_version >= ROUTE_LOCAL_VERSION)
        return 0;
    if (!(o = op_new(gr, OP_LIST, c, req, r))) {
        sl_reply_error(r, SL_ERR_NOMEM, "GROUP_LIST: out of memory");
        return 1;
    }
    sl_wb_init(&wb, 64);
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *nd = &m->nodes[i];
        uint32_t corr = ++gr->corr;
        size_t st;
        if (nd->id == self || nd->fenced || !nd->addr[0])
            continue;
        wb.len = 0;
        st = sl_req_begin(&wb, SL_API_GROUP_LIST, ROUTE_LOCAL_VERSION, corr);
        if (sl_frame_finish(&wb, st) != SL_OK ||
            call_start(o, nd->id, nd->addr, wb.p, wb.len, corr) != SL_OK) {
            gr_res *x = res_add(o, nd->id);
            if (x)
                x->rc = SL_ERR_DISCONNECTED;
            sl_log(SL_WARN, "groups",
                   "group list: node %d (%s) left out: cannot connect",
                   (int)nd->id, nd->addr);
        }
    }
    /* this node's own groups, as a peer would answer them */
    wb.len = 0;
    mine = res_add(o, self);
    if (mine && local(b, &wb) == SL_OK && (mine->frame = malloc(wb.len))) {
        memcpy(mine->frame, wb.p, wb.len);
        mine->len = wb.len;
    } else if (mine) {
        mine->rc = SL_ERR_NOMEM;
    }
    sl_wb_fini(&wb);
    if (o->left == 0)
        op_finish(o);
    return 1;
}

/* ---- GROUP_DESCRIBE ----------------------------------------------------- */

static void describe_answer(gr_op *o)
{
    gr_res *r = o->nres ? &o->res[0] : NULL;
    char msg[800];
    if (r && r->rc == SL_OK) {
        sl_put_u32(r->frame + SL_FRAME_LEN_SIZE, o->corr);
        sl_reply_add(o->r, r->frame, r->len);
        sl_reply_done(o->r);
        return;
    }
    snprintf(msg, sizeof(msg),
             "GROUP_DESCRIBE: group %s: its coordinator, node %d, did not "
             "answer: %s%s%s; retry",
             o->group, r ? (int)r->node : 0,
             sl_strerror(r ? r->rc : SL_ERR_NOMEM), r && r->why[0] ? ": " : "",
             r ? r->why : "");
    sl_reply_error(o->r, SL_ERR_NOT_COORDINATOR, msg);
}

int sl_groute_describe(sl_broker *b, const sl_req *req, const char *group,
                       sl_reply *r)
{
    sl_gstate *gs = sl_ops_gstate(b);
    const sl_meta *m = sl_bcluster_image(b);
    sl_groute *gr = sl_gstate_route(gs);
    const sl_mi_node *nd;
    int32_t coord;
    char msg[400];
    uint32_t corr;
    gr_op *o;
    sl_wb wb;
    size_t st;
    sl_err rc;

    if (!gs || !m || !gr || sl_gstate_coordinates(gs, group))
        return 0;
    /* no state topic yet: no node coordinates a group (its creation is
     * asked for), so this one answers (UNKNOWN_GROUP), not "retry" */
    if (!sl_meta_topic_find(m, SL_GSTATE_TOPIC))
        return 0;
    coord = sl_gstate_coordinator(b, group);
    if (req->api_version >= ROUTE_LOCAL_VERSION || coord < 0 ||
        coord == (int32_t)b->cfg.node_id ||
        !(nd = sl_meta_node_find(m, coord)) || !nd->addr[0]) {
        snprintf(msg, sizeof(msg), "GROUP_DESCRIBE: group %s: %s; retry", group,
                 coord < 0 ? "no coordinator now (an election, or the "
                             "group state topic is being created)"
                 : req->api_version >= ROUTE_LOCAL_VERSION
                     ? "this node is not its coordinator"
                     : "its coordinator is not ready yet");
        sl_reply_error(r, SL_ERR_NOT_COORDINATOR, msg);
        return 1;
    }
    if (!(o = op_new(gr, OP_DESCRIBE, NULL, req, r))) {
        sl_reply_error(r, SL_ERR_NOMEM, "GROUP_DESCRIBE: out of memory");
        return 1;
    }
    snprintf(o->group, sizeof(o->group), "%s", group);
    corr = ++gr->corr;
    sl_wb_init(&wb, 64 + req->len);
    st = sl_req_begin(&wb, SL_API_GROUP_DESCRIBE, ROUTE_LOCAL_VERSION, corr);
    sl_wb_put(&wb, req->body, req->len);
    rc = sl_frame_finish(&wb, st);
    if (rc == SL_OK)
        rc = call_start(o, coord, nd->addr, wb.p, wb.len, corr);
    sl_wb_fini(&wb);
    if (rc != SL_OK) {
        gr_res *x = res_add(o, coord);
        if (x)
            x->rc = rc;
        op_finish(o);
    }
    return 1;
}

/* ---- ADMIN verbs at other nodes (admin_groups_cluster.c) ----------------- */

static void admin_answer(gr_op *o)
{
    sl_groute_ans *v = calloc(o->nres + 1, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; v && i < o->nres; i++) {
        gr_res *r = &o->res[i];
        sl_groute_ans *a = &v[n++];
        sl_admin_resp resp;
        a->node = r->node;
        a->rc = r->rc;
        a->msg = r->why;
        if (r->rc != SL_OK)
            continue;
        memset(&resp, 0, sizeof(resp));
        if (sl_admin_resp_decode(r->frame + SL_RESP_HDR_SIZE,
                                 r->len - SL_RESP_HDR_SIZE, &resp) != SL_OK) {
            a->rc = SL_ERR_PROTOCOL;
            a->msg = "malformed ADMIN answer";
        } else if (resp.error != SL_OK) {
            a->rc = (sl_err)resp.error;
            /* the message sits in the frame, followed by nothing we need:
             * copied into why (NUL-terminated) */
            snprintf(r->why, sizeof(r->why), "%.*s",
                     (int)(resp.error_msg.len < sizeof(r->why)
                               ? resp.error_msg.len
                               : sizeof(r->why) - 1),
                     resp.error_msg.p ? resp.error_msg.p : "");
            a->msg = r->why;
        } else {
            a->json = (const char *)resp.json;
            a->len = resp.json_len;
        }
    }
    o->admin_fn(o->admin_arg, v ? v : NULL, v ? n : 0);
    free(v);
}

sl_err sl_groute_admin(sl_broker *b, int32_t node, const char *group,
                       const char *verb, size_t nargs, const char *const *keys,
                       const char *const *values, int timeout_ms,
                       sl_groute_admin_fn fn, void *arg)
{
    sl_groute *gr = sl_gstate_route(sl_ops_gstate(b));
    const sl_meta *m = sl_bcluster_image(b);
    int32_t self = (int32_t)b->cfg.node_id;
    size_t nkv = 0;
    sl_kv *kv;
    gr_op *o;
    sl_wb wb;

    if (!gr || !m)
        return SL_ERR_INVALID_ARG;
    if (!(kv = calloc(nargs + 1, sizeof(*kv))))
        return SL_ERR_NOMEM;
    if (!(o = op_new(gr, OP_ADMIN, NULL, NULL, NULL))) {
        free(kv);
        return SL_ERR_NOMEM;
    }
    o->admin_fn = fn;
    o->admin_arg = arg;
    if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(o->timer, &tv); /* replaces ROUTE_TIMEOUT_MS */
    }
    snprintf(o->group, sizeof(o->group), "%s%s%.200s", verb, group ? " " : "",
             group ? group : ""); /* for the log */
    /* the node answers for itself only: scope=node, and no scope of the
     * caller's (scope=cluster there would send it on again, and again) */
    for (size_t i = 0; i < nargs; i++) {
        if (!strcmp(keys[i], SL_GROUTE_SCOPE_KEY))
            continue;
        kv[nkv].key = sl_str_c(keys[i]);
        kv[nkv++].value = sl_str_c(values[i]);
    }
    kv[nkv].key = sl_str_c(SL_GROUTE_SCOPE_KEY);
    kv[nkv++].value = sl_str_c(SL_GROUTE_SCOPE_NODE);
    sl_wb_init(&wb, 256);
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *nd = &m->nodes[i];
        uint32_t corr = ++gr->corr;
        sl_admin_req q;
        if (nd->id == self || (node >= 0 && nd->id != node) ||
            (node < 0 && nd->fenced))
            continue;
        q.verb = sl_str_c(verb);
        q.nargs = (uint32_t)nkv;
        q.args = kv;
        wb.len = 0;
        if (!nd->addr[0] || sl_admin_req_encode(&wb, corr, &q) != SL_OK ||
            wb.err ||
            call_start(o, nd->id, nd->addr, wb.p, wb.len, corr) != SL_OK) {
            gr_res *x = res_add(o, nd->id);
            if (x) {
                x->rc = SL_ERR_DISCONNECTED;
                snprintf(x->why, sizeof(x->why), "cannot connect to %s",
                         nd->addr[0] ? nd->addr : "(no address yet)");
            }
            sl_log(SL_WARN, "groups",
                   "%s: node %d (%s) left out: cannot "
                   "connect",
                   o->group, (int)nd->id, nd->addr);
        }
    }
    sl_wb_fini(&wb);
    free(kv);
    if (o->left == 0) /* nobody to ask: answered from the loop, not here */
        event_active(o->timer, EV_TIMEOUT, 1);
    return SL_OK;
}

/* ---- one request to one node (sl_groute_call) ---------------------------- */

sl_err sl_groute_call(sl_broker *b, int32_t node, const uint8_t *frame,
                      size_t len, uint32_t corr, int timeout_ms,
                      sl_groute_call_fn fn, void *arg)
{
    sl_groute *gr = sl_gstate_route(sl_ops_gstate(b));
    const sl_meta *m = sl_bcluster_image(b);
    const sl_mi_node *nd = m ? sl_meta_node_find(m, node) : NULL;
    gr_op *o;
    sl_err rc;

    if (!gr || !nd || !nd->addr[0] || node == (int32_t)b->cfg.node_id)
        return SL_ERR_INVALID_ARG;
    if (!(o = op_new(gr, OP_CALL, NULL, NULL, NULL)))
        return SL_ERR_NOMEM;
    o->call_fn = fn;
    o->admin_arg = arg;
    if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(o->timer, &tv); /* replaces ROUTE_TIMEOUT_MS */
    }
    rc = call_start(o, node, nd->addr, frame, len, corr);
    if (rc != SL_OK) {
        op_free(o); /* fn never runs */
        return rc;
    }
    return SL_OK;
}

static void call_answer(gr_op *o)
{
    const gr_res *r = o->nres ? &o->res[0] : NULL;
    if (r && r->rc == SL_OK)
        o->call_fn(o->admin_arg, SL_OK, r->frame, r->len);
    else
        o->call_fn(o->admin_arg, r ? r->rc : SL_ERR_TIMEOUT, NULL, 0);
}

/* ---- life cycle --------------------------------------------------------- */

static void op_finish(gr_op *o)
{
    if (o->kind == OP_ADMIN) {
        admin_answer(o);
    } else if (o->kind == OP_CALL) {
        call_answer(o);
    } else if (!o->cancelled) {
        sl_reply_set_cancel(o->r, NULL, NULL);
        if (o->kind == OP_LIST)
            list_answer(o);
        else
            describe_answer(o);
    }
    op_free(o);
}

sl_err sl_groute_new(sl_broker *b, sl_groute **out)
{
    sl_groute *gr = calloc(1, sizeof(*gr));
    if (!gr)
        return SL_ERR_NOMEM;
    gr->b = b;
    *out = gr;
    return SL_OK;
}

void sl_groute_free(sl_groute *gr)
{
    if (!gr)
        return;
    while (gr->ops) {
        gr_op *o = gr->ops;
        if (o->kind == OP_ADMIN || o->kind == OP_CALL) {
            while (o->calls)
                call_done(o->calls, SL_ERR_SHUTTING_DOWN, NULL, 0,
                          "shutting down");
            op_finish(o); /* frees o */
            continue;
        }
        if (!o->cancelled) {
            sl_reply_set_cancel(o->r, NULL, NULL);
            sl_reply_error(o->r, SL_ERR_SHUTTING_DOWN, "shutting down");
        }
        op_free(o);
    }
    free(gr);
}
