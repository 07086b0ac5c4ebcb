/*
 * consumer_offsets.c - a sluice_consumer's positions: LIST_OFFSETS,
 * committed offsets (OFFSET_FETCH), resolving special offsets, a topic's
 * partitions, and the public seek, seek_time, offset_for_time and
 * watermarks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/consumer_int.h"

/* ---- offsets ---------------------------------------------------------- */

/* LIST_OFFSETS for one partition: ts = SL_OFFSET_EARLIEST / _LATEST / ms */
static sl_err list_offset(sluice_consumer *c, const char *topic,
                          int32_t partition, int64_t ts, int64_t *out)
{
    sl_list_offsets_req req;
    sl_lo_topic t;
    sl_lo_part p;
    sl_list_offsets_resp resp;
    sl_cl_conn *on;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr, rc_corr;
    sl_err rc;

    rc = sl_cons_ensure_conn(c);
    if (rc != SL_OK)
        return rc;
    p.partition = (uint32_t)partition;
    p.timestamp = ts;
    t.topic = sl_str_c(topic);
    t.nparts = 1;
    t.parts = &p;
    req.ntopics = 1;
    req.topics = &t;
    on = sl_cons_part_conn(c, topic, partition);
    rc = sl_cl_conn_ensure(on);
    if (rc != SL_OK) {
        c->rt_stale = 1;
        return rc;
    }
    corr = sl_cl_conn_corr(on);
    rc = sl_list_offsets_req_encode(&on->out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "list offsets '%s'", topic);
    rc = sl_cons_call_on(c, on, corr, &fr);
    if (rc != SL_OK)
        return rc;
    body = sl_frame_body(fr, &len, &rc_corr);
    rc = sl_cl_resp_check(body, len, "list offsets");
    if (rc != SL_OK)
        goto out;
    sl_arena_reset(&c->arena);
    rc = sl_list_offsets_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "list offsets");
        goto out;
    }
    if (resp.ntopics != 1 || resp.topics[0].nparts != 1) {
        rc = sl_cl_fail(SL_ERR_PROTOCOL, "list offsets: bad reply");
        goto out;
    }
    if (resp.topics[0].parts[0].error != SL_OK) {
        rc = sl_cl_fail((sl_err)resp.topics[0].parts[0].error,
                        "topic '%s' partition %d", topic, (int)partition);
        goto out;
    }
    *out = resp.topics[0].parts[0].offset;
out:
    sl_chunk_unref(fr);
    return rc;
}

/* Committed offset of the group for one partition (-1 = none). */
sl_err sl_cons_fetch_committed(sluice_consumer *c, const char *topic,
                               int32_t partition, int64_t *out)
{
    sl_offset_fetch_req req;
    sl_topic_parts tp;
    uint32_t pid = (uint32_t)partition;
    sl_offset_fetch_resp resp;
    sl_chunk *fr = NULL;
    const uint8_t *body;
    size_t len;
    uint32_t corr, rc_corr, t, i;
    sl_err rc;

    if (!c->cfg.group_id[0])
        return sl_cl_fail(SL_ERR_INVALID_ARG,
                          "committed offsets need group.id");
    rc = sl_cons_ensure_conn(c);
    if (rc != SL_OK)
        return rc;
    tp.topic = sl_str_c(topic);
    tp.nparts = 1;
    tp.parts = &pid;
    req.group = sl_str_c(c->cfg.group_id);
    req.ntopics = 1;
    req.topics = &tp;
    corr = sl_cl_conn_corr(&c->conn);
    rc = sl_offset_fetch_req_encode(&c->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "offset fetch");
    rc = sl_cons_call(c, corr, &fr);
    if (rc != SL_OK)
        return rc;
    body = sl_frame_body(fr, &len, &rc_corr);
    rc = sl_cons_coord_check(c, sl_cl_resp_check(body, len, "offset fetch"));
    if (rc == SL_ERR_UNKNOWN_GROUP) {
        *out = -1; /* a new group: nothing committed */
        rc = SL_OK;
        goto out;
    }
    if (rc != SL_OK)
        goto out;
    sl_arena_reset(&c->arena);
    rc = sl_offset_fetch_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_bad_reply(rc, "offset fetch");
        goto out;
    }
    *out = -1;
    for (t = 0; t < resp.ntopics; t++) {
        if (!sl_str_eq(resp.topics[t].topic, topic))
            continue;
        for (i = 0; i < resp.topics[t].nparts; i++) {
            sl_committed_part *cp = &resp.topics[t].parts[i];
            if ((int32_t)cp->partition != partition)
                continue;
            if (cp->error != SL_OK && cp->error != SL_ERR_NOT_FOUND &&
                cp->error != SL_ERR_UNKNOWN_GROUP) {
                rc = sl_cl_fail((sl_err)cp->error,
                                "committed offset of '%s' partition %d", topic,
                                (int)partition);
                goto out;
            }
            if (cp->error == SL_OK)
                *out = cp->offset;
        }
    }
out:
    sl_chunk_unref(fr);
    return rc;
}

/* Turn a special offset into a real one. */
static sl_err resolve(sluice_consumer *c, const char *topic, int32_t part,
                      int64_t want, int64_t *out)
{
    int64_t off = want;
    sl_err rc = SL_OK;
    if (want == SLUICE_OFFSET_STORED) {
        rc = sl_cons_fetch_committed(c, topic, part, &off);
        if (rc != SL_OK)
            return rc;
        if (off < 0)
            want = c->cfg.offset_reset_earliest ? SLUICE_OFFSET_BEGINNING
                                                : SLUICE_OFFSET_END;
        else
            want = off;
    }
    if (want == SLUICE_OFFSET_BEGINNING)
        rc = list_offset(c, topic, part, SL_OFFSET_EARLIEST, &off);
    else if (want == SLUICE_OFFSET_END)
        rc = list_offset(c, topic, part, SL_OFFSET_LATEST, &off);
    else if (want < 0)
        return sl_cl_fail(SL_ERR_INVALID_ARG, "offset %lld", (long long)want);
    else
        off = want;
    if (rc == SL_OK)
        *out = off;
    return rc;
}

sl_err sl_cons_resolve_all(sluice_consumer *c)
{
    size_t i;
    sl_err rc;
    int changed = 0;
    for (i = 0; i < c->nparts; i++) {
        int64_t off = -1;
        if (c->parts[i].position >= 0)
            continue;
        rc = resolve(c, c->parts[i].topic, c->parts[i].partition,
                     c->parts[i].position, &off);
        if (rc != SL_OK)
            return rc;
        c->parts[i].position = off;
        changed = 1;
    }
    if (changed)
        sl_cons_reset_pipeline(c);
    return SL_OK;
}

/* ---- metadata --------------------------------------------------------- */

/* Partitions and offsets of one topic. */
sl_err sl_cons_topic_meta(sluice_consumer *c, const char *topic, sl_chunk **frp,
                          sl_meta_topic **out)
{
    sl_metadata_req req;
    sl_metadata_resp resp;
    sl_str name = sl_str_c(topic);
    const uint8_t *body;
    size_t len;
    uint32_t corr, rc_corr;
    sl_err rc;

    *frp = NULL;
    rc = sl_cons_ensure_conn(c);
    if (rc != SL_OK)
        return rc;
    req.ntopics = 1;
    req.topics = &name;
    req.version = 2;
    corr = sl_cl_conn_corr(&c->conn);
    rc = sl_metadata_req_encode(&c->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "topic '%s'", topic);
    rc = sl_cons_call(c, corr, frp);
    if (rc != SL_OK)
        return rc;
    body = sl_frame_body(*frp, &len, &rc_corr);
    rc = sl_cl_resp_check(body, len, "metadata");
    if (rc != SL_OK)
        return rc;
    sl_arena_reset(&c->arena);
    rc = sl_metadata_resp_decode(body, len, &c->arena, &resp);
    if (rc != SL_OK)
        return sl_cl_bad_reply(rc, "metadata");
    if (resp.ntopics != 1)
        return sl_cl_fail(SL_ERR_PROTOCOL, "metadata: bad reply");
    sl_cl_route_learn(&c->rt, &resp);
    if (resp.topics[0].error != SL_OK)
        return sl_cl_fail((sl_err)resp.topics[0].error, "topic '%s'", topic);
    *out = &resp.topics[0];
    return SL_OK;
}

sluice_err sluice_consumer_seek(sluice_consumer *c, const char *topic,
                                int32_t partition, int64_t offset)
{
    sl_err rc;
    int idx;
    int64_t off = -1;

    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    idx = sl_cons_find_part(c, topic, partition);
    if (idx < 0) {
        rc = sl_cl_fail(SL_ERR_INVALID_ARG,
                        "seek: topic '%s' partition %d is not assigned", topic,
                        (int)partition);
        goto out;
    }
    rc = resolve(c, topic, partition, offset, &off);
    if (rc == SL_OK) {
        c->parts[idx].position = off;
        sl_cons_reset_pipeline(c);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_seek_time(sluice_consumer *c, const char *topic,
                                     int32_t partition, int64_t ts_ms)
{
    sl_err rc = SL_OK;
    size_t i;
    int found = 0;
    int64_t off;

    sl_cl_clear_err();
    if (ts_ms < 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "seek: timestamp %lld", (long long)ts_ms);
    pthread_mutex_lock(&c->mu);
    for (i = 0; i < c->nparts && rc == SL_OK; i++) {
        if (strcmp(c->parts[i].topic, topic) != 0 ||
            (partition >= 0 && c->parts[i].partition != partition))
            continue;
        found = 1;
        rc = list_offset(c, topic, c->parts[i].partition, ts_ms, &off);
        if (rc == SL_OK)
            c->parts[i].position = off;
    }
    if (!found && rc == SL_OK)
        rc = sl_cl_fail(SL_ERR_INVALID_ARG,
                        "seek: topic '%s' partition %d is not assigned", topic,
                        (int)partition);
    sl_cons_reset_pipeline(c);
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

sluice_err sluice_consumer_offset_for_time(sluice_consumer *c,
                                           const char *topic, int32_t partition,
                                           int64_t ts_ms, int64_t *offset)
{
    sl_err rc;
    int64_t off;
    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    rc = list_offset(c, topic, partition, ts_ms, &off);
    pthread_mutex_unlock(&c->mu);
    if (rc == SL_OK)
        *offset = off;
    return (sluice_err)rc;
}

sluice_err sluice_consumer_watermarks(sluice_consumer *c, const char *topic,
                                      int32_t partition, int64_t *low,
                                      int64_t *high)
{
    sl_meta_topic *mt;
    sl_chunk *fr = NULL;
    sl_err rc;
    uint32_t i;

    sl_cl_clear_err();
    pthread_mutex_lock(&c->mu);
    rc = sl_cons_topic_meta(c, topic, &fr, &mt);
    if (rc == SL_OK) {
        rc = sl_cl_fail(SL_ERR_UNKNOWN_PARTITION, "topic '%s' partition %d",
                        topic, (int)partition);
        for (i = 0; i < mt->nparts; i++) {
            if ((int32_t)mt->parts[i].partition == partition) {
                *low = mt->parts[i].start_offset;
                *high = mt->parts[i].end_offset;
                rc = SL_OK;
                sl_cl_clear_err();
            }
        }
    }
    sl_chunk_unref(fr);
    if (rc == SL_OK && sl_cons_part_conn(c, topic, partition) != &c->conn) {
        /* a cluster node that may hold no replica: ask the leader */
        int64_t lo = 0, hi = 0;
        rc = list_offset(c, topic, partition, SL_OFFSET_EARLIEST, &lo);
        if (rc == SL_OK)
            rc = list_offset(c, topic, partition, SL_OFFSET_LATEST, &hi);
        if (rc == SL_OK) {
            *low = lo;
            *high = hi;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return (sluice_err)rc;
}

/*
 * A failure that may pass: a lost connection, a broker restarting or a
 * leader moving. poll rides it out (docs/cluster.md section 5): it waits
 * reconnect.backoff.ms (within its own timeout) and tries again, for up
 * to delivery.timeout.ms from the first failure. Returns 1 to go on; 0
 * with *rc the error to return (SL_ERR_TIMEOUT "no message" once the
 * poll's timeout passed).
 */
