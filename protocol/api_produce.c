/*
 * api_produce.c - PRODUCE codec. Byte layout: docs/protocol.md.
 *
 * The request decoder does not copy record bytes: each partition's records
 * point into the request buffer, which is why it takes a mutable body. The
 * broker verifies each batch (sl_part_append) and writes the assigned base
 * offset into it in place; the decoder only checks the framing of the
 * records field (its length), not the batches inside.
 */
#include "protocol/api_produce.h"
#include "protocol/api_common_int.h"

sl_err sl_produce_req_encode(sl_wb *wb, uint32_t corr, const sl_produce_req *r)
{
    size_t st;
    if (r->acks > SL_ACKS_DURABLE)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, SL_API_PRODUCE, SL_API_V1, corr);
    sl_wb_u8(wb, r->acks);
    sl_wb_u32(wb, r->timeout_ms);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_produce_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            const sl_produce_part *p = &t->parts[j];
            if (p->records_len > UINT32_MAX - 1) {
                wb->err = SL_ERR_TOO_LARGE;
                break;
            }
            sl_wb_u32(wb, p->partition);
            sl_wb_u32(wb, (uint32_t)p->records_len);
            sl_wb_put(wb, p->records, p->records_len);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_produce_req_decode(uint8_t *body, size_t len, sl_arena *a,
                             sl_produce_req *out)
{
    sl_rd rd;
    sl_produce_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.acks = sl_rd_u8(&rd);
    o.timeout_ms = sl_rd_u32(&rd);
    if (!rd.err && o.acks > SL_ACKS_DURABLE)
        rd.err = SL_ERR_MALFORMED;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_produce_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 8);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            sl_produce_part *p = &t->parts[j];
            const uint8_t *rec;
            p->partition = sl_rd_u32(&rd);
            rec = sl__rd_blob(&rd, &p->records_len);
            /* rec points into body, which the caller gave us mutable. */
            p->records = rec ? body + (rec - (const uint8_t *)body) : NULL;
        }
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_produce_resp_encode(sl_wb *wb, uint32_t corr,
                              const sl_produce_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_produce_topic_resp *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            const sl_produce_part_resp *p = &t->parts[j];
            sl_wb_u32(wb, p->partition);
            sl_wb_u32(wb, (uint32_t)p->error);
            sl_wb_u64(wb, (uint64_t)p->base_offset);
            sl_wb_u64(wb, (uint64_t)p->last_offset);
            sl_wb_u64(wb, (uint64_t)p->log_end_offset);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_produce_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_produce_resp *out)
{
    sl_rd rd;
    sl_produce_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_produce_topic_resp *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 32);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            sl_produce_part_resp *p = &t->parts[j];
            p->partition = sl_rd_u32(&rd);
            p->error = sl_rd_i32(&rd);
            p->base_offset = sl_rd_i64(&rd);
            p->last_offset = sl_rd_i64(&rd);
            p->log_end_offset = sl_rd_i64(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 33 INIT_PRODUCER_ID ---------------------------------------------- */

sl_err sl_init_pid_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_init_pid_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_INIT_PRODUCER_ID, SL_API_V1, corr);
    sl_wb_u64(wb, (uint64_t)r->producer_id);
    sl_wb_u16(wb, (uint16_t)r->producer_epoch);
    return sl_frame_finish(wb, st);
}

sl_err sl_init_pid_req_decode(const uint8_t *body, size_t len,
                              sl_init_pid_req *out)
{
    sl_rd rd;
    sl_init_pid_req o;
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.producer_id = sl_rd_i64(&rd);
    o.producer_epoch = sl_rd_i16(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_init_pid_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_init_pid_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u64(wb, (uint64_t)r->producer_id);
    sl_wb_u16(wb, (uint16_t)r->producer_epoch);
    return sl_frame_finish(wb, st);
}

sl_err sl_init_pid_resp_decode(const uint8_t *body, size_t len,
                               sl_init_pid_resp *out)
{
    sl_rd rd;
    sl_init_pid_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg)) {
        o.producer_id = sl_rd_i64(&rd);
        o.producer_epoch = sl_rd_i16(&rd);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
