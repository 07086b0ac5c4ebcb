/*
 * route.c - the leader cache and the per-broker connections (route.h,
 * docs/cluster.md section 5).
 */
#include "client/src/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broker that failed is asked for metadata after the others for this
 * long (it may be dead, or paused: a paused one accepts connections and
 * never answers). */
#define BAD_MS 2000

static sl_cl_bnode *node_add(sl_cl_router *r, int32_t id, const char *host,
                             const char *port)
{
    sl_cl_bnode *n = calloc(1, sizeof(*n)), **nv;
    nv = n ? realloc(r->nodes, (r->nnodes + 1) * sizeof(*nv)) : NULL;
    if (!n || !nv) {
        free(n);
        return NULL;
    }
    r->nodes = nv;
    n->id = id;
    snprintf(n->host, sizeof(n->host), "%s", host);
    snprintf(n->port, sizeof(n->port), "%s", port);
    sl_cl_conn_init(&n->conn, r->cfg);
    n->conn.fixed_host = n->host;
    n->conn.fixed_port = n->port;
    r->nodes[r->nnodes++] = n;
    return n;
}

void sl_cl_route_init(sl_cl_router *r, const sl_cl_cfg *cfg,
                      sl_cl_stray_fn stray, sl_cl_lost_fn lost, void *arg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    sl_cl_conn_init(&r->boot, cfg);
    r->stray = stray;
    r->lost = lost;
    r->arg = arg;
    r->last_refresh_ms = INT64_MIN / 2;
    /* TLS: the bootstrap addresses are the brokers' (route.h) */
    for (int i = 0; cfg->tls && i < cfg->nboot; i++) {
        sl_cl_bnode *n = node_add(r, 0, cfg->boot_host[i], cfg->boot_port[i]);
        if (n)
            n->boot_idx = i;
    }
}

void sl_cl_route_fini(sl_cl_router *r)
{
    size_t i;
    sl_cl_conn_fini(&r->boot);
    for (i = 0; i < r->nnodes; i++) {
        sl_cl_conn_fini(&r->nodes[i]->conn);
        free(r->nodes[i]);
    }
    free(r->nodes);
    for (i = 0; i < r->ntopics; i++) {
        free(r->topics[i].name);
        free(r->topics[i].leader);
        free(r->topics[i].epoch);
    }
    free(r->topics);
    memset(r, 0, sizeof(*r));
}

sl_cl_conn *sl_cl_route_conn_at(sl_cl_router *r, size_t i)
{
    if (i == 0)
        return &r->boot;
    if (i - 1 < r->nnodes)
        return &r->nodes[i - 1]->conn;
    return NULL;
}

static sl_cl_bnode *node_find(sl_cl_router *r, int32_t id)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->id == id)
            return r->nodes[i];
    return NULL;
}

static sl_cl_bnode *node_of_conn(sl_cl_router *r, sl_cl_conn *c)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (&r->nodes[i]->conn == c)
            return r->nodes[i];
    return NULL;
}

/* Split "HOST:PORT" (the last colon; "[v6]:port" keeps its brackets off). */
static int split_addr(sl_str a, char *host, size_t hl, char *port, size_t pl)
{
    size_t i, colon = a.len;
    const char *h;
    size_t hlen;
    if (!a.p || !a.len)
        return -1;
    for (i = a.len; i > 0; i--)
        if (a.p[i - 1] == ':') {
            colon = i - 1;
            break;
        }
    if (colon == a.len || colon == 0 || a.len - colon - 1 >= pl)
        return -1;
    h = a.p;
    hlen = colon;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= hl)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    memcpy(port, a.p + colon + 1, a.len - colon - 1);
    port[a.len - colon - 1] = 0;
    return 0;
}

static void learn_broker(sl_cl_router *r, const sl_meta_broker *b)
{
    char host[256], port[16];
    sl_cl_bnode *n;
    /* TLS: its TLS address (METADATA version 3), never its plaintext one;
     * none known: the bootstrap entries are all there is */
    if (split_addr(r->cfg->tls ? b->tls_addr : b->addr, host, sizeof(host),
                   port, sizeof(port)) != 0)
        return;
    n = node_find(r, b->id);
    if (!n && r->cfg->tls) {
        /* a bootstrap entry not identified yet may be this address */
        for (size_t i = 0; i < r->nnodes && !n; i++)
            if (r->nodes[i]->id == 0 && !strcmp(r->nodes[i]->host, host) &&
                !strcmp(r->nodes[i]->port, port))
                n = r->nodes[i];
        if (n) {
            n->id = b->id;
            return;
        }
    }
    if (n) {
        if (!strcmp(n->host, host) && !strcmp(n->port, port))
            return;
        /* the broker came back on another address */
        if (n->conn.fd >= 0 && r->lost)
            r->lost(r->arg, &n->conn, SL_ERR_DISCONNECTED);
        sl_cl_conn_close(&n->conn);
        snprintf(n->host, sizeof(n->host), "%s", host);
        snprintf(n->port, sizeof(n->port), "%s", port);
        return;
    }
    n = node_add(r, b->id, host, port);
    if (n)
        n->boot_idx = -1; /* not a bootstrap entry (learn_tls_id) */
}

/* TLS: a METADATA reply on c names the node that answered: c's
 * bootstrap entry is that node's TLS address. */
static void learn_tls_id(sl_cl_router *r, sl_cl_conn *c, int32_t id)
{
    sl_cl_bnode *n = node_of_conn(r, c);
    if (!n && c == &r->boot)
        for (size_t i = 0; i < r->nnodes && !n; i++)
            if (r->nodes[i]->boot_idx == c->cur)
                n = r->nodes[i];
    if (n && id > 0)
        n->id = id;
}

static sl_cl_rtopic *topic_find(sl_cl_router *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->ntopics; i++)
        if (strlen(r->topics[i].name) == len &&
            !memcmp(r->topics[i].name, name, len))
            return &r->topics[i];
    return NULL;
}

static void learn_topic(sl_cl_router *r, const sl_metadata_resp *resp,
                        const sl_meta_topic *mt)
{
    sl_cl_rtopic *t;
    int32_t *ld, *ep;
    uint32_t j;

    if (mt->error != SL_OK || !mt->name.p || mt->nparts == 0)
        return;
    t = topic_find(r, mt->name.p, mt->name.len);
    if (!t) {
        sl_cl_rtopic *tv = realloc(r->topics, (r->ntopics + 1) * sizeof(*tv));
        if (!tv)
            return;
        r->topics = tv;
        t = &r->topics[r->ntopics];
        memset(t, 0, sizeof(*t));
        t->name = malloc(mt->name.len + 1);
        if (!t->name)
            return;
        memcpy(t->name, mt->name.p, mt->name.len);
        t->name[mt->name.len] = 0;
        r->ntopics++;
    }
    ld = calloc(mt->nparts, sizeof(*ld));
    ep = calloc(mt->nparts, sizeof(*ep));
    if (!ld || !ep) {
        free(ld);
        free(ep);
        return;
    }
    for (j = 0; j < mt->nparts; j++) {
        uint32_t p = mt->parts[j].partition;
        if (p >= mt->nparts)
            continue;
        ld[p] = resp->version >= 2 ? mt->parts[j].leader : SL_META_LEADER_ANY;
        ep[p] = resp->version >= 2 ? mt->parts[j].leader_epoch : 0;
    }
    free(t->leader);
    free(t->epoch);
    t->leader = ld;
    t->epoch = ep;
    t->nparts = (int32_t)mt->nparts;
}

/* The connection was found dead or silent: close it, tell the owner. */
static void drop(sl_cl_router *r, sl_cl_conn *c, sl_err rc)
{
    sl_cl_bnode *n = node_of_conn(r, c);
    if (r->lost)
        r->lost(r->arg, c, rc);
    sl_cl_conn_close(c);
    if (n)
        n->bad_until = sl_cl_now_ms() + BAD_MS;
    else if (c->cfg->nboot > 1) /* start with the next bootstrap address */
        c->cur = (c->cur + 1) % c->cfg->nboot;
    if (c == &r->boot)
        r->boot_id = 0; /* known again from its next answer */
}

/* One METADATA exchange on c (connected). */
static sl_err ask(sl_cl_router *r, sl_cl_conn *c, const char *const *topics,
                  size_t n, int64_t deadline, sl_chunk **frame)
{
    sl_metadata_req req;
    sl_str *names;
    sl_chunk *fr;
    uint32_t corr, rc_corr;
    size_t len, i;
    sl_err rc;

    names = calloc(n ? n : 1, sizeof(*names));
    if (!names)
        return sl_cl_fail(SL_ERR_NOMEM, "metadata");
    for (i = 0; i < n; i++)
        names[i] = sl_str_c(topics[i]);
    memset(&req, 0, sizeof(req));
    req.ntopics = (uint32_t)n;
    req.topics = names;
    /* TLS: version 3 for the brokers' TLS addresses */
    req.version = r->cfg->tls && !r->meta_v2 ? 3 : 2;
    corr = sl_cl_conn_corr(c);
    rc = sl_metadata_req_encode(&c->out, corr, &req);
    free(names);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "metadata request");
    rc = sl_cl_conn_write(c, deadline);
    while (rc == SL_OK) {
        fr = NULL;
        rc = sl_cl_conn_read(c, deadline, &fr);
        if (rc != SL_OK)
            break;
        sl_frame_body(fr, &len, &rc_corr);
        if (rc_corr == corr) {
            *frame = fr;
            return SL_OK;
        }
        if (r->stray)
            r->stray(r->arg, c, fr);
        sl_chunk_unref(fr);
    }
    return rc;
}

static sl_err try_conn(sl_cl_router *r, sl_cl_conn *c,
                       const char *const *topics, size_t n, int64_t deadline,
                       sl_arena *a, sl_metadata_resp *resp, sl_chunk **frame)
{
    const uint8_t *body;
    size_t len;
    uint32_t corr;
    sl_err rc;
    int64_t d = sl_cl_deadline(r->cfg->request_timeout_ms);

    if (d > deadline)
        d = deadline;
    rc = ask(r, c, topics, n, d, frame);
    if (rc != SL_OK) {
        if (rc == SL_ERR_TIMEOUT || rc == SL_ERR_DISCONNECTED ||
            rc == SL_ERR_PROTOCOL)
            drop(r, c, rc);
        return rc;
    }
    body = sl_frame_body(*frame, &len, &corr);
    rc = sl_cl_resp_check(body, len, "metadata");
    if (rc == SL_ERR_UNSUPPORTED_VERSION && r->cfg->tls && !r->meta_v2) {
        /* a broker before version 3: ask as before, from now on */
        r->meta_v2 = 1;
        sl_chunk_unref(*frame);
        *frame = NULL;
        return try_conn(r, c, topics, n, deadline, a, resp, frame);
    }
    if (rc == SL_OK) {
        sl_arena_reset(a);
        rc = sl_metadata_resp_decode(body, len, a, resp);
        if (rc != SL_OK)
            rc = sl_cl_bad_reply(rc, "metadata");
        else if (r->cfg->tls)
            learn_tls_id(r, c, resp->node_id);
        if (rc == SL_OK && c == &r->boot)
            r->boot_id = resp->node_id;
    }
    if (rc != SL_OK) {
        sl_chunk_unref(*frame);
        *frame = NULL;
        return rc;
    }
    sl_cl_route_learn(r, resp);
    return SL_OK;
}

void sl_cl_route_learn(sl_cl_router *r, const sl_metadata_resp *resp)
{
    r->cluster = resp->nbrokers > 0;
    for (uint32_t i = 0; i < resp->nbrokers; i++)
        learn_broker(r, &resp->brokers[i]);
    for (uint32_t i = 0; i < resp->ntopics; i++)
        learn_topic(r, resp, &resp->topics[i]);
}

/* TLS: ask each bootstrap entry not identified yet (and not failed
 * lately) which node it is. Its own arena and frame: the caller's answer
 * borrows from theirs. */
static void probe_tls(sl_cl_router *r, const char *const *topics, size_t n,
                      int64_t deadline)
{
    int64_t now = sl_cl_now_ms();
    for (size_t i = 0; i < r->nnodes; i++) {
        sl_cl_bnode *nd = r->nodes[i];
        sl_metadata_resp resp;
        sl_chunk *fr = NULL;
        sl_arena pa;
        if (nd->id != 0 || nd->bad_until > now || now >= deadline)
            continue;
        if (nd->conn.fd < 0 && sl_cl_conn_ensure(&nd->conn) != SL_OK) {
            nd->bad_until = now + BAD_MS;
            continue;
        }
        sl_arena_init(&pa);
        if (try_conn(r, &nd->conn, topics, n, deadline, &pa, &resp, &fr) ==
            SL_OK)
            sl_chunk_unref(fr);
        sl_arena_fini(&pa);
    }
}

sl_err sl_cl_route_metadata(sl_cl_router *r, const char *const *topics,
                            size_t n, int64_t deadline, sl_arena *a,
                            sl_metadata_resp *resp, sl_chunk **frame)
{
    sl_err rc = SL_ERR_DISCONNECTED, last = SL_ERR_DISCONNECTED;
    int64_t now = sl_cl_now_ms();
    size_t i;
    int pass;

    *frame = NULL;
    /* pass 0: connections already up; pass 1: connect (the bootstrap
     * list first, then the brokers the metadata named). Brokers that
     * failed lately come after both passes over the others (a leader
     * cut off from the rest answers on its open connection, naming
     * itself). */
    for (int bad = 0; bad < 2; bad++) {
        for (pass = 0; pass < 2; pass++) {
            for (i = 0; i <= r->nnodes; i++) {
                sl_cl_conn *c = sl_cl_route_conn_at(r, i);
                sl_cl_bnode *nd = i ? r->nodes[i - 1] : NULL;
                /* the bootstrap connection is as bad as the node it is
                 * on: a leader cut off from the others still answers,
                 * naming itself, until a node of the majority is asked */
                sl_cl_bnode *on = nd ? nd
                                     : (c->fd >= 0 && r->boot_id > 0
                                            ? node_find(r, r->boot_id)
                                            : NULL);
                int is_bad = on && on->bad_until > now;
                if (is_bad != bad)
                    continue;
                if (pass == 0 && c->fd < 0)
                    continue;
                if (pass == 1) {
                    if (c->fd >= 0)
                        continue; /* asked in pass 0 */
                    rc = sl_cl_conn_ensure(c);
                    if (rc != SL_OK) {
                        last = rc;
                        if (nd)
                            nd->bad_until = now + BAD_MS;
                        continue;
                    }
                }
                rc = try_conn(r, c, topics, n, deadline, a, resp, frame);
                if (rc == SL_OK) {
                    r->stale = 0;
                    if (r->cfg->tls)
                        probe_tls(r, topics, n, deadline);
                    return SL_OK;
                }
                last = rc;
                if (rc != SL_ERR_TIMEOUT && rc != SL_ERR_DISCONNECTED &&
                    rc != SL_ERR_PROTOCOL && rc != SL_ERR_SHUTTING_DOWN)
                    return rc; /* an answer: e.g. not authorized */
                if (sl_cl_now_ms() >= deadline)
                    return rc;
            }
        }
    }
    return last;
}

sl_err sl_cl_route_refresh(sl_cl_router *r, sl_arena *a)
{
    sl_metadata_resp resp;
    sl_chunk *fr = NULL;
    const char **names;
    int64_t now = sl_cl_now_ms();
    sl_err rc;
    size_t i;

    if (!r->stale || r->ntopics == 0)
        return SL_OK;
    if (now - r->last_refresh_ms < r->cfg->retry_backoff_ms)
        return SL_OK;
    r->last_refresh_ms = now;
    names = calloc(r->ntopics, sizeof(*names));
    if (!names)
        return sl_cl_fail(SL_ERR_NOMEM, "metadata");
    for (i = 0; i < r->ntopics; i++)
        names[i] = r->topics[i].name;
    rc = sl_cl_route_metadata(r, names, r->ntopics,
                              sl_cl_deadline(r->cfg->request_timeout_ms), a,
                              &resp, &fr);
    free(names);
    sl_chunk_unref(fr);
    return rc;
}

sl_cl_conn *sl_cl_route_conn(sl_cl_router *r, const char *topic,
                             int32_t partition)
{
    sl_cl_rtopic *t = topic_find(r, topic, strlen(topic));
    sl_cl_bnode *n;
    int32_t ld;

    if (!t || partition < 0 || partition >= t->nparts)
        return &r->boot; /* not known yet: the broker judges */
    ld = t->leader[partition];
    if (ld == SL_META_LEADER_ANY)
        return &r->boot;
    if (ld == SL_META_LEADER_NONE) {
        r->stale = 1; /* a failover in progress: ask again */
        return NULL;
    }
    n = node_find(r, ld);
    if (!n) {
        r->stale = 1;
        /* TLS: a leader not (yet) identified among the bootstrap
         * addresses is reached as before TLS routing: the bootstrap
         * connection answers NOT_LEADER, retried (route.h) */
        return r->cfg->tls ? &r->boot : NULL;
    }
    return &n->conn;
}

int32_t sl_cl_route_epoch(sl_cl_router *r, const char *topic, int32_t partition)
{
    sl_cl_rtopic *t = topic_find(r, topic, strlen(topic));
    if (!t || partition < 0 || partition >= t->nparts)
        return -1;
    return t->epoch[partition];
}

void sl_cl_route_failed(sl_cl_router *r, sl_cl_conn *c)
{
    sl_cl_bnode *n = c ? node_of_conn(r, c) : NULL;
    if (!n && c == &r->boot && r->boot_id > 0)
        n = node_find(r, r->boot_id);
    r->stale = 1;
    if (n)
        n->bad_until = sl_cl_now_ms() + BAD_MS;
}
