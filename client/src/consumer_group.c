/*
 * consumer_group.c - a sluice_consumer in a stream group: join (its
 * assignment), heartbeats, the periodic group work of poll, and commits.
 * The rules are in the essay at the top of consumer.c.
 *
 * Member ids are made here, before the first join (as KIP-848 clients
 * do), not by the broker. A join whose reply is lost (the coordinator
 * died after its record was replicated, or a timeout) is sent again under
 * the same id, to whichever node coordinates by then: the new coordinator
 * knows the member from the replicated record and answers with its
 * assignment, without a rebalance. With a broker-made id the retry came
 * as a second new member, and the first (whose id the client never
 * learned) held its partitions, unread, until its session ran out.
 *
 * Auto-commit (enable.auto.commit) that fails is not dropped: it is
 * counted (sluice_consumer_auto_commit_failures, with the error) and
 * sent again, with the positions of that moment, at the next poll after
 * reconnect.backoff.ms, as Kafka's consumer retries its auto-commit to
 * the new coordinator. Only a fenced commit (a rebalance happened) is
 * not retried: the partitions may be another member's now.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "client/src/consumer_int.h"

/* ---- groups ----------------------------------------------------------- */

/* A new member id: client.id (at most 40 bytes), '-', 16 hex digits
 * (random). Fits the broker's 63. */
static void new_member_id(sluice_consumer *c)
{
    static uint64_t seq;
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = ((uint64_t)sl_cl_now_ms() * 0x9E3779B97F4A7C15ull) ^
            ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c ^
            __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(c->member_id, sizeof(c->member_id), "%.40s-%016llx",
             c->cfg.client_id[0] ? c->cfg.client_id : "member",
             (unsigned long long)r);
    c->generation = -1; /* nothing to keep from a previous membership */
}

sl_err sl_cons_join_group(sluice_consumer *c)
{
    sl_group_join_req req;
    sl_group_join_resp resp;
    sl_str *topics;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len, i, nold = 0;
    uint32_t corr, rc_corr, t, k;
    cpart *old = NULL;
    int keep;
    sl_err rc;

    rc = sl_cons_ensure_conn(c);
    if (rc != SL_OK)
        return rc;
    if (!c->member_id[0])
        new_member_id(c);
    sl_arena_reset(&c->arena);
    topics = sl_arena_alloc(&c->arena, c->ntopics * sizeof(*topics));
    if (!topics)
        return sl_cl_fail(SL_ERR_NOMEM, "join");
    for (i = 0; i < c->ntopics; i++)
        topics[i] = sl_str_c(c->topics[i]);
    memset(&req, 0, sizeof(req));
    req.group = sl_str_c(c->cfg.group_id);
    req.member_id = sl_str_c(c->member_id);
    req.client_id = sl_str_c(c->cfg.client_id);
    req.session_timeout_ms = (uint32_t)c->cfg.session_timeout_ms;
    req.rebalance_timeout_ms = (uint32_t)c->cfg.session_timeout_ms;
    req.assignor = SL_ASSIGN_RANGE;
    req.ntopics = (uint32_t)c->ntopics;
    req.topics = topics;
    corr = sl_cl_conn_corr(&c->conn);
    rc = sl_group_join_req_encode(&c->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "join group '%s'", c->cfg.group_id);
    rc = sl_cons_call(c, corr, &fr);
    if (rc != SL_OK)
        return rc;
    body = sl_frame_body(fr, &len, &rc_corr);
    rc = sl_cons_coord_check(c, sl_cl_resp_check(body, len, "join group"));
    if (rc == SL_ERR_UNKNOWN_MEMBER) {
        c->member_id[0] = '\0'; /* expired: join as new next time */
        c->need_rejoin = 1;
    }
    if (rc != SL_OK)
        goto out;
    sl_arena_reset(&c->arena);
    rc = sl_group_join_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "join group");
        goto out;
    }
    /* the same member in the same generation (a rejoin after a lost
     * connection or a coordinator failover): its partitions are the
     * ones it has, so it goes on from its positions, not the committed
     * offsets */
    keep = c->member_id[0] && c->generation == resp.generation &&
           sl_str_eq(resp.member_id, c->member_id);
    if (keep && c->nparts && !(old = calloc(c->nparts, sizeof(*old))))
        keep = 0;
    for (i = 0; keep && i < c->nparts; i++)
        old[i] = c->parts[i];
    nold = keep ? c->nparts : 0;
    for (i = 0; i < nold; i++) /* the topic names are still needed */
        c->parts[i].topic = NULL;
    snprintf(c->member_id, sizeof(c->member_id), "%.*s",
             (int)resp.member_id.len, resp.member_id.p ? resp.member_id.p : "");
    c->generation = resp.generation;
    c->hb_interval_ms = resp.heartbeat_interval_ms
                            ? (int)resp.heartbeat_interval_ms
                            : c->cfg.heartbeat_interval_ms;
    if (c->hb_interval_ms > c->cfg.heartbeat_interval_ms)
        c->hb_interval_ms = c->cfg.heartbeat_interval_ms;
    c->next_hb_ms = sl_cl_now_ms() + c->hb_interval_ms;
    c->need_rejoin = 0;
    sl_cons_clear_parts(c);
    for (t = 0; t < resp.ntopics && rc == SL_OK; t++)
        for (k = 0; k < resp.assignment[t].nparts && rc == SL_OK; k++)
            rc = sl_cons_add_part(
                c, resp.assignment[t].topic.p, resp.assignment[t].topic.len,
                (int32_t)resp.assignment[t].parts[k], SLUICE_OFFSET_STORED);
    sl_chunk_unref(fr);
    fr = NULL;
    for (i = 0; i < nold; i++) {
        int idx = sl_cons_find_part(c, old[i].topic, old[i].partition);
        if (idx >= 0 && old[i].position >= 0)
            c->parts[idx].position = c->parts[idx].fetch_pos = old[i].position;
        free(old[i].topic);
    }
    if (rc == SL_OK)
        rc = sl_cons_resolve_all(c);
out:
    free(old);
    sl_chunk_unref(fr);
    return rc;
}

static void send_heartbeat(sluice_consumer *c)
{
    sl_group_member_req req;
    uint32_t corr;
    if (c->hb_corr)
        return;
    req.group = sl_str_c(c->cfg.group_id);
    req.member_id = sl_str_c(c->member_id);
    req.generation = c->generation;
    corr = sl_cl_conn_corr(&c->conn);
    if (sl_group_member_req_encode(&c->conn.out, SL_API_GROUP_HEARTBEAT, corr,
                                   &req) != SL_OK)
        return;
    if (sl_cl_conn_write(&c->conn, sl_cl_deadline(c->cfg.request_timeout_ms)) ==
        SL_OK) {
        c->hb_corr = corr;
        c->hb_sent_ms = sl_cl_now_ms();
    }
    c->next_hb_ms = sl_cl_now_ms() + c->hb_interval_ms;
}

/* One auto-commit of the current positions. A failure is counted, kept
 * (its message) and, unless the commit was fenced by a rebalance, tried
 * again at the next poll reconnect.backoff.ms later, with the positions
 * of then. The failed request already dropped the connection when the
 * coordinator is gone, moved (NOT_COORDINATOR) or did not answer in
 * time (consumer.c), so the retry looks the coordinator up again. */
void sl_cons_auto_commit(sluice_consumer *c)
{
    int64_t now = sl_cl_now_ms();
    int backoff =
        c->cfg.reconnect_backoff_ms > 10 ? c->cfg.reconnect_backoff_ms : 10;
    sl_err rc = sl_cons_commit_locked(c, NULL, 0);
    c->next_autocommit_ms = now + c->cfg.auto_commit_interval_ms;
    if (rc == SL_OK)
        return;
    c->autocommit_failed++;
    sl_cl_errstr_copy(c->autocommit_err, sizeof(c->autocommit_err));
    if (!c->autocommit_err[0])
        snprintf(c->autocommit_err, sizeof(c->autocommit_err), "error %d",
                 (int)rc);
    if (sl_cons_retriable(rc) && now + backoff < c->next_autocommit_ms)
        c->next_autocommit_ms = now + backoff;
    sl_cl_clear_err();
}

/* Periodic work in poll: heartbeat, rejoin, auto commit. */
sl_err sl_cons_group_tick(sluice_consumer *c)
{
    int64_t now = sl_cl_now_ms();
    sl_err rc = SL_OK;
    if (c->cfg.auto_commit && c->cfg.group_id[0] &&
        now >= c->next_autocommit_ms)
        sl_cons_auto_commit(c);
    if (c->coord_lost)
        sl_cons_coord_check(c, SL_OK);
    if (!c->subscribed)
        return SL_OK;
    if (c->need_rejoin || !sl_cl_conn_connected(&c->conn)) {
        if (c->cfg.auto_commit)
            sl_cons_auto_commit(c);
        rc = sl_cons_join_group(c);
        /* no reply in time: the connection is closed (consumer.c), the
         * coordinator is looked up again and the join sent again, as
         * after a lost connection (poll's ride_out) */
        if (rc == SL_ERR_TIMEOUT)
            rc = SL_ERR_DISCONNECTED;
        if (rc != SL_OK)
            return rc;
    }
    if (now >= c->next_hb_ms)
        send_heartbeat(c);
    return SL_OK;
}

/* ---- commit ----------------------------------------------------------- */

sl_err sl_cons_commit_locked(sluice_consumer *c,
                             const sluice_topic_partition *tps, size_t n)
{
    sl_offset_commit_req req;
    sl_offset_commit_resp resp;
    sl_commit_topic *topics;
    size_t i, t, ntopics = 0, count = tps ? n : c->nparts;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr, rc_corr, k;
    sl_err rc;

    if (!c->cfg.group_id[0])
        return sl_cl_fail(SL_ERR_INVALID_ARG, "commit needs group.id");
    if (count == 0)
        return SL_OK;
    rc = sl_cons_ensure_conn(c);
    if (rc != SL_OK)
        return rc;
    sl_arena_reset(&c->arena);
    topics = sl_arena_alloc(&c->arena, count * sizeof(*topics));
    if (!topics)
        return sl_cl_fail(SL_ERR_NOMEM, "commit");
    for (i = 0; i < count; i++) {
        const char *tn = tps ? tps[i].topic : c->parts[i].topic;
        int32_t part = tps ? tps[i].partition : c->parts[i].partition;
        int64_t off = tps ? tps[i].offset : c->parts[i].position;
        if (off < 0)
            continue;
        for (t = 0; t < ntopics; t++)
            if (sl_str_eq(topics[t].topic, tn))
                break;
        if (t == ntopics) {
            topics[t].topic = sl_str_c(tn);
            topics[t].nparts = 0;
            topics[t].parts =
                sl_arena_alloc(&c->arena, count * sizeof(sl_commit_part));
            if (!topics[t].parts)
                return sl_cl_fail(SL_ERR_NOMEM, "commit");
            ntopics++;
        }
        k = topics[t].nparts++;
        topics[t].parts[k].partition = (uint32_t)part;
        topics[t].parts[k].offset = off;
        topics[t].parts[k].metadata = sl_str_c(NULL);
    }
    if (ntopics == 0)
        return SL_OK;
    req.group = sl_str_c(c->cfg.group_id);
    if (c->subscribed && c->member_id[0]) {
        req.member_id = sl_str_c(c->member_id);
        req.generation = c->generation;
    } else {
        req.member_id = sl_str_c(NULL);
        req.generation = -1;
    }
    req.ntopics = (uint32_t)ntopics;
    req.topics = topics;
    corr = sl_cl_conn_corr(&c->conn);
    rc = sl_offset_commit_req_encode(&c->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "commit");
    rc = sl_cons_call(c, corr, &fr);
    if (rc != SL_OK)
        return rc;
    body = sl_frame_body(fr, &len, &rc_corr);
    rc = sl_cons_coord_check(c, sl_cl_resp_check(body, len, "commit"));
    if (rc == SL_ERR_REBALANCE || rc == SL_ERR_UNKNOWN_MEMBER)
        c->need_rejoin = 1;
    if (rc != SL_OK)
        goto out;
    sl_arena_reset(&c->arena);
    rc = sl_offset_commit_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "commit");
        goto out;
    }
    for (t = 0; t < resp.ntopics; t++)
        for (k = 0; k < resp.topics[t].nparts; k++)
            if (resp.topics[t].parts[k].error != SL_OK && rc == SL_OK)
                rc = sl_cl_fail(
                    (sl_err)resp.topics[t].parts[k].error,
                    "commit '%.*s' partition %u", (int)resp.topics[t].topic.len,
                    resp.topics[t].topic.p, resp.topics[t].parts[k].partition);
    if (rc == SL_ERR_REBALANCE || rc == SL_ERR_UNKNOWN_MEMBER)
        c->need_rejoin = 1;
out:
    sl_chunk_unref(fr);
    return rc;
}
