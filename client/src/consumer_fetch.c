/*
 * consumer_fetch.c - the fetch pipeline of sluice_consumer (consumer.c has
 * the public calls; consumer_int.h the structure they share).
 *
 * Fetch pipeline: at most one FETCH in flight. When its reply arrives, the
 * next fetch offsets are computed from the batch headers (no record
 * decoding) and the next FETCH is sent before the records of this one are
 * turned into messages, so the broker works while we decode (up to about
 * 2 x fetch.max.bytes buffered). Anything that
 * moves positions (assign, seek, rebalance) bumps `gen`, drops buffered
 * replies and ignores the fetch in flight.
 *
 * Routing (docs/cluster.md section 5): in a cluster each partition's
 * FETCH and LIST_OFFSETS go to its leader (METADATA version 2, asked on
 * this connection when positions are resolved and after a routing
 * failure; route.c holds the leaders and one connection per broker). A
 * node that holds no replica of a partition has nothing to serve for it.
 * One FETCH is in flight at a time, carrying the partitions of one
 * leader; when the assigned partitions have several leaders the fetches
 * take turns (with a shorter broker wait). Group requests, commits and
 * heartbeats stay on this connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/conn.h"
#include "client/src/consumer_int.h"
#include "client/src/cursor.h"
#include "client/src/internal.h"
#include "client/src/route.h"
#include "protocol/api.h"

static int find_part_str(sluice_consumer *c, sl_str topic, int32_t part)
{
    size_t i;
    for (i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == part &&
            sl_str_eq(topic, c->parts[i].topic))
            return (int)i;
    return -1;
}

/* ---- fetching --------------------------------------------------------- */

/* Where each assigned partition is served (METADATA version 2 of each
 * topic, on this connection), when stale. */
sl_err sl_cons_refresh_placement(sluice_consumer *c)
{
    size_t i, j;
    sl_meta_topic *mt;
    sl_chunk *fr;
    sl_err rc;

    if (!c->rt_stale)
        return SL_OK;
    for (i = 0; i < c->nparts; i++) {
        for (j = 0; j < i; j++)
            if (!strcmp(c->parts[j].topic, c->parts[i].topic))
                break;
        if (j < i)
            continue; /* asked already */
        rc = sl_cons_topic_meta(c, c->parts[i].topic, &fr, &mt);
        sl_chunk_unref(fr);
        if (rc == SL_ERR_DISCONNECTED || rc == SL_ERR_TIMEOUT)
            return rc;
        /* another error (unknown topic): the fetch will say */
    }
    sl_cl_clear_err();
    c->rt_stale = 0;
    c->rt.stale = 0;
    return SL_OK;
}

sl_err sl_cons_send_fetch(sluice_consumer *c, int max_wait_ms)
{
    sl_fetch_req req;
    sl_fetch_topic *topics;
    size_t i, k, t, ntopics = 0, start;
    sl_cl_conn *to = NULL, *pc;
    int others = 0;
    uint32_t corr;
    sl_err rc;

    if (c->fetch_corr || c->nparts == 0)
        return SL_OK;
    memset(&req, 0, sizeof(req));
    sl_arena_reset(&c->arena);
    topics = sl_arena_alloc(&c->arena, c->nparts * sizeof(*topics));
    if (!topics)
        return sl_cl_fail(SL_ERR_NOMEM, "fetch");
    start = c->fetch_rr % c->nparts;
    for (k = 0; k < c->nparts; k++) {
        cpart *cp;
        i = (start + k) % c->nparts;
        cp = &c->parts[i];
        if (cp->fetch_pos < 0)
            continue;
        pc = sl_cons_part_conn(c, cp->topic, cp->partition);
        if (!to) {
            to = pc;
            c->fetch_rr = i + 1;
        } else if (pc != to) {
            others = 1; /* another leader's turn comes next */
            continue;
        }
        for (t = 0; t < ntopics; t++)
            if (sl_str_eq(topics[t].topic, cp->topic))
                break;
        if (t == ntopics) {
            topics[t].topic = sl_str_c(cp->topic);
            topics[t].nparts = 0;
            topics[t].parts =
                sl_arena_alloc(&c->arena, c->nparts * sizeof(sl_fetch_part));
            if (!topics[t].parts)
                return sl_cl_fail(SL_ERR_NOMEM, "fetch");
            ntopics++;
        }
        topics[t].parts[topics[t].nparts].partition = (uint32_t)cp->partition;
        topics[t].parts[topics[t].nparts].fetch_offset = cp->fetch_pos;
        topics[t].parts[topics[t].nparts].max_bytes =
            (uint32_t)c->cfg.fetch_max_bytes;
        topics[t].nparts++;
    }
    if (c->rt.stale)
        c->rt_stale = 1; /* a partition without a leader: ask again */
    if (ntopics == 0)
        return SL_OK;
    if (others && max_wait_ms > 100)
        max_wait_ms = 100;
    if (to != &c->conn) {
        rc = sl_cl_conn_ensure(to);
        if (rc != SL_OK) {
            c->rt_stale = 1;
            return rc;
        }
    }
    req.max_wait_ms = (uint32_t)(max_wait_ms < 0 ? 0 : max_wait_ms);
    req.min_bytes = (uint32_t)c->cfg.fetch_min_bytes;
    req.max_bytes = (uint32_t)c->cfg.fetch_max_bytes;
    req.ntopics = (uint32_t)ntopics;
    req.topics = topics;
    corr = sl_cl_conn_corr(to);
    rc = sl_fetch_req_encode(&to->out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "fetch");
    rc = sl_cl_conn_write(to, sl_cl_deadline(c->cfg.request_timeout_ms));
    if (rc != SL_OK) {
        if (to != &c->conn) {
            sl_cl_conn_close(to);
            c->rt_stale = 1;
        }
        return rc;
    }
    c->fetch_corr = corr;
    c->fetch_conn = to;
    c->fetch_gen = c->gen;
    return SL_OK;
}

static void set_perr(sluice_consumer *c, sl_err e, const char *topic,
                     int32_t part, int64_t off)
{
    if (c->perr != SL_OK)
        return;
    c->perr = e;
    snprintf(c->perr_msg, sizeof(c->perr_msg),
             "fetch topic '%s' partition %d offset %lld", topic, (int)part,
             (long long)off);
}

static void handle_fetch(sluice_consumer *c, sl_chunk *fr)
{
    sl_fetch_resp resp;
    const uint8_t *body;
    size_t len, pending_bytes = 0;
    uint32_t corr, t, i;
    sl_err rc;
    int idx;

    body = sl_frame_body(fr, &len, &corr);
    sl_arena_reset(&c->arena);
    rc = sl_fetch_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK) {
        set_perr(c, SL_ERR_PROTOCOL, "*", -1, -1);
        return;
    }
    if (resp.error != SL_OK) {
        if (c->perr == SL_OK) {
            c->perr = (sl_err)resp.error;
            snprintf(c->perr_msg, sizeof(c->perr_msg), "fetch: %.*s",
                     (int)resp.error_msg.len,
                     resp.error_msg.p ? resp.error_msg.p : "");
        }
        return;
    }
    for (t = 0; t < resp.ntopics; t++) {
        sl_fetch_topic_resp *tr = &resp.topics[t];
        for (i = 0; i < tr->nparts; i++) {
            sl_fetch_part_resp *pr = &tr->parts[i];
            int64_t end;
            fbuf *b;
            idx = find_part_str(c, tr->topic, (int32_t)pr->partition);
            if (idx < 0)
                continue;
            if (pr->error == SL_ERR_NOT_LEADER) {
                c->rt_stale = 1; /* the placement moved: ask again */
                continue;
            }
            if (pr->error != SL_OK) {
                cpart *cp = &c->parts[idx];
                set_perr(c, (sl_err)pr->error, cp->topic, cp->partition,
                         cp->fetch_pos);
                if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE) {
                    /* restart per auto.offset.reset */
                    cp->position = c->cfg.offset_reset_earliest
                                       ? pr->log_start_offset
                                       : pr->log_end_offset;
                    cp->fetch_pos = cp->position;
                }
                continue;
            }
            if (pr->records_len == 0)
                continue;
            end = sl_records_end(pr->records, pr->records_len);
            if (end > c->parts[idx].fetch_pos)
                c->parts[idx].fetch_pos = end;
            b = calloc(1, sizeof(*b));
            if (!b) {
                set_perr(c, SL_ERR_NOMEM, c->parts[idx].topic,
                         (int32_t)pr->partition, -1);
                continue;
            }
            b->cp = idx;
            sl_cursor_init(&b->cu, fr, pr->records, pr->records_len);
            if (c->btail)
                c->btail->next = b;
            else
                c->bhead = b;
            c->btail = b;
            pending_bytes += pr->records_len;
        }
    }
    c->buffered_bytes += pending_bytes;
    c->caught_up = pending_bytes == 0;
}

void sl_cons_handle_frame(sluice_consumer *c, sl_cl_conn *on, sl_chunk *fr)
{
    size_t len;
    uint32_t corr;
    const uint8_t *body = sl_frame_body(fr, &len, &corr);
    int32_t err;
    sl_str msg;

    if (c->fetch_corr && on == c->fetch_conn && corr == c->fetch_corr) {
        c->fetch_corr = 0;
        if (c->fetch_gen == c->gen)
            handle_fetch(c, fr);
    } else if (c->hb_corr && on == &c->conn && corr == c->hb_corr) {
        c->hb_corr = 0;
        if (sl_status_resp_decode(body, len, &err, &msg) == SL_OK &&
            (err == SL_ERR_REBALANCE || err == SL_ERR_UNKNOWN_MEMBER ||
             err == SL_ERR_UNKNOWN_GROUP))
            c->need_rejoin = 1;
        else if (err == SL_ERR_NOT_COORDINATOR)
            c->coord_lost = 1; /* the next group tick reconnects */
    }
}

/* The next message from the buffers, or NULL. */
sluice_message *sl_cons_next_buffered(sluice_consumer *c, sl_err *err)
{
    sl_record r;
    sl_chunk *owner;
    sl_err e;
    fbuf *b;
    sluice_message *m;

    *err = SL_OK;
    while ((b = c->bhead)) {
        cpart *cp = &c->parts[b->cp];
        if (sl_cursor_next(&b->cu, &r, &owner, &e) == 1) {
            if (r.offset < cp->position)
                continue;
            m = sl_msg_new(cp->topic, strlen(cp->topic), cp->partition, &r,
                           owner);
            if (!m) {
                *err = sl_cl_fail(SL_ERR_NOMEM, "message");
                return NULL;
            }
            cp->position = r.offset + 1;
            return m;
        }
        if (e != SL_OK) {
            /* A damaged batch (CRC mismatch, records that do not parse):
             * name its offsets and stay before it. The error repeats on
             * every poll until the application seeks past it
             * (sluice_consumer_seek to the offset after it); records are
             * never skipped silently, and the records of other
             * partitions already buffered are fetched again. */
            if (c->perr == SL_OK) {
                c->perr = e;
                if (b->cu.bad_first >= 0)
                    snprintf(c->perr_msg, sizeof(c->perr_msg),
                             "topic '%s' partition %d: damaged batch at "
                             "offsets %lld..%lld (%s); seek to %lld to skip "
                             "it",
                             cp->topic, (int)cp->partition,
                             (long long)b->cu.bad_first,
                             (long long)b->cu.bad_last, sl_strerror(e),
                             (long long)b->cu.bad_last + 1);
                else
                    snprintf(c->perr_msg, sizeof(c->perr_msg),
                             "topic '%s' partition %d: damaged batch after "
                             "offset %lld (%s)",
                             cp->topic, (int)cp->partition,
                             (long long)cp->position, sl_strerror(e));
            }
            sl_cons_reset_pipeline(c); /* frees b */
            return NULL;
        }
        c->bhead = b->next;
        if (!c->bhead)
            c->btail = NULL;
        c->buffered_bytes -=
            b->cu.len < c->buffered_bytes ? b->cu.len : c->buffered_bytes;
        sl_cursor_fini(&b->cu);
        free(b);
    }
    return NULL;
}
