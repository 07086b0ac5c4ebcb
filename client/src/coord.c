/*
 * coord.c - finding a group's coordinator (docs/cluster.md 6).
 *
 * In a cluster, a group's state (queue windows, stream offsets) is
 * served by one node, the leader of partition fnv1a32(group) mod
 * partitions of __sluice_group_state; any other node answers its
 * requests with NOT_COORDINATOR. A consumer connects through the
 * bootstrap list, asks that node METADATA version 2 for the state topic,
 * and reconnects to the leader it names (over TLS: version 3, at the TLS
 * address the leader registered; a broker without version 3, or a
 * leader without a TLS address: the bootstrap entry that is that node).
 * Whatever fails on the way (a single node, no state topic yet, an election,
 * the leader unreachable) keeps a connection to whichever node answered:
 * the broker's NOT_COORDINATOR makes the caller drop it and come back here.
 *
 * Rediscovery: when the coordinator dies, its consumers' connections drop
 * (or their reconnects are refused) and they come back here, as a Kafka
 * consumer marks its coordinator unknown and sends FIND_COORDINATOR
 * again. The callers (queue.c, consumer.c) retry reconnect.backoff.ms
 * apart within delivery.timeout.ms; each round asks any node that
 * answers. That is the bootstrap list first, and when none of it answers,
 * the brokers the last METADATA reply named (coord->known). A bootstrap
 * list can go stale while the cluster runs on: its nodes dead, or
 * restarted at other addresses. Before, a consumer then kept trying the
 * bootstrap list (and the dead coordinator) until delivery.timeout.ms and
 * raised "connection refused" while two nodes were serving its group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/coord.h"
#include "protocol/api.h"
#include "protocol/hash.h"

#define STATE_TOPIC "__sluice_group_state"

/* The node id conn is connected to (METADATA answers it), 0 = unknown. */
static int32_t conn_node(sl_cl_conn *conn)
{
    sl_metadata_req req;
    sl_metadata_resp resp;
    sl_chunk *fr = NULL;
    sl_arena arena;
    const uint8_t *body;
    size_t len;
    uint32_t corr;
    int32_t id = 0;
    sl_arena_init(&arena);
    memset(&req, 0, sizeof(req));
    req.version = 2;
    corr = sl_cl_conn_corr(conn);
    if (sl_metadata_req_encode(&conn->out, corr, &req) == SL_OK &&
        sl_cl_conn_call(conn, corr,
                        sl_cl_deadline(conn->cfg->request_timeout_ms),
                        &fr) == SL_OK) {
        body = sl_frame_body(fr, &len, &corr);
        if (sl_metadata_resp_decode(body, len, &arena, &resp) == SL_OK &&
            resp.error == SL_OK)
            id = resp.node_id;
    }
    sl_chunk_unref(fr);
    sl_arena_fini(&arena);
    return id;
}

/* "host:port" a into host and port; 0 = it does not fit or has no port. */
static int split_addr(sl_str a, char *host, size_t hsize, char *port,
                      size_t psize)
{
    const char *colon;
    if (!a.p || !a.len || a.len >= hsize)
        return 0;
    colon = memrchr(a.p, ':', a.len);
    if (!colon || (size_t)(a.p + a.len - colon - 1) >= psize)
        return 0;
    memcpy(host, a.p, (size_t)(colon - a.p));
    host[colon - a.p] = 0;
    memcpy(port, colon + 1, (size_t)(a.p + a.len - colon - 1));
    port[a.p + a.len - colon - 1] = 0;
    return 1;
}

/* Remember the brokers resp names, at the address this client uses. A
 * reply naming none this client can use (a single node; over TLS, a
 * broker without version 3) keeps what was known. */
static void remember(sl_cl_coord *co, const sl_metadata_resp *resp, int tls)
{
    int n = 0;
    for (uint32_t i = 0; i < resp->nbrokers && n < SL_CL_COORD_KNOWN; i++) {
        sl_str a = tls ? resp->brokers[i].tls_addr : resp->brokers[i].addr;
        if (split_addr(a, co->known[n].host, sizeof(co->known[n].host),
                       co->known[n].port, sizeof(co->known[n].port)))
            n++;
    }
    if (n > 0)
        co->nknown = n;
}

/* host:port is in the bootstrap list (tried already). */
static int in_boot(const sl_cl_cfg *cfg, const char *host, const char *port)
{
    if (cfg->nboot == 0)
        return !strcmp(cfg->host, host) && !strcmp(cfg->port, port);
    for (int i = 0; i < cfg->nboot; i++)
        if (!strcmp(cfg->boot_host[i], host) &&
            !strcmp(cfg->boot_port[i], port))
            return 1;
    return 0;
}

/* Connect conn to any node that answers: the bootstrap list, and if none
 * of it does, the known brokers not in it. Within reconnect.backoff.ms of
 * a round that failed, fails at once (conn.c's backoff), so the callers'
 * retries come reconnect.backoff.ms apart. */
static sl_err connect_any(sl_cl_conn *conn, sl_cl_coord *co)
{
    int fresh = sl_cl_now_ms() - conn->last_attempt_ms >=
                conn->cfg->reconnect_backoff_ms;
    sl_err rc;

    conn->fixed_host = conn->fixed_port = NULL;
    rc = sl_cl_conn_ensure(conn);
    if (rc == SL_OK || !fresh)
        return rc;
    for (int i = 0; i < co->nknown; i++) {
        if (in_boot(conn->cfg, co->known[i].host, co->known[i].port))
            continue;
        snprintf(co->host, sizeof(co->host), "%s", co->known[i].host);
        snprintf(co->port, sizeof(co->port), "%s", co->known[i].port);
        conn->fixed_host = co->host;
        conn->fixed_port = co->port;
        conn->last_attempt_ms = INT64_MIN / 2; /* one round, one backoff */
        rc = sl_cl_conn_ensure(conn);
        if (rc == SL_OK)
            return SL_OK;
    }
    /* the error names the last address tried; the next round starts
     * from the bootstrap list again */
    conn->fixed_host = conn->fixed_port = NULL;
    return rc;
}

/* TLS: the bootstrap list holds every node's TLS address (docs/cluster.md
 * 5); the entry whose node is ld is the coordinator's. None: any node
 * again (the broker's NOT_COORDINATOR brings the caller back). */
static void move_tls(sl_cl_conn *conn, int32_t ld, sl_cl_coord *co)
{
    for (int i = 0; i < conn->cfg->nboot; i++) {
        snprintf(co->host, sizeof(co->host), "%s", conn->cfg->boot_host[i]);
        snprintf(co->port, sizeof(co->port), "%s", conn->cfg->boot_port[i]);
        sl_cl_conn_close(conn);
        conn->fixed_host = co->host;
        conn->fixed_port = co->port;
        conn->last_attempt_ms = INT64_MIN / 2;
        if (sl_cl_conn_ensure(conn) == SL_OK && conn_node(conn) == ld)
            return;
    }
    sl_cl_conn_close(conn);
    conn->last_attempt_ms = INT64_MIN / 2;
    connect_any(conn, co);
}

void sl_cl_coord_move(sl_cl_conn *conn, const char *group, sl_cl_coord *co)
{
    sl_metadata_req req;
    sl_metadata_resp resp;
    sl_str name = sl_str_c(STATE_TOPIC);
    sl_chunk *fr = NULL;
    sl_arena arena;
    const uint8_t *body;
    const sl_meta_topic *t;
    size_t len;
    uint32_t corr, i;
    int32_t ld;

    sl_arena_init(&arena);
    memset(&req, 0, sizeof(req));
    req.ntopics = 1;
    req.topics = &name;
    /* TLS: version 3 names the brokers' TLS addresses; a broker without
     * it answers UNSUPPORTED_VERSION: version 2 then */
    for (req.version = conn->cfg->tls ? 3 : 2;; req.version = 2) {
        sl_chunk_unref(fr);
        fr = NULL;
        sl_arena_reset(&arena);
        corr = sl_cl_conn_corr(conn);
        if (sl_metadata_req_encode(&conn->out, corr, &req) != SL_OK ||
            sl_cl_conn_call(conn, corr,
                            sl_cl_deadline(conn->cfg->request_timeout_ms),
                            &fr) != SL_OK)
            goto out;
        body = sl_frame_body(fr, &len, &corr);
        if (sl_metadata_resp_decode(body, len, &arena, &resp) != SL_OK)
            goto out;
        if (resp.error != SL_ERR_UNSUPPORTED_VERSION || req.version == 2)
            break;
    }
    if (resp.error != SL_OK || resp.nbrokers == 0)
        goto out;
    remember(co, &resp, conn->cfg->tls);
    if (resp.ntopics != 1)
        goto out;
    t = &resp.topics[0];
    if (t->error != SL_OK || t->nparts == 0)
        goto out;
    ld = t->parts[sl_fnv1a32(group, strlen(group)) % t->nparts].leader;
    if (ld <= 0 || ld == resp.node_id)
        goto out; /* any node, offline now, or this one */
    if (conn->cfg->tls) {
        /* its TLS address, if it registered one (version 3) */
        for (i = 0; i < resp.nbrokers; i++)
            if (resp.brokers[i].id == ld && resp.brokers[i].tls_addr.len > 0)
                break;
        if (i == resp.nbrokers) {
            move_tls(conn, ld, co);
            goto out;
        }
    }
    for (i = 0; i < resp.nbrokers; i++) {
        sl_str a =
            conn->cfg->tls ? resp.brokers[i].tls_addr : resp.brokers[i].addr;
        char host[sizeof(co->host)], port[sizeof(co->port)];
        if (resp.brokers[i].id != ld)
            continue;
        if (!split_addr(a, host, sizeof(host), port, sizeof(port)))
            break;
        sl_cl_conn_close(conn);
        memcpy(co->host, host, sizeof(host));
        memcpy(co->port, port, sizeof(port));
        conn->fixed_host = co->host;
        conn->fixed_port = co->port;
        conn->last_attempt_ms = INT64_MIN / 2; /* no backoff for this */
        if (sl_cl_conn_ensure(conn) != SL_OK) {
            /* not reachable (dead, not fenced yet): any node rather
             * than none; its NOT_COORDINATOR brings the caller back */
            conn->last_attempt_ms = INT64_MIN / 2;
            connect_any(conn, co);
        }
        break;
    }
out:
    sl_chunk_unref(fr);
    sl_arena_fini(&arena);
    sl_cl_clear_err();
}

sl_err sl_cl_coord_ensure(sl_cl_conn *conn, const char *group, sl_cl_coord *co)
{
    sl_err rc;
    if (conn->fd >= 0)
        return SL_OK;
    rc = connect_any(conn, co);
    if (rc == SL_OK)
        sl_cl_coord_move(conn, group, co);
    return rc;
}
