/*
 * api_admin.c - HANDSHAKE, METADATA, CREATE_TOPICS, DELETE_TOPICS,
 * LIST_TOPICS, ADMIN codecs. Byte layouts: docs/protocol.md.
 */
#include "protocol/api_admin.h"
#include "protocol/api_common_int.h"

/* ---- shared pieces ---------------------------------------------------- */

static void put_ranges(sl_wb *wb, uint32_t n, const sl_api_range *r)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        sl_wb_u16(wb, r[i].api_key);
        sl_wb_u16(wb, r[i].min_version);
        sl_wb_u16(wb, r[i].max_version);
    }
}

static sl_api_range *get_ranges(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    sl_api_range *r;
    *n = sl__rd_count(rd, 6);
    r = sl__rd_array(rd, a, *n, sizeof(*r));
    for (uint32_t i = 0; i < *n && !rd->err; i++) {
        r[i].api_key = sl_rd_u16(rd);
        r[i].min_version = sl_rd_u16(rd);
        r[i].max_version = sl_rd_u16(rd);
    }
    return r;
}

/* ---- 0 HANDSHAKE ------------------------------------------------------ */

sl_err sl_handshake_req_encode(sl_wb *wb, uint32_t corr,
                               const sl_handshake_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_HANDSHAKE, SL_API_V1, corr);
    sl__wb_str(wb, r->client_name);
    put_ranges(wb, r->napis, r->apis);
    return sl_frame_finish(wb, st);
}

sl_err sl_handshake_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_handshake_req *out)
{
    sl_rd rd;
    sl_handshake_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.client_name = sl__rd_str(&rd);
    o.apis = get_ranges(&rd, a, &o.napis);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_handshake_resp_encode(sl_wb *wb, uint32_t corr,
                                const sl_handshake_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl__wb_str(wb, r->server_name);
    sl__wb_str(wb, r->server_version);
    sl_wb_u32(wb, r->max_frame);
    put_ranges(wb, r->napis, r->apis);
    return sl_frame_finish(wb, st);
}

sl_err sl_handshake_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                sl_handshake_resp *out)
{
    sl_rd rd;
    sl_handshake_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg)) {
        o.server_name = sl__rd_str(&rd);
        o.server_version = sl__rd_str(&rd);
        o.max_frame = sl_rd_u32(&rd);
        o.apis = get_ranges(&rd, a, &o.napis);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_api_version_pick(const sl_handshake_resp *r, uint16_t key,
                           uint16_t *version)
{
    const sl_api_info *ai = sl_api_lookup(key);
    if (!ai)
        return SL_ERR_UNSUPPORTED_API;
    for (uint32_t i = 0; i < r->napis; i++) {
        const sl_api_range *s = &r->apis[i];
        uint16_t lo, hi;
        if (s->api_key != key)
            continue;
        lo =
            s->min_version > ai->min_version ? s->min_version : ai->min_version;
        hi =
            s->max_version < ai->max_version ? s->max_version : ai->max_version;
        if (lo > hi)
            return SL_ERR_UNSUPPORTED_VERSION;
        *version = hi;
        return SL_OK;
    }
    return SL_ERR_UNSUPPORTED_API;
}

/* ---- 1 METADATA ------------------------------------------------------- */

static void meta_put_ids(sl_wb *wb, uint32_t n, const int32_t *ids)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++)
        sl_wb_u32(wb, (uint32_t)ids[i]);
}

static int32_t *meta_get_ids(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    int32_t *ids;
    *n = sl__rd_count(rd, 4);
    ids = sl__rd_array(rd, a, *n, sizeof(int32_t));
    for (uint32_t i = 0; i < *n && !rd->err; i++)
        ids[i] = sl_rd_i32(rd);
    return ids;
}

sl_err sl_metadata_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_metadata_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_METADATA,
                             r->version >= 3   ? 3
                             : r->version >= 2 ? 2
                                               : SL_API_V1,
                             corr);
    sl__put_strs(wb, r->ntopics, r->topics);
    return sl_frame_finish(wb, st);
}

sl_err sl_metadata_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_metadata_req *out)
{
    sl_rd rd;
    sl_metadata_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.topics = sl__get_strs(&rd, a, &o.ntopics);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_metadata_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_metadata_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_meta_topic *t = &r->topics[i];
        sl__wb_str(wb, t->name);
        sl_wb_u32(wb, (uint32_t)t->error);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u64(wb, (uint64_t)t->parts[j].start_offset);
            sl_wb_u64(wb, (uint64_t)t->parts[j].end_offset);
        }
        sl__put_kvs(wb, t->nconfigs, t->configs);
    }
    if (r->version >= 2) { /* the placement section (docs/protocol.md 4.1) */
        sl_wb_u32(wb, (uint32_t)r->node_id);
        sl_wb_u32(wb, r->nbrokers);
        for (uint32_t i = 0; i < r->nbrokers; i++) {
            sl_wb_u32(wb, (uint32_t)r->brokers[i].id);
            sl__wb_str(wb, r->brokers[i].addr);
            sl_wb_u8(wb, r->brokers[i].up);
        }
        for (uint32_t i = 0; i < r->ntopics; i++) {
            const sl_meta_topic *t = &r->topics[i];
            for (uint32_t j = 0; j < t->nparts; j++) {
                const sl_meta_part *p = &t->parts[j];
                sl_wb_u32(wb, (uint32_t)p->leader);
                sl_wb_u32(wb, (uint32_t)p->leader_epoch);
                meta_put_ids(wb, p->nreplicas, p->replicas);
                meta_put_ids(wb, p->nisr, p->isr);
            }
        }
    }
    if (r->version >= 3) /* the brokers' TLS addresses, in their order */
        for (uint32_t i = 0; i < r->nbrokers; i++)
            sl__wb_str(wb, r->brokers[i].tls_addr);
    return sl_frame_finish(wb, st);
}

sl_err sl_metadata_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_metadata_resp *out)
{
    sl_rd rd;
    sl_metadata_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 12);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_meta_topic *t = &o.topics[i];
        t->name = sl__rd_str(&rd);
        t->error = sl_rd_i32(&rd);
        t->nparts = sl__rd_count(&rd, 20);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].start_offset = sl_rd_i64(&rd);
            t->parts[j].end_offset = sl_rd_i64(&rd);
        }
        t->configs = sl__get_kvs(&rd, a, &t->nconfigs);
    }
    if (!rd.err && sl_rd_left(&rd) > 0) { /* version 2 */
        o.version = 2;
        o.node_id = sl_rd_i32(&rd);
        o.nbrokers = sl__rd_count(&rd, 4 + SL_MIN_STR + 1);
        o.brokers = sl__rd_array(&rd, a, o.nbrokers, sizeof(*o.brokers));
        for (uint32_t i = 0; i < o.nbrokers && !rd.err; i++) {
            o.brokers[i].id = sl_rd_i32(&rd);
            o.brokers[i].addr = sl__rd_str(&rd);
            o.brokers[i].up = sl_rd_u8(&rd);
        }
        for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
            sl_meta_topic *t = &o.topics[i];
            for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
                sl_meta_part *p = &t->parts[j];
                p->leader = sl_rd_i32(&rd);
                p->leader_epoch = sl_rd_i32(&rd);
                p->replicas = meta_get_ids(&rd, a, &p->nreplicas);
                p->isr = meta_get_ids(&rd, a, &p->nisr);
            }
        }
        if (!rd.err && sl_rd_left(&rd) > 0) { /* version 3 */
            o.version = 3;
            for (uint32_t i = 0; i < o.nbrokers && !rd.err; i++)
                o.brokers[i].tls_addr = sl__rd_str(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 2 CREATE_TOPICS / 3 DELETE_TOPICS -------------------------------- */

sl_err sl_create_topics_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_create_topics_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_CREATE_TOPICS, SL_API_V1, corr);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl__wb_str(wb, r->topics[i].name);
        sl_wb_u32(wb, r->topics[i].partitions);
        sl__put_kvs(wb, r->topics[i].nconfigs, r->topics[i].configs);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_create_topics_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_create_topics_req *out)
{
    sl_rd rd;
    sl_create_topics_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 8);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        o.topics[i].name = sl__rd_str(&rd);
        o.topics[i].partitions = sl_rd_u32(&rd);
        o.topics[i].configs = sl__get_kvs(&rd, a, &o.topics[i].nconfigs);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

static sl_err topics_result_encode(sl_wb *wb, uint32_t corr,
                                   const sl_topics_result_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl__wb_str(wb, r->topics[i].name);
        sl_wb_u32(wb, (uint32_t)r->topics[i].error);
        sl__wb_str(wb, r->topics[i].message);
    }
    return sl_frame_finish(wb, st);
}

static sl_err topics_result_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_topics_result_resp *out)
{
    sl_rd rd;
    sl_topics_result_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, 2 * SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        o.topics[i].name = sl__rd_str(&rd);
        o.topics[i].error = sl_rd_i32(&rd);
        o.topics[i].message = sl__rd_str(&rd);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_create_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_create_topics_resp *r)
{
    return topics_result_encode(wb, corr, r);
}

sl_err sl_create_topics_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_create_topics_resp *out)
{
    return topics_result_decode(body, len, a, out);
}

sl_err sl_delete_topics_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_delete_topics_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_DELETE_TOPICS, SL_API_V1, corr);
    sl__put_strs(wb, r->ntopics, r->topics);
    return sl_frame_finish(wb, st);
}

sl_err sl_delete_topics_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_delete_topics_req *out)
{
    sl_rd rd;
    sl_delete_topics_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.topics = sl__get_strs(&rd, a, &o.ntopics);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_delete_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_delete_topics_resp *r)
{
    return topics_result_encode(wb, corr, r);
}

sl_err sl_delete_topics_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_delete_topics_resp *out)
{
    return topics_result_decode(body, len, a, out);
}

/* ---- 4 LIST_TOPICS ---------------------------------------------------- */

sl_err sl_list_topics_req_encode(sl_wb *wb, uint32_t corr)
{
    return sl_frame_finish(
        wb, sl_req_begin(wb, SL_API_LIST_TOPICS, SL_API_V1, corr));
}

sl_err sl_list_topics_req_decode(const uint8_t *body, size_t len)
{
    (void)body;
    return len == 0 ? SL_OK : SL_ERR_MALFORMED;
}

sl_err sl_list_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                  const sl_list_topics_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        sl__wb_str(wb, r->topics[i].name);
        sl_wb_u32(wb, r->topics[i].partitions);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_list_topics_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_list_topics_resp *out)
{
    sl_rd rd;
    sl_list_topics_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        o.topics[i].name = sl__rd_str(&rd);
        o.topics[i].partitions = sl_rd_u32(&rd);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 28 ADMIN --------------------------------------------------------- */

sl_err sl_admin_req_encode(sl_wb *wb, uint32_t corr, const sl_admin_req *r)
{
    size_t st;
    if (!r->verb.p || !r->verb.len)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, SL_API_ADMIN, SL_API_V1, corr);
    sl__wb_str(wb, r->verb);
    sl__put_kvs(wb, r->nargs, r->args);
    return sl_frame_finish(wb, st);
}

sl_err sl_admin_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                           sl_admin_req *out)
{
    sl_rd rd;
    sl_admin_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.verb = sl__rd_str(&rd);
    if (!rd.err && (!o.verb.p || !o.verb.len))
        rd.err = SL_ERR_MALFORMED;
    o.args = sl__get_kvs(&rd, a, &o.nargs);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_admin_resp_encode(sl_wb *wb, uint32_t corr, const sl_admin_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_bytes32(wb, r->json ? r->json : (const uint8_t *)"", r->json_len);
    return sl_frame_finish(wb, st);
}

sl_err sl_admin_resp_decode(const uint8_t *body, size_t len, sl_admin_resp *out)
{
    sl_rd rd;
    sl_admin_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        o.json = sl__rd_blob(&rd, &o.json_len);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
