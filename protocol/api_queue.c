/*
 * api_queue.c - queue group codecs: QUEUE_ACQUIRE, QUEUE_ACK, QUEUE_NACK,
 * QUEUE_REJECT, QUEUE_TOUCH, DLQ_LIST, DLQ_REDRIVE, QUEUE_GROUP_CONFIG.
 * Byte layouts: docs/protocol.md. The zero-copy QUEUE_ACQUIRE response
 * encoder lives with FETCH's in api_fetch.c.
 */
#include "protocol/api_queue.h"
#include "protocol/api_common_int.h"

/* ---- 20 QUEUE_ACQUIRE ------------------------------------------------- */

sl_err sl_queue_acquire_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_queue_acquire_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_QUEUE_ACQUIRE, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->topic);
    sl__wb_str(wb, r->consumer_id);
    sl_wb_u32(wb, r->max_records);
    sl_wb_u32(wb, r->max_bytes);
    sl_wb_u32(wb, r->lock_ms);
    sl_wb_u32(wb, r->max_wait_ms);
    return sl_frame_finish(wb, st);
}

sl_err sl_queue_acquire_req_decode(const uint8_t *body, size_t len,
                                   sl_queue_acquire_req *out)
{
    sl_rd rd;
    sl_queue_acquire_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.topic = sl__rd_str(&rd);
    o.consumer_id = sl__rd_str(&rd);
    o.max_records = sl_rd_u32(&rd);
    o.max_bytes = sl_rd_u32(&rd);
    o.lock_ms = sl_rd_u32(&rd);
    o.max_wait_ms = sl_rd_u32(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_queue_acquire_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_queue_acquire_resp *r)
{
    sl_resp_enc e;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    sl_queue_acquire_resp_begin(&e, wb, corr);
    for (uint32_t i = 0; i < r->nparts; i++)
        sl_queue_acquire_resp_part(&e, &r->parts[i], 0);
    return sl_resp_enc_finish(&e);
}

sl_err sl_queue_acquire_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_queue_acquire_resp *out)
{
    sl_rd rd;
    sl_queue_acquire_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.nparts = sl__rd_count(&rd, 12);
    o.parts = sl__rd_array(&rd, a, o.nparts, sizeof(*o.parts));
    for (uint32_t i = 0; i < o.nparts && !rd.err; i++) {
        sl_qacq_part *p = &o.parts[i];
        p->partition = sl_rd_u32(&rd);
        p->nentries = sl__rd_count(&rd, 20);
        p->entries = sl__rd_array(&rd, a, p->nentries, sizeof(sl_qentry));
        for (uint32_t j = 0; j < p->nentries && !rd.err; j++) {
            p->entries[j].offset = sl_rd_i64(&rd);
            p->entries[j].attempts = sl_rd_u16(&rd);
            p->entries[j].failures = sl_rd_u16(&rd);
            p->entries[j].lock_deadline_ms = sl_rd_i64(&rd);
        }
        p->records = sl__rd_blob(&rd, &p->records_len);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 21..24 ACK / NACK / REJECT / TOUCH ------------------------------- */

static int settle_api(uint16_t api)
{
    return api == SL_API_QUEUE_ACK || api == SL_API_QUEUE_NACK ||
           api == SL_API_QUEUE_REJECT || api == SL_API_QUEUE_TOUCH;
}

/* Bytes a range takes on the wire at least, per api. */
static size_t range_min(uint16_t api)
{
    switch (api) {
    case SL_API_QUEUE_NACK:
    case SL_API_QUEUE_TOUCH:
        return 20;
    case SL_API_QUEUE_REJECT:
        return 16 + SL_MIN_STR;
    default:
        return 16;
    }
}

sl_err sl_qsettle_req_encode(sl_wb *wb, uint16_t api, uint32_t corr,
                             const sl_qsettle_req *r)
{
    size_t st;
    if (!settle_api(api))
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, api, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->topic);
    sl__wb_str(wb, r->consumer_id);
    sl_wb_u32(wb, r->nparts);
    for (uint32_t i = 0; i < r->nparts; i++) {
        const sl_qsettle_part *p = &r->parts[i];
        sl_wb_u32(wb, p->partition);
        sl_wb_u32(wb, p->nranges);
        for (uint32_t j = 0; j < p->nranges; j++) {
            const sl_qrange *g = &p->ranges[j];
            if (g->last < g->first)
                wb->err = SL_ERR_INVALID_ARG;
            sl_wb_u64(wb, (uint64_t)g->first);
            sl_wb_u64(wb, (uint64_t)g->last);
            if (api == SL_API_QUEUE_NACK)
                sl_wb_u32(wb, (uint32_t)g->delay_ms);
            else if (api == SL_API_QUEUE_REJECT)
                sl__wb_str(wb, g->reason);
            else if (api == SL_API_QUEUE_TOUCH)
                sl_wb_u32(wb, g->extend_ms);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_qsettle_req_decode(uint16_t api, const uint8_t *body, size_t len,
                             sl_arena *a, sl_qsettle_req *out)
{
    sl_rd rd;
    sl_qsettle_req o = {0};
    sl_err rc;

    if (!settle_api(api))
        return SL_ERR_MALFORMED;
    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.topic = sl__rd_str(&rd);
    o.consumer_id = sl__rd_str(&rd);
    o.nparts = sl__rd_count(&rd, 8);
    o.parts = sl__rd_array(&rd, a, o.nparts, sizeof(*o.parts));
    for (uint32_t i = 0; i < o.nparts && !rd.err; i++) {
        sl_qsettle_part *p = &o.parts[i];
        p->partition = sl_rd_u32(&rd);
        p->nranges = sl__rd_count(&rd, range_min(api));
        p->ranges = sl__rd_array(&rd, a, p->nranges, sizeof(sl_qrange));
        for (uint32_t j = 0; j < p->nranges && !rd.err; j++) {
            sl_qrange *g = &p->ranges[j];
            g->first = sl_rd_i64(&rd);
            g->last = sl_rd_i64(&rd);
            if (api == SL_API_QUEUE_NACK)
                g->delay_ms = sl_rd_i32(&rd);
            else if (api == SL_API_QUEUE_REJECT)
                g->reason = sl__rd_str(&rd);
            else if (api == SL_API_QUEUE_TOUCH)
                g->extend_ms = sl_rd_u32(&rd);
            if (!rd.err && g->last < g->first)
                rd.err = SL_ERR_MALFORMED;
        }
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_qsettle_resp_encode(sl_wb *wb, uint32_t corr,
                              const sl_qsettle_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->nparts);
    for (uint32_t i = 0; i < r->nparts; i++) {
        const sl_qsettle_part_resp *p = &r->parts[i];
        sl_wb_u32(wb, p->partition);
        sl_wb_u32(wb, p->nranges);
        for (uint32_t j = 0; j < p->nranges; j++) {
            sl_wb_u64(wb, (uint64_t)p->ranges[j].first);
            sl_wb_u64(wb, (uint64_t)p->ranges[j].last);
            sl_wb_u32(wb, (uint32_t)p->ranges[j].error);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_qsettle_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_qsettle_resp *out)
{
    sl_rd rd;
    sl_qsettle_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.nparts = sl__rd_count(&rd, 8);
    o.parts = sl__rd_array(&rd, a, o.nparts, sizeof(*o.parts));
    for (uint32_t i = 0; i < o.nparts && !rd.err; i++) {
        sl_qsettle_part_resp *p = &o.parts[i];
        p->partition = sl_rd_u32(&rd);
        p->nranges = sl__rd_count(&rd, 20);
        p->ranges = sl__rd_array(&rd, a, p->nranges, sizeof(*p->ranges));
        for (uint32_t j = 0; j < p->nranges && !rd.err; j++) {
            p->ranges[j].first = sl_rd_i64(&rd);
            p->ranges[j].last = sl_rd_i64(&rd);
            p->ranges[j].error = sl_rd_i32(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 25 DLQ_LIST ------------------------------------------------------ */

sl_err sl_dlq_list_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_dlq_list_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_DLQ_LIST, SL_API_V1, corr);
    sl__wb_str(wb, r->topic);
    sl__wb_str(wb, r->group);
    return sl_frame_finish(wb, st);
}

sl_err sl_dlq_list_req_decode(const uint8_t *body, size_t len,
                              sl_dlq_list_req *out)
{
    sl_rd rd;
    sl_dlq_list_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.topic = sl__rd_str(&rd);
    o.group = sl__rd_str(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_dlq_list_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_dlq_list_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ndlqs);
    for (uint32_t i = 0; i < r->ndlqs; i++) {
        const sl_dlq_entry *d = &r->dlqs[i];
        sl__wb_str(wb, d->dlq_topic);
        sl__wb_str(wb, d->source_topic);
        sl__wb_str(wb, d->group);
        sl_wb_u64(wb, (uint64_t)d->depth);
        sl_wb_u64(wb, (uint64_t)d->start_offset);
        sl_wb_u64(wb, (uint64_t)d->end_offset);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_dlq_list_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_dlq_list_resp *out)
{
    sl_rd rd;
    sl_dlq_list_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ndlqs = sl__rd_count(&rd, 3 * SL_MIN_STR + 24);
    o.dlqs = sl__rd_array(&rd, a, o.ndlqs, sizeof(*o.dlqs));
    for (uint32_t i = 0; i < o.ndlqs && !rd.err; i++) {
        sl_dlq_entry *d = &o.dlqs[i];
        d->dlq_topic = sl__rd_str(&rd);
        d->source_topic = sl__rd_str(&rd);
        d->group = sl__rd_str(&rd);
        d->depth = sl_rd_i64(&rd);
        d->start_offset = sl_rd_i64(&rd);
        d->end_offset = sl_rd_i64(&rd);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 26 DLQ_REDRIVE --------------------------------------------------- */

sl_err sl_dlq_redrive_req_encode(sl_wb *wb, uint32_t corr,
                                 const sl_dlq_redrive_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_DLQ_REDRIVE, SL_API_V1, corr);
    sl__wb_str(wb, r->dlq_topic);
    sl__wb_str(wb, r->target_topic);
    sl__wb_str(wb, r->reason);
    sl_wb_u32(wb, r->max_records);
    sl_wb_u32(wb, r->rate_per_sec);
    return sl_frame_finish(wb, st);
}

sl_err sl_dlq_redrive_req_decode(const uint8_t *body, size_t len,
                                 sl_dlq_redrive_req *out)
{
    sl_rd rd;
    sl_dlq_redrive_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.dlq_topic = sl__rd_str(&rd);
    o.target_topic = sl__rd_str(&rd);
    o.reason = sl__rd_str(&rd);
    o.max_records = sl_rd_u32(&rd);
    o.rate_per_sec = sl_rd_u32(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_dlq_redrive_resp_encode(sl_wb *wb, uint32_t corr,
                                  const sl_dlq_redrive_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u64(wb, (uint64_t)r->moved);
    sl_wb_u64(wb, (uint64_t)r->skipped);
    return sl_frame_finish(wb, st);
}

sl_err sl_dlq_redrive_resp_decode(const uint8_t *body, size_t len,
                                  sl_dlq_redrive_resp *out)
{
    sl_rd rd;
    sl_dlq_redrive_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg)) {
        o.moved = sl_rd_i64(&rd);
        o.skipped = sl_rd_i64(&rd);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 27 QUEUE_GROUP_CONFIG -------------------------------------------- */

sl_err sl_queue_group_config_req_encode(sl_wb *wb, uint32_t corr,
                                        const sl_queue_group_config_req *r)
{
    size_t st;
    if (r->mode > SL_QGC_DESCRIBE)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, SL_API_QUEUE_GROUP_CONFIG, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->topic);
    sl_wb_u8(wb, r->mode);
    sl__put_kvs(wb, r->nconfigs, r->configs);
    return sl_frame_finish(wb, st);
}

sl_err sl_queue_group_config_req_decode(const uint8_t *body, size_t len,
                                        sl_arena *a,
                                        sl_queue_group_config_req *out)
{
    sl_rd rd;
    sl_queue_group_config_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.topic = sl__rd_str(&rd);
    o.mode = sl_rd_u8(&rd);
    if (!rd.err && o.mode > SL_QGC_DESCRIBE)
        rd.err = SL_ERR_MALFORMED;
    o.configs = sl__get_kvs(&rd, a, &o.nconfigs);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_queue_group_config_resp_encode(sl_wb *wb, uint32_t corr,
                                         const sl_queue_group_config_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl__put_kvs(wb, r->nconfigs, r->configs);
    return sl_frame_finish(wb, st);
}

sl_err sl_queue_group_config_resp_decode(const uint8_t *body, size_t len,
                                         sl_arena *a,
                                         sl_queue_group_config_resp *out)
{
    sl_rd rd;
    sl_queue_group_config_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        o.configs = sl__get_kvs(&rd, a, &o.nconfigs);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
