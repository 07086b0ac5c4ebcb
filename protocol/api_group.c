/*
 * api_group.c - stream group codecs: GROUP_JOIN, GROUP_HEARTBEAT,
 * GROUP_LEAVE, OFFSET_COMMIT, OFFSET_FETCH, GROUP_LIST, GROUP_DESCRIBE.
 * Byte layouts: docs/protocol.md.
 */
#include "protocol/api_group.h"
#include "protocol/api_common_int.h"

/* topic + u32 partition ids */
static void put_topic_parts(sl_wb *wb, uint32_t n, const sl_topic_parts *t)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        sl__wb_str(wb, t[i].topic);
        sl_wb_u32(wb, t[i].nparts);
        for (uint32_t j = 0; j < t[i].nparts; j++)
            sl_wb_u32(wb, t[i].parts[j]);
    }
}

static sl_topic_parts *get_topic_parts(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    sl_topic_parts *t;
    *n = sl__rd_count(rd, SL_MIN_STR + 4);
    t = sl__rd_array(rd, a, *n, sizeof(*t));
    for (uint32_t i = 0; i < *n && !rd->err; i++) {
        t[i].topic = sl__rd_str(rd);
        t[i].nparts = sl__rd_count(rd, 4);
        t[i].parts = sl__rd_array(rd, a, t[i].nparts, sizeof(uint32_t));
        for (uint32_t j = 0; j < t[i].nparts && !rd->err; j++)
            t[i].parts[j] = sl_rd_u32(rd);
    }
    return t;
}

/* ---- 10 GROUP_JOIN ---------------------------------------------------- */

sl_err sl_group_join_req_encode(sl_wb *wb, uint32_t corr,
                                const sl_group_join_req *r)
{
    size_t st;
    if (r->assignor > SL_ASSIGN_ROUNDROBIN)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, SL_API_GROUP_JOIN, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->member_id);
    sl__wb_str(wb, r->client_id);
    sl_wb_u32(wb, r->session_timeout_ms);
    sl_wb_u32(wb, r->rebalance_timeout_ms);
    sl_wb_u8(wb, r->assignor);
    sl__put_strs(wb, r->ntopics, r->topics);
    return sl_frame_finish(wb, st);
}

sl_err sl_group_join_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                sl_group_join_req *out)
{
    sl_rd rd;
    sl_group_join_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.member_id = sl__rd_str(&rd);
    o.client_id = sl__rd_str(&rd);
    o.session_timeout_ms = sl_rd_u32(&rd);
    o.rebalance_timeout_ms = sl_rd_u32(&rd);
    o.assignor = sl_rd_u8(&rd);
    if (!rd.err && o.assignor > SL_ASSIGN_ROUNDROBIN)
        rd.err = SL_ERR_MALFORMED;
    o.topics = sl__get_strs(&rd, a, &o.ntopics);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_group_join_resp_encode(sl_wb *wb, uint32_t corr,
                                 const sl_group_join_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl__wb_str(wb, r->member_id);
    sl_wb_u32(wb, (uint32_t)r->generation);
    sl_wb_u32(wb, r->heartbeat_interval_ms);
    put_topic_parts(wb, r->ntopics, r->assignment);
    return sl_frame_finish(wb, st);
}

sl_err sl_group_join_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                 sl_group_join_resp *out)
{
    sl_rd rd;
    sl_group_join_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg)) {
        o.member_id = sl__rd_str(&rd);
        o.generation = sl_rd_i32(&rd);
        o.heartbeat_interval_ms = sl_rd_u32(&rd);
        o.assignment = get_topic_parts(&rd, a, &o.ntopics);
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 11 GROUP_HEARTBEAT, 12 GROUP_LEAVE ------------------------------- */

sl_err sl_group_member_req_encode(sl_wb *wb, uint16_t api, uint32_t corr,
                                  const sl_group_member_req *r)
{
    size_t st;
    if (api != SL_API_GROUP_HEARTBEAT && api != SL_API_GROUP_LEAVE)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, api, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->member_id);
    if (api == SL_API_GROUP_HEARTBEAT)
        sl_wb_u32(wb, (uint32_t)r->generation);
    return sl_frame_finish(wb, st);
}

sl_err sl_group_member_req_decode(uint16_t api, const uint8_t *body, size_t len,
                                  sl_group_member_req *out)
{
    sl_rd rd;
    sl_group_member_req o = {0};
    sl_err rc;

    if (api != SL_API_GROUP_HEARTBEAT && api != SL_API_GROUP_LEAVE)
        return SL_ERR_MALFORMED;
    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.member_id = sl__rd_str(&rd);
    if (api == SL_API_GROUP_HEARTBEAT)
        o.generation = sl_rd_i32(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 13 OFFSET_COMMIT ------------------------------------------------- */

sl_err sl_offset_commit_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_offset_commit_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_OFFSET_COMMIT, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    sl__wb_str(wb, r->member_id);
    sl_wb_u32(wb, (uint32_t)r->generation);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_commit_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u64(wb, (uint64_t)t->parts[j].offset);
            sl__wb_str(wb, t->parts[j].metadata);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_offset_commit_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_offset_commit_req *out)
{
    sl_rd rd;
    sl_offset_commit_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.member_id = sl__rd_str(&rd);
    o.generation = sl_rd_i32(&rd);
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_commit_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 12 + SL_MIN_STR);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].offset = sl_rd_i64(&rd);
            t->parts[j].metadata = sl__rd_str(&rd);
        }
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_offset_commit_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_offset_commit_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_part_err_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u32(wb, (uint32_t)t->parts[j].error);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_offset_commit_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_offset_commit_resp *out)
{
    sl_rd rd;
    sl_offset_commit_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_part_err_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 8);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].error = sl_rd_i32(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 14 OFFSET_FETCH -------------------------------------------------- */

sl_err sl_offset_fetch_req_encode(sl_wb *wb, uint32_t corr,
                                  const sl_offset_fetch_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_OFFSET_FETCH, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    put_topic_parts(wb, r->ntopics, r->topics);
    return sl_frame_finish(wb, st);
}

sl_err sl_offset_fetch_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_offset_fetch_req *out)
{
    sl_rd rd;
    sl_offset_fetch_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    o.topics = get_topic_parts(&rd, a, &o.ntopics);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_offset_fetch_resp_encode(sl_wb *wb, uint32_t corr,
                                   const sl_offset_fetch_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ntopics);
    for (uint32_t i = 0; i < r->ntopics; i++) {
        const sl_committed_topic *t = &r->topics[i];
        sl__wb_str(wb, t->topic);
        sl_wb_u32(wb, t->nparts);
        for (uint32_t j = 0; j < t->nparts; j++) {
            sl_wb_u32(wb, t->parts[j].partition);
            sl_wb_u32(wb, (uint32_t)t->parts[j].error);
            sl_wb_u64(wb, (uint64_t)t->parts[j].offset);
            sl__wb_str(wb, t->parts[j].metadata);
        }
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_offset_fetch_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_offset_fetch_resp *out)
{
    sl_rd rd;
    sl_offset_fetch_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ntopics = sl__rd_count(&rd, SL_MIN_STR + 4);
    o.topics = sl__rd_array(&rd, a, o.ntopics, sizeof(*o.topics));
    for (uint32_t i = 0; i < o.ntopics && !rd.err; i++) {
        sl_committed_topic *t = &o.topics[i];
        t->topic = sl__rd_str(&rd);
        t->nparts = sl__rd_count(&rd, 16 + SL_MIN_STR);
        t->parts = sl__rd_array(&rd, a, t->nparts, sizeof(*t->parts));
        for (uint32_t j = 0; j < t->nparts && !rd.err; j++) {
            t->parts[j].partition = sl_rd_u32(&rd);
            t->parts[j].error = sl_rd_i32(&rd);
            t->parts[j].offset = sl_rd_i64(&rd);
            t->parts[j].metadata = sl__rd_str(&rd);
        }
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 15 GROUP_LIST ---------------------------------------------------- */

sl_err sl_group_list_req_encode(sl_wb *wb, uint32_t corr)
{
    return sl_frame_finish(
        wb, sl_req_begin(wb, SL_API_GROUP_LIST, SL_API_V1, corr));
}

sl_err sl_group_list_req_decode(const uint8_t *body, size_t len)
{
    (void)body;
    return len == 0 ? SL_OK : SL_ERR_MALFORMED;
}

sl_err sl_group_list_resp_encode(sl_wb *wb, uint32_t corr,
                                 const sl_group_list_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_u32(wb, r->ngroups);
    for (uint32_t i = 0; i < r->ngroups; i++) {
        sl__wb_str(wb, r->groups[i].group);
        sl_wb_u8(wb, r->groups[i].kind);
        sl__wb_str(wb, r->groups[i].state);
        sl_wb_u32(wb, r->groups[i].members);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_group_list_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                 sl_group_list_resp *out)
{
    sl_rd rd;
    sl_group_list_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.ngroups = sl__rd_count(&rd, 2 * SL_MIN_STR + 5);
    o.groups = sl__rd_array(&rd, a, o.ngroups, sizeof(*o.groups));
    for (uint32_t i = 0; i < o.ngroups && !rd.err; i++) {
        o.groups[i].group = sl__rd_str(&rd);
        o.groups[i].kind = sl_rd_u8(&rd);
        if (o.groups[i].kind > SL_GROUP_QUEUE)
            rd.err = SL_ERR_MALFORMED;
        o.groups[i].state = sl__rd_str(&rd);
        o.groups[i].members = sl_rd_u32(&rd);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

/* ---- 16 GROUP_DESCRIBE ------------------------------------------------ */

sl_err sl_group_describe_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_group_describe_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_GROUP_DESCRIBE, SL_API_V1, corr);
    sl__wb_str(wb, r->group);
    return sl_frame_finish(wb, st);
}

sl_err sl_group_describe_req_decode(const uint8_t *body, size_t len,
                                    sl_group_describe_req *out)
{
    sl_rd rd;
    sl_group_describe_req o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    o.group = sl__rd_str(&rd);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_group_describe_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_group_describe_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl__wb_str(wb, r->group);
    sl_wb_u8(wb, r->kind);
    sl__wb_str(wb, r->state);
    sl_wb_u32(wb, (uint32_t)r->generation);
    sl__wb_str(wb, r->dlq_topic);
    sl_wb_u64(wb, (uint64_t)r->dlq_depth);
    sl_wb_u32(wb, r->nmembers);
    for (uint32_t i = 0; i < r->nmembers; i++) {
        const sl_member_desc *m = &r->members[i];
        sl__wb_str(wb, m->member_id);
        sl__wb_str(wb, m->client_id);
        sl_wb_u32(wb, m->nassigned);
        for (uint32_t j = 0; j < m->nassigned; j++) {
            sl__wb_str(wb, m->assigned[j].topic);
            sl_wb_u32(wb, m->assigned[j].partition);
        }
    }
    sl_wb_u32(wb, r->nparts);
    for (uint32_t i = 0; i < r->nparts; i++) {
        const sl_group_part_desc *p = &r->parts[i];
        sl__wb_str(wb, p->topic);
        sl_wb_u32(wb, p->partition);
        sl_wb_u64(wb, (uint64_t)p->committed);
        sl_wb_u64(wb, (uint64_t)p->log_end);
        sl_wb_u64(wb, (uint64_t)p->lag);
        sl_wb_u32(wb, p->in_flight);
    }
    return sl_frame_finish(wb, st);
}

sl_err sl_group_describe_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_group_describe_resp *out)
{
    sl_rd rd;
    sl_group_describe_resp o = {0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    if (!sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        goto out;
    o.group = sl__rd_str(&rd);
    o.kind = sl_rd_u8(&rd);
    if (o.kind > SL_GROUP_QUEUE)
        rd.err = SL_ERR_MALFORMED;
    o.state = sl__rd_str(&rd);
    o.generation = sl_rd_i32(&rd);
    o.dlq_topic = sl__rd_str(&rd);
    o.dlq_depth = sl_rd_i64(&rd);
    o.nmembers = sl__rd_count(&rd, 2 * SL_MIN_STR + 4);
    o.members = sl__rd_array(&rd, a, o.nmembers, sizeof(*o.members));
    for (uint32_t i = 0; i < o.nmembers && !rd.err; i++) {
        sl_member_desc *m = &o.members[i];
        m->member_id = sl__rd_str(&rd);
        m->client_id = sl__rd_str(&rd);
        m->nassigned = sl__rd_count(&rd, SL_MIN_STR + 4);
        m->assigned = sl__rd_array(&rd, a, m->nassigned, sizeof(sl_tp));
        for (uint32_t j = 0; j < m->nassigned && !rd.err; j++) {
            m->assigned[j].topic = sl__rd_str(&rd);
            m->assigned[j].partition = sl_rd_u32(&rd);
        }
    }
    o.nparts = sl__rd_count(&rd, SL_MIN_STR + 32);
    o.parts = sl__rd_array(&rd, a, o.nparts, sizeof(*o.parts));
    for (uint32_t i = 0; i < o.nparts && !rd.err; i++) {
        sl_group_part_desc *p = &o.parts[i];
        p->topic = sl__rd_str(&rd);
        p->partition = sl_rd_u32(&rd);
        p->committed = sl_rd_i64(&rd);
        p->log_end = sl_rd_i64(&rd);
        p->lag = sl_rd_i64(&rd);
        p->in_flight = sl_rd_u32(&rd);
    }
out:
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
