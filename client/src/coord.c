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
 * the leader unreachable) keeps the bootstrap connection: the broker's
 * NOT_COORDINATOR makes the caller drop it and come back here.
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

/* TLS: the bootstrap list holds every node's TLS address (docs/cluster.md
 * 5); the entry whose node is ld is the coordinator's. None: the bootstrap
 * list again (the broker's NOT_COORDINATOR brings the caller back). */
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
    conn->fixed_host = conn->fixed_port = NULL;
    conn->last_attempt_ms = INT64_MIN / 2;
    sl_cl_conn_ensure(conn);
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
    if (resp.error != SL_OK || resp.nbrokers == 0 || resp.ntopics != 1)
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
        const char *colon;
        if (resp.brokers[i].id != ld || !a.p || !a.len ||
            a.len >= sizeof(co->host))
            continue;
        colon = memrchr(a.p, ':', a.len);
        if (!colon || (size_t)(a.p + a.len - colon - 1) >= sizeof(co->port))
            break;
        memcpy(co->host, a.p, (size_t)(colon - a.p));
        co->host[colon - a.p] = 0;
        memcpy(co->port, colon + 1, (size_t)(a.p + a.len - colon - 1));
        co->port[a.p + a.len - colon - 1] = 0;
        sl_cl_conn_close(conn);
        conn->fixed_host = co->host;
        conn->fixed_port = co->port;
        conn->last_attempt_ms = INT64_MIN / 2; /* no backoff for this */
        if (sl_cl_conn_ensure(conn) != SL_OK) {
            /* not reachable: any node rather than none */
            conn->fixed_host = conn->fixed_port = NULL;
            conn->last_attempt_ms = INT64_MIN / 2;
            sl_cl_conn_ensure(conn);
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
    conn->fixed_host = conn->fixed_port = NULL; /* the bootstrap list */
    rc = sl_cl_conn_ensure(conn);
    if (rc == SL_OK)
        sl_cl_coord_move(conn, group, co);
    return rc;
}
