/*
 * api_fetch.c - FETCH and LIST_OFFSETS codecs, and the zero-copy response
 * encoder (sl_resp_enc) shared with QUEUE_ACQUIRE. Byte layouts:
 * docs/protocol.md.
 *
 * Zero copy: a FETCH partition entry ends with `u32 records_len, records`.
 * The encoder writes every byte of the frame except the records of
 * "external" partitions, and counts their lengths into the frame length.
 * The broker then interleaves wb pieces and file ranges in its output
 * (evbuffer_add + evbuffer_add_file); the bytes on the wire are identical
 * to those of sl_fetch_resp_encode with the records copied in.
 */
#include "protocol/api_fetch.h"
#include "protocol/api_common_int.h"
#include "protocol/api_queue.h"

/* ---- sl_resp_enc ------------------------------------------------------ */

static void enc_init(sl_resp_enc *e, sl_wb *wb, uint32_t corr, uint16_t api)
{
    e->wb = wb;
    e->start = sl_resp_begin(wb, corr, SL_OK);
    e->ntopics_at = SIZE_MAX;
    e->ntopics = 0;
    e->nparts_at = SIZE_MAX;
    e->nparts = 0;
    e->external = 0;
    e->api = api;
    e->err = SL_OK;
}

static void enc_close_parts(sl_resp_enc *e)
{
    if (e->nparts_at != SIZE_MAX)
        sl_wb_patch_u32(e->wb, e->nparts_at, e->nparts);
}

void sl_fetch_resp_begin(sl_resp_enc *e, sl_wb *wb, uint32_t corr)
{
    enc_init(e, wb, corr, SL_API_FETCH);
    e->ntopics_at = wb->len;
    sl_wb_u32(wb, 0);
}

void sl_resp_enc_topic(sl_resp_enc *e, sl_str topic)
{
    if (e->err)
        return;
    if (e->ntopics_at == SIZE_MAX) {
        e->err = SL_ERR_INVALID_ARG; /* this response has no topic level */
        return;
    }
    enc_close_parts(e);
    sl__wb_str(e->wb, topic);
    e->nparts_at = e->wb->len;
    e->nparts = 0;
    sl_wb_u32(e->wb, 0);
    e->ntopics++;
}

/* Write `u32 len` and, unless external, the records; returns the split. */
static size_t enc_records(sl_resp_enc *e, const uint8_t *rec, size_t len,
                          int external)
{
    size_t split;
    if (len > UINT32_MAX || (!external && len && !rec)) {
        e->err = len > UINT32_MAX ? SL_ERR_TOO_LARGE : SL_ERR_INVALID_ARG;
        return e->wb->len;
    }
    sl_wb_u32(e->wb, (uint32_t)len);
    split = e->wb->len;
    if (external)
        e->external += len;
    else
        sl_wb_put(e->wb, rec, len);
    e->nparts++;
    return split;
}

size_t sl_fetch_resp_part(sl_resp_enc *e, const sl_fetch_part_resp *ph,
                          int external)
{
    sl_wb *wb = e->wb;
    if (e->err)
        return wb->len;
    if (e->api != SL_API_FETCH || e->nparts_at == SIZE_MAX) {
        e->err = SL_ERR_INVALID_ARG; /* no sl_resp_enc_topic before */
        return wb->len;
    }
    sl_wb_u32(wb, ph->partition);
    sl_wb_u32(wb, (uint32_t)ph->error);
    sl_wb_u64(wb, (uint64_t)ph->high_watermark);
    sl_wb_u64(wb, (uint64_t)ph->log_start_offset);
    sl_wb_u64(wb, (uint64_t)ph->log_end_offset);
    return enc_records(e, ph->records, ph->records_len, external);
}

void sl_queue_acquire_resp_begin(sl_resp_enc *e, sl_wb *wb, uint32_t corr)
{
    enc_init(e, wb, corr, SL_API_QUEUE_ACQUIRE);
    e->nparts_at = wb->len;
    sl_wb_u32(wb, 0);
}

size_t sl_queue_acquire_resp_part(sl_resp_enc *e, const sl_qacq_part *p,
                                  int external)
{
    sl_wb *wb = e->wb;
    if (e->err)
        return wb->len;
    if (e->api != SL_API_QUEUE_ACQUIRE) {
        e->err = SL_ERR_INVALID_ARG;
        return wb->len;
    }
    sl_wb_u32(wb, p->partition);
    sl_wb_u32(wb, p->nentries);
    for (uint32_t i = 0; i < p->nentries; i++) {
        sl_wb_u64(wb, (uint64_t)p->entries[i].offset);
        sl_wb_u16(wb, p->entries[i].attempts);
        sl_wb_u16(wb, p->entries[i].failures);
        sl_wb_u64(wb, (uint64_t)p->entries[i].lock_deadline_ms);
    }
    return enc_records(e, p->records, p->records_len, external);
}

sl_err sl_resp_enc_finish(sl_resp_enc *e)
{
    sl_err rc = e->err;
    sl_wb *wb = e->wb;

    if (rc == SL_OK) {
        enc_close_parts(e);
        if (e->ntopics_at != SIZE_MAX)
            sl_wb_patch_u32(wb, e->ntopics_at, e->ntopics);
        return sl_frame_finish_ext(wb, e->start, e->external);
    }
    if (wb->len > e->start)
        wb->len = e->start;
    wb->err = SL_OK;
    return rc;
}

uint64_t sl_resp_enc_frame_size(const sl_resp_enc *e)
{
    return (uint64_t)(e->wb->len - e->start) + e->external;
}

/* ---- 6 FETCH ---------------------------------------------------------- */

sl_err sl_fetch_req_encode(sl_wb *wb, uint32_t corr, const sl_fetch_req *r)
{
    size_t st =
        sl_req_begin(wb, SL_API_FETCH,
                     r->replica_id ? (r->epochs ? 3 : 2) : SL_API_V1, corr);
    sl_wb_u32(wb, r->max_wait_ms);
    sl_wb_u32(wb, r->min_bytes);
    sl_wb_u32(wb, r->max_bytes);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_fetch_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u64(wb, (uint64_t)t->parts[j].fetch_offset);
            sl_wb_u32(wb, t->parts[j].max_bytes);
        }
    }
    if (r->replica_id) {
        sl_wb_u32(wb, (uint32_t)r->replica_id);
        for (uint32_t i = 0; i < r->ntopics; i++)
            for (uint32_t j = 0; j < r->topics[i].nparts; j++)
                sl_wb_u64(wb, (uint64_t)r->topics[i].parts[j].durable_offset);
        if (r->epochs)
            for (uint32_t i = 0; i < r->ntopics; i++)
                for (uint32_t j = 0; j < r->topics[i].nparts; j++)
                    sl_wb_u32(wb, (uint32_t)r->topics[i].parts[j].leader_epoch);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_fetch_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                           sl_fetch_req *out)
{
    sl_rd rd;
    sl_fetch_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.max_wait_ms = sl_rd_u32(&rd);
    o.min_bytes = sl_rd_u32(&rd);
    o.max_bytes = sl_rd_u32(&rd);
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_fetch_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 16);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].fetch_offset = sl_rd_i64(&rd);
            t->parts[j].max_bytes = sl_rd_u32(&rd);
            t->parts[j].leader_epoch = -1;
            t->parts[j].refused = 0;
        }
    }
    if (!rd.err && sl_rd_left(&rd) > 0) { /* version 2 */
        o.replica_id = (int32_t)sl_rd_u32(&rd);
        if (o.replica_id <= 0)
            rd.err = SL_ERR_MALFORMED;
        for (uint32_t i = 0; i < o.ntopics && !rd.err; i++)
            for (uint32_t j = 0; j < o.topics[i].nparts && !rd.err; j++)
                o.topics[i].parts[j].durable_offset = sl_rd_i64(&rd);
    }
    if (!rd.err && sl_rd_left(&rd) > 0) { /* version 3 */
        o.epochs = 1;
        for (uint32_t i = 0; i < o.ntopics && !rd.err; i++)
            for (uint32_t j = 0; j < o.topics[i].nparts && !rd.err; j++)
                o.topics[i].parts[j].leader_epoch = sl_rd_i32(&rd);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_fetch_resp_encode(sl_wb *wb, uint32_t corr, const sl_fetch_resp *r)
{
    sl_resp_enc e;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    sl_fetch_resp_begin(&e, wb, corr);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl_resp_enc_topic(&e, r->topics[i].topic);
        for (uint32_t j = 0; j < r->topics[i].nparts; j++)
            sl_fetch_resp_part(&e, &r->topics[i].parts[j], 0);
    }
    return sl_resp_enc_finish(&e);
}

sl_err sl_fetch_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                            sl_fetch_resp *out)
{
    sl_rd rd;
    sl_fetch_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_fetch_topic_resp *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 36);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            sl_fetch_part_resp *p = &t->parts[j];
            p->partition = sl_rd_u32(&rd);
            p->error = sl_rd_i32(&rd);
            p->high_watermark = sl_rd_i64(&rd);
            p->log_start_offset = sl_rd_i64(&rd);
            p->log_end_offset = sl_rd_i64(&rd);
            p->records = sl__rd_blob(&rd, &p->records_len);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 7 LIST_OFFSETS --------------------------------------------------- */

sl_err sl_list_offsets_req_encode(sl_wb *wb, uint32_t corr,
                                  const sl_list_offsets_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_LIST_OFFSETS, SL_API_V1, corr);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_lo_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u64(wb, (uint64_t)t->parts[j].timestamp);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_list_offsets_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_list_offsets_req *out)
{
    sl_rd rd;
    sl_list_offsets_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_lo_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 12);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].timestamp = sl_rd_i64(&rd);
        }
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_list_offsets_resp_encode(sl_wb *wb, uint32_t corr,
                                   const sl_list_offsets_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_lo_topic_resp *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u32(wb, (uint32_t)t->parts[j].error);
            sl_wb_u64(wb, (uint64_t)t->parts[j].offset);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_list_offsets_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_list_offsets_resp *out)
{
    sl_rd rd;
    sl_list_offsets_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_lo_topic_resp *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 16);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].error = sl_rd_i32(&rd);
            t->parts[j].offset = sl_rd_i64(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
