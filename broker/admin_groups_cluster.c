/*
 * admin_groups_cluster.c - the admin verbs of groups answered for the
 * whole cluster by whichever node is asked (docs/cluster.md 6.4,
 * docs/http-api.md), as GROUP_LIST and GROUP_DESCRIBE are
 * (group_route.c). The HTTP API, the web console and the CLI's ADMIN
 * verbs (`sluice queues`) then show every group of the cluster from any
 * node, as RabbitMQ's management UI shows every queue of its cluster.
 *
 * In a cluster a group's state lives in memory on its coordinator only
 * (group_state.c): every other node has unloaded it. So:
 *
 * - `groups`, `queues` and `dlq.list` (the lists): the node asks every
 *   other node
 *   that is not fenced for its own list (the same verb with the argument
 *   scope=node), runs the verb for itself the same way, and answers the
 *   union: one entry per group (per topic and group for `queues`), the
 *   coordinator's when two nodes list it (its coordinator moved between
 *   their answers), filtered by the caller's rules (peers answer a
 *   broker login and filter nothing), sorted by name (by topic, then
 *   group). A node that does not answer within 5 s (down, paused, cut
 *   off) is left out and named in "left_out": its groups get a new
 *   coordinator within seconds and are listed from there.
 * - `group`, `group.reset`, `group.delete`, `queue.purge`, `queue.peek`
 *   (one group, argument "group") and `dlq.show`, `dlq.purge`,
 *   `dlq.redrive` (argument "dlq": the group is its redrive group,
 *   "<dlq>.redrive", whose commits mark records handled): answered here
 *   when this node coordinates the group, else sent to its coordinator
 *   with scope=node and its answer (JSON or error) relayed. With scope=node a
 * node that is not the coordinator refuses (NOT_COORDINATOR), so a request is
 *   sent on at most once even while two images disagree.
 *
 * The caller's rules are checked on the node asked (sl_admin_run, before
 * the verb runs); the node that answers for it trusts the broker login.
 * Without a cluster (no image) or before the group state topic exists
 * every verb answers locally, as on a single node.
 *
 * The JSON of the peers is sluiced's own (broker/json.c); the list merge
 * only cuts it into array elements and reads the name strings, with the
 * small scanner below, which refuses what it does not understand.
 *
 * @thread loop (everything here)
 */
#include "broker/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/group_route.h"
#include "broker/group_state.h"
#include "broker/ops_groups.h"
#include "cluster/meta.h"
#include "protocol/log.h"

/* How long a node waits for a dlq.redrive it sent to the coordinator */
#define REDRIVE_WAIT_MS (15 * 60 * 1000)

/* ---- a scanner for the peers' JSON ----------------------------------- */

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p at '"': just after the closing quote, or NULL. */
static const char *skip_str(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* p at a value: just after it, or NULL. */
static const char *skip_val(const char *p, const char *e)
{
    int depth = 0;
    if (p >= e)
        return NULL;
    if (*p != '{' && *p != '[' && *p != '"') {
        while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
               *p != '\n')
            p++;
        return p;
    }
    while (p < e) {
        if (*p == '"') {
            if (!(p = skip_str(p, e)))
                return NULL;
            if (depth == 0)
                return p;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

/* p at '"': the string unescaped into out (cap bytes with the NUL).
 * 0: done; -1: not a string, too long, or an escape this scanner does
 * not read (\u beyond ASCII). */
static int get_str(const char *p, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    if (p >= e || *p != '"')
        return -1;
    for (p++; p < e && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            if (++p >= e)
                return -1;
            switch (*p) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                unsigned v;
                if (e - p < 5 || sscanf(p + 1, "%4x", &v) != 1 || v > 0x7f)
                    return -1;
                c = (char)v;
                p += 4;
                break;
            }
            default:
                c = *p; /* \" \\ \/ */
            }
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    if (p >= e)
        return -1;
    out[n] = 0;
    return 0;
}

/* p at '{': the value of member key (*ve: just after it), or NULL. */
static const char *obj_get(const char *p, const char *e, const char *key,
                           const char **ve)
{
    char k[64];
    p = ws(p, e);
    if (p >= e || *p != '{')
        return NULL;
    for (p = ws(p + 1, e); p < e && *p != '}';) {
        const char *ks = p, *v, *vend;
        if (!(p = skip_str(ks, e)))
            return NULL;
        p = ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        v = ws(p + 1, e);
        if (!(vend = skip_val(v, e)))
            return NULL;
        if (get_str(ks, e, k, sizeof(k)) == 0 && !strcmp(k, key)) {
            *ve = vend;
            return v;
        }
        p = ws(vend, e);
        if (p < e && *p == ',')
            p = ws(p + 1, e);
    }
    return NULL;
}

/* The string member key of the object [p, e) into out; 0 or -1. */
static int obj_str(const char *p, const char *e, const char *key, char *out,
                   size_t cap)
{
    const char *ve, *v = obj_get(p, e, key, &ve);
    return v ? get_str(v, ve, out, cap) : -1;
}

/* ---- the lists: groups, queues, dlq.list ----------------------------- */

/* How a list verb's document looks: {"<arr>":[{...},...]}, each entry
 * named by its group (and its topic, NULL: none). */
typedef struct lshape {
    const char *verb, *arr, *group, *topic;
    const char *pending, *total; /* the DLQ counts of an entry */
} lshape;

static const lshape shapes[] = {
    {"groups", "groups", "name", NULL, "dlq_pending", "dlq_total"},
    {"queues", "queues", "group", "topic", "dlq_pending", "dlq_total"},
    {"dlq.list", "dlqs", "group", "source_topic", "pending", "total"},
};

static const lshape *shape_of(const char *verb)
{
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        if (!strcmp(shapes[i].verb, verb))
            return &shapes[i];
    return NULL;
}

/* One entry of a list: a span of a node's JSON. */
typedef struct lrow {
    const char *p;
    size_t len;
    int32_t node;
    char group[256], topic[256];
} lrow;

/* An entry of the answer, kept while the DLQ counts are asked for. */
typedef struct orow {
    char *txt;
    size_t len;
    int32_t node;
    int dc; /* its DLQ in xr->dcs, or -1 */
} orow;

/* A DLQ's counts, as the coordinator of its redrive group has them. */
typedef struct dcount {
    struct xroute *xr;
    char dlq[256];
    int32_t coord;
    int have;
    int64_t pending, total;
} dcount;

typedef struct xroute {
    sl_admin_call *x;
    const lshape *shape; /* a list verb's, or NULL */
    char verb[32];
    char user[65];
    int has_user, admin;
    struct evbuffer *local; /* this node's answer (scope=node) */
    sl_err local_rc;
    int local_done;
    /* the merged list, while the DLQ counts are asked for */
    orow *rows;
    size_t nrows;
    dcount *dcs;
    size_t ndcs;
    int32_t *left_out;
    size_t nleft;
    int waiting;
} xroute;

static void xroute_free(xroute *xr)
{
    if (xr->local)
        evbuffer_free(xr->local);
    for (size_t i = 0; i < xr->nrows; i++)
        free(xr->rows[i].txt);
    free(xr->rows);
    free(xr->dcs);
    free(xr->left_out);
    free(xr);
}

static int lrow_cmp(const void *a, const void *b)
{
    const lrow *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : strcmp(x->group, y->group);
}

/* Cut doc (one node's answer) into rows of v; 0, or -1 when it is not
 * the document the verb writes. */
static int rows_add(xroute *xr, const char *doc, size_t len, int32_t node,
                    lrow **v, size_t *n, size_t *cap)
{
    const char *e = doc + len, *ae;
    const char *p = obj_get(doc, e, xr->shape->arr, &ae);
    if (!p || *p != '[')
        return -1;
    for (p = ws(p + 1, ae); p < ae && *p != ']';) {
        const char *s = p, *q = skip_val(p, ae);
        lrow *r;
        if (!q || *s != '{')
            return -1;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            lrow *nv = realloc(*v, nc * sizeof(*nv));
            if (!nv)
                return -1;
            *v = nv;
            *cap = nc;
        }
        r = &(*v)[*n];
        memset(r, 0, sizeof(*r));
        r->p = s;
        r->len = (size_t)(q - s);
        r->node = node;
        if (obj_str(s, q, xr->shape->group, r->group, sizeof(r->group)) != 0 ||
            (xr->shape->topic &&
             obj_str(s, q, xr->shape->topic, r->topic, sizeof(r->topic)) != 0))
            return -1;
        (*n)++;
        p = ws(q, ae);
        if (p < ae && *p == ',')
            p = ws(p + 1, ae);
    }
    return 0;
}

/* ---- the DLQ counts of a list ----------------------------------------
 *
 * An entry's dlq_pending (pending in dlq.list) is what the DLQ holds past
 * the commits of its redrive group ("<dlq>.redrive"), which only that
 * group's coordinator knows; the entry comes from the queue group's
 * coordinator, often another node. So the merged list asks the redrive
 * group's coordinator of each such DLQ (dlq.show, count 1: it answers
 * pending and total) and writes its counts into the entries. A node that
 * does not answer leaves the entry as its node had it. */

/* The DLQ dlq of an entry from node: its index in xr->dcs, or -1 when
 * that node's counts are the right ones already. */
static int dcount_of(xroute *xr, const char *dlq, int32_t node)
{
    char rg[300];
    int32_t coord;
    adm_redrive_group(dlq, rg, sizeof(rg));
    coord = sl_gstate_coordinator(xr->x->b, rg);
    if (coord <= 0 || coord == node)
        return -1;
    for (size_t i = 0; i < xr->ndcs; i++)
        if (!strcmp(xr->dcs[i].dlq, dlq))
            return (int)i;
    memset(&xr->dcs[xr->ndcs], 0, sizeof(xr->dcs[0]));
    xr->dcs[xr->ndcs].xr = xr;
    snprintf(xr->dcs[xr->ndcs].dlq, sizeof(xr->dcs[0].dlq), "%s", dlq);
    xr->dcs[xr->ndcs].coord = coord;
    return (int)xr->ndcs++;
}

/* The number member key of the object [p, e); 0 or -1. */
static int obj_num(const char *p, const char *e, const char *key, int64_t *out)
{
    const char *ve, *v = obj_get(p, e, key, &ve);
    char buf[32], *end;
    long long n;
    if (!v || ve - v <= 0 || ve - v >= (long)sizeof(buf))
        return -1;
    memcpy(buf, v, (size_t)(ve - v));
    buf[ve - v] = 0;
    n = strtoll(buf, &end, 10);
    if (*end)
        return -1;
    *out = n;
    return 0;
}

/* Row r with the number of member key replaced by n, into o. */
static void put_patched(struct evbuffer *o, const char *p, size_t len,
                        const char *k1, int64_t n1, const char *k2, int64_t n2)
{
    const char *e = p + len, *v1e, *v2e;
    const char *v1 = obj_get(p, e, k1, &v1e), *v2 = obj_get(p, e, k2, &v2e);
    if (!v1 || !v2) {
        evbuffer_add(o, p, len);
        return;
    }
    if (v2 < v1) { /* in the order they appear */
        const char *t = v1, *te = v1e;
        int64_t tn = n1;
        v1 = v2, v1e = v2e, n1 = n2;
        v2 = t, v2e = te, n2 = tn;
    }
    evbuffer_add(o, p, (size_t)(v1 - p));
    evbuffer_add_printf(o, "%lld", (long long)n1);
    evbuffer_add(o, v1e, (size_t)(v2 - v1e));
    evbuffer_add_printf(o, "%lld", (long long)n2);
    evbuffer_add(o, v2e, (size_t)(e - v2e));
}

static void list_emit(xroute *xr)
{
    sl_admin_call *x = xr->x;
    struct evbuffer *o = x->out;
    evbuffer_add_printf(o, "{\"%s\":[", xr->shape->arr);
    for (size_t i = 0; i < xr->nrows; i++) {
        const orow *r = &xr->rows[i];
        const dcount *d = r->dc >= 0 ? &xr->dcs[r->dc] : NULL;
        if (i)
            evbuffer_add(o, ",", 1);
        if (d && d->have)
            put_patched(o, r->txt, r->len, xr->shape->pending, d->pending,
                        xr->shape->total, d->total);
        else
            evbuffer_add(o, r->txt, r->len);
    }
    evbuffer_add(o, "]", 1);
    for (size_t i = 0; i < xr->nleft; i++)
        evbuffer_add_printf(o, "%s%d", i ? "," : ",\"left_out\":[",
                            (int)xr->left_out[i]);
    evbuffer_add(o, xr->nleft ? "]}" : "}", xr->nleft ? 2 : 1);
    adm_finish(x, SL_OK);
    xroute_free(xr);
}

static void dcount_done(void *arg, const sl_groute_ans *ans, size_t n)
{
    dcount *d = arg;
    xroute *xr = d->xr;
    if (n && ans[0].rc == SL_OK &&
        obj_num(ans[0].json, ans[0].json + ans[0].len, "pending",
                &d->pending) == 0 &&
        obj_num(ans[0].json, ans[0].json + ans[0].len, "total", &d->total) == 0)
        d->have = 1;
    if (--xr->waiting == 0)
        list_emit(xr);
}

/* Ask for every DLQ's counts, then emit (at once when none is asked). */
static void dcounts_ask(xroute *xr)
{
    sl_broker *b = xr->x->b;
    xr->waiting = 1; /* until every call is started */
    for (size_t i = 0; i < xr->ndcs; i++) {
        dcount *d = &xr->dcs[i];
        const char *keys[] = {"dlq", "count"}, *values[] = {d->dlq, "1"};
        char rg[300];
        if (d->coord == (int32_t)b->cfg.node_id) {
            d->have = adm_dlq_counts(b, d->dlq, &d->total, &d->pending);
            continue;
        }
        adm_redrive_group(d->dlq, rg, sizeof(rg));
        xr->waiting++;
        if (sl_groute_admin(b, d->coord, rg, "dlq.show", 2, keys, values, 0,
                            dcount_done, d) != SL_OK)
            xr->waiting--;
    }
    if (--xr->waiting == 0)
        list_emit(xr);
}

/* Whether the caller may see row r: its group, or for dlq.list its DLQ
 * topic (as v_dlq_list filters). */
static int may_list(const xroute *xr, const lrow *r)
{
    sl_broker *b = xr->x->b;
    const char *user = xr->has_user ? xr->user : NULL;
    char dlq[256];
    if (sl_acl_may_list(b, user, xr->admin, SL_RES_GROUP, r->group))
        return 1;
    return !strcmp(xr->shape->verb, "dlq.list") &&
           obj_str(r->p, r->p + r->len, "dlq_topic", dlq, sizeof(dlq)) == 0 &&
           sl_acl_may_list(b, user, xr->admin, SL_RES_TOPIC, dlq);
}

static void list_merge(void *arg, const sl_groute_ans *ans, size_t nans)
{
    xroute *xr = arg;
    sl_admin_call *x = xr->x;
    sl_broker *b = x->b;
    int32_t self = (int32_t)b->cfg.node_id;
    lrow *v = NULL;
    size_t n = 0, cap = 0, k = 0;
    char *ldoc;

    if (!xr->local_done || xr->local_rc != SL_OK) {
        snprintf(x->msg, sizeof(x->msg), "%s: this node's own list failed",
                 xr->verb);
        adm_finish(x, xr->local_rc != SL_OK ? xr->local_rc : SL_ERR_UNKNOWN);
        xroute_free(xr);
        return;
    }
    ldoc = (char *)evbuffer_pullup(xr->local, -1);
    if (rows_add(xr, ldoc, evbuffer_get_length(xr->local), self, &v, &n,
                 &cap) != 0) {
        snprintf(x->msg, sizeof(x->msg), "%s: out of memory", xr->verb);
        free(v);
        adm_finish(x, SL_ERR_NOMEM);
        xroute_free(xr);
        return;
    }
    for (size_t i = 0; i < nans; i++)
        if (ans[i].rc == SL_OK && rows_add(xr, ans[i].json, ans[i].len,
                                           ans[i].node, &v, &n, &cap) != 0)
            sl_log(SL_WARN, "admin", "%s: node %d's answer not understood",
                   xr->verb, (int)ans[i].node);
    if (n)
        qsort(v, n, sizeof(*v), lrow_cmp);
    /* one row per name: the coordinator's when two nodes listed it */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1, pick = i;
        int32_t coord = sl_gstate_coordinator(b, v[i].group);
        for (; j < n && !lrow_cmp(&v[j], &v[i]); j++)
            if (v[j].node == coord)
                pick = j;
        if (may_list(xr, &v[pick]))
            v[k++] = v[pick];
        i = j;
    }
    if (!(xr->rows = calloc(k + 1, sizeof(*xr->rows))) ||
        !(xr->dcs = calloc(k + 1, sizeof(*xr->dcs))) ||
        !(xr->left_out = calloc(nans + 1, sizeof(*xr->left_out))))
        goto nomem;
    for (size_t i = 0; i < nans; i++)
        if (ans[i].rc != SL_OK)
            xr->left_out[xr->nleft++] = ans[i].node;
    for (size_t i = 0; i < k; i++) {
        orow *r = &xr->rows[xr->nrows];
        char dlq[256];
        if (!(r->txt = malloc(v[i].len)))
            goto nomem;
        memcpy(r->txt, v[i].p, v[i].len);
        r->len = v[i].len;
        r->node = v[i].node;
        r->dc = -1;
        xr->nrows++;
        if (obj_str(v[i].p, v[i].p + v[i].len, "dlq_topic", dlq, sizeof(dlq)) ==
                0 &&
            dlq[0])
            r->dc = dcount_of(xr, dlq, r->node);
    }
    free(v);
    dcounts_ask(xr);
    return;
nomem:
    free(v);
    snprintf(x->msg, sizeof(x->msg), "%s: out of memory", xr->verb);
    adm_finish(x, SL_ERR_NOMEM);
    xroute_free(xr);
}

static void local_done(void *arg, sl_err rc, const char *msg,
                       struct evbuffer *json)
{
    xroute *xr = arg;
    (void)msg;
    xr->local_done = 1;
    xr->local_rc = rc;
    if (rc == SL_OK)
        evbuffer_add_buffer(xr->local, json);
}

/* ---- one group: sent to its coordinator ------------------------------ */

static void forward_done(void *arg, const sl_groute_ans *ans, size_t n)
{
    xroute *xr = arg;
    sl_admin_call *x = xr->x;
    sl_err rc = n ? ans[0].rc : SL_ERR_NOT_COORDINATOR;

    if (rc == SL_OK) {
        evbuffer_add(x->out, ans[0].json, ans[0].len);
    } else if (n && (rc == SL_ERR_DISCONNECTED || rc == SL_ERR_TIMEOUT ||
                     rc == SL_ERR_SHUTTING_DOWN || rc == SL_ERR_PROTOCOL ||
                     rc == SL_ERR_AUTHENTICATION_FAILED)) {
        snprintf(x->msg, sizeof(x->msg),
                 "its coordinator, node %d, did not answer: %s%s%.300s; retry",
                 (int)ans[0].node, sl_strerror(rc),
                 ans[0].msg && ans[0].msg[0] ? ": " : "",
                 ans[0].msg ? ans[0].msg : "");
        rc = SL_ERR_NOT_COORDINATOR;
    } else {
        snprintf(x->msg, sizeof(x->msg), "%.500s",
                 n && ans[0].msg ? ans[0].msg : "no coordinator answered");
    }
    adm_finish(x, rc);
    xroute_free(xr);
}

/* ---- the hook the verbs call ------------------------------------------ */

static int is_list(const char *verb)
{
    return shape_of(verb) != NULL;
}

static sl_err route(sl_admin_call *x, const char *verb, int *taken)
{
    sl_broker *b = x->b;
    const sl_meta *m = sl_bcluster_image(b);
    sl_gstate *gs = sl_ops_gstate(b);
    const char *scope = adm_arg(x, SL_GROUTE_SCOPE_KEY);
    const char *group = adm_arg(x, "group");
    const sl_admin_args *a = x->args;
    char rg[300];
    int32_t coord;
    xroute *xr;
    sl_err rc;

    *taken = 0;
    if (!strncmp(verb, "dlq.", 4) && !is_list(verb)) {
        /* a DLQ's handled records are its redrive group's commits: the
         * DLQ verbs run at that group's coordinator */
        const char *d = adm_arg(x, "dlq");
        group = NULL;
        if (d && *d) {
            adm_redrive_group(d, rg, sizeof(rg));
            group = rg;
        }
    }
    if (scope && strcmp(scope, SL_GROUTE_SCOPE_NODE) &&
        strcmp(scope, "cluster")) {
        snprintf(x->msg, sizeof(x->msg),
                 "argument 'scope': expected node or cluster, not '%.64s'",
                 scope);
        return SL_ERR_INVALID_ARG;
    }
    if (!m || !gs || !sl_gstate_route(gs) ||
        !sl_meta_topic_find(m, SL_GSTATE_TOPIC))
        return SL_OK; /* a single node, or no group state yet: local */
    if (!is_list(verb) && (!group || !*group))
        return SL_OK; /* the verb names what is missing */
    if (!is_list(verb) && sl_gstate_coordinates(gs, group))
        return SL_OK;
    if (scope && !strcmp(scope, SL_GROUTE_SCOPE_NODE)) {
        if (is_list(verb))
            return SL_OK;
        snprintf(x->msg, sizeof(x->msg),
                 "group '%.200s': this node is not its coordinator (scope "
                 "node); retry",
                 group);
        return SL_ERR_NOT_COORDINATOR;
    }
    if (!is_list(verb)) {
        const sl_mi_node *nd;
        coord = sl_gstate_coordinator(b, group);
        if (coord <= 0 || coord == (int32_t)b->cfg.node_id ||
            !(nd = sl_meta_node_find(m, coord)) || !nd->addr[0]) {
            snprintf(x->msg, sizeof(x->msg),
                     "group '%.200s' has no coordinator ready right now (its "
                     "%s partition is being elected or rebuilt); retry",
                     group, SL_GSTATE_TOPIC);
            return SL_ERR_NOT_COORDINATOR;
        }
    } else {
        coord = -1;
    }
    if (!(xr = calloc(1, sizeof(*xr))) ||
        (is_list(verb) && !(xr->local = evbuffer_new()))) {
        free(xr);
        return SL_ERR_NOMEM;
    }
    xr->x = x;
    xr->shape = shape_of(verb);
    snprintf(xr->verb, sizeof(xr->verb), "%s", verb);
    if (a->user) {
        xr->has_user = 1;
        snprintf(xr->user, sizeof(xr->user), "%s", a->user);
    }
    xr->admin = a->admin;
    if (is_list(verb)) {
        /* this node's own list first: these verbs answer at once */
        const char **kv = calloc(2 * (a->n + 1), sizeof(*kv));
        sl_admin_args la = *a;
        sl_admin_call *lx;
        if (!kv) {
            xroute_free(xr);
            return SL_ERR_NOMEM;
        }
        /* scope=node first: adm_arg finds it before a scope=cluster of
         * the caller's (which would route this call again, and again) */
        kv[0] = SL_GROUTE_SCOPE_KEY;
        kv[a->n + 1] = SL_GROUTE_SCOPE_NODE;
        for (size_t i = 0; i < a->n; i++) {
            kv[1 + i] = a->keys[i];
            kv[a->n + 2 + i] = a->values[i];
        }
        la.n = a->n + 1;
        la.keys = kv;
        la.values = kv + a->n + 1;
        lx = sl_admin_run(b, verb, &la, local_done, xr);
        free(kv);
        if (lx || !xr->local_done) { /* Assumes: never happens */
            sl_admin_cancel(lx);
            xroute_free(xr);
            snprintf(x->msg, sizeof(x->msg), "%s did not answer at once", verb);
            return SL_ERR_UNKNOWN;
        }
    }
    /* a redrive answers when it is over (rate-limited, in steps) */
    rc = sl_groute_admin(b, coord, is_list(verb) ? NULL : group, verb, a->n,
                         a->keys, a->values,
                         !strcmp(verb, "dlq.redrive") ? REDRIVE_WAIT_MS : 0,
                         is_list(verb) ? list_merge : forward_done, xr);
    if (rc != SL_OK) {
        xroute_free(xr);
        return rc;
    }
    x->pending = 1;
    *taken = 1;
    return SL_OK;
}

int adm_route(sl_admin_call *x, const char *verb, sl_err *rc)
{
    int taken = 0;
    *rc = route(x, verb, &taken);
    return *rc != SL_OK || taken;
}
