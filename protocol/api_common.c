/*
 * api_common.c - the api table, the decode arena and helpers shared by the
 * per-family codecs (api_admin.c, api_produce.c, api_fetch.c, api_group.c,
 * api_queue.c). Wire format: docs/protocol.md.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/api_common.h"
#include "protocol/api_common_int.h"
#include "protocol/batch.h"

/* ---- api table -------------------------------------------------------- */

#define API(k, n)                                                              \
    {                                                                          \
        SL_API_##k, n, SL_API_V1, SL_API_V1                                    \
    }
static const sl_api_info api_table[] = {
    API(HANDSHAKE, "HANDSHAKE"),
    API(METADATA, "METADATA"),
    API(CREATE_TOPICS, "CREATE_TOPICS"),
    API(DELETE_TOPICS, "DELETE_TOPICS"),
    API(LIST_TOPICS, "LIST_TOPICS"),
    API(PRODUCE, "PRODUCE"),
    API(FETCH, "FETCH"),
    API(LIST_OFFSETS, "LIST_OFFSETS"),
    API(GROUP_JOIN, "GROUP_JOIN"),
    API(GROUP_HEARTBEAT, "GROUP_HEARTBEAT"),
    API(GROUP_LEAVE, "GROUP_LEAVE"),
    API(OFFSET_COMMIT, "OFFSET_COMMIT"),
    API(OFFSET_FETCH, "OFFSET_FETCH"),
    API(GROUP_LIST, "GROUP_LIST"),
    API(GROUP_DESCRIBE, "GROUP_DESCRIBE"),
    API(QUEUE_ACQUIRE, "QUEUE_ACQUIRE"),
    API(QUEUE_ACK, "QUEUE_ACK"),
    API(QUEUE_NACK, "QUEUE_NACK"),
    API(QUEUE_REJECT, "QUEUE_REJECT"),
    API(QUEUE_TOUCH, "QUEUE_TOUCH"),
    API(DLQ_LIST, "DLQ_LIST"),
    API(DLQ_REDRIVE, "DLQ_REDRIVE"),
    API(QUEUE_GROUP_CONFIG, "QUEUE_GROUP_CONFIG"),
    API(ADMIN, "ADMIN"),
    API(SASL_HANDSHAKE, "SASL_HANDSHAKE"),
    API(SASL_AUTHENTICATE, "SASL_AUTHENTICATE"),
    API(INIT_PRODUCER_ID, "INIT_PRODUCER_ID"),
};
#undef API

const sl_api_info *sl_api_all(size_t *n)
{
    *n = sizeof(api_table) / sizeof(api_table[0]);
    return api_table;
}

const sl_api_info *sl_api_lookup(uint16_t key)
{
    for (size_t i = 0; i < sizeof(api_table) / sizeof(api_table[0]); i++)
        if (api_table[i].key == key)
            return &api_table[i];
    return NULL;
}

const char *sl_api_name(uint16_t key)
{
    const sl_api_info *ai = sl_api_lookup(key);
    return ai ? ai->name : "UNKNOWN";
}

sl_err sl_api_check(uint16_t key, uint16_t version)
{
    const sl_api_info *ai = sl_api_lookup(key);
    if (!ai)
        return SL_ERR_UNSUPPORTED_API;
    if (version < ai->min_version || version > ai->max_version)
        return SL_ERR_UNSUPPORTED_VERSION;
    return SL_OK;
}

/* ---- strings ---------------------------------------------------------- */

sl_str sl_str_c(const char *s)
{
    sl_str r;
    r.p = s;
    r.len = s ? strlen(s) : 0;
    return r;
}

int sl_str_eq(sl_str a, const char *b)
{
    if (!a.p || !b)
        return !a.p && !b;
    return strlen(b) == a.len && memcmp(a.p, b, a.len) == 0;
}

/* ---- arena ------------------------------------------------------------ */

struct sl_arena_chunk {
    sl_arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

#define ARENA_CHUNK 8192

void sl_arena_init(sl_arena *a)
{
    a->head = NULL;
    a->used = 0;
    a->limit = 0;
    a->over_limit = 0;
}

void sl_arena_set_limit(sl_arena *a, size_t limit)
{
    a->limit = limit;
}

void sl_arena_fini(sl_arena *a)
{
    sl_arena_chunk *c = a->head;
    while (c) {
        sl_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used = 0;
    a->over_limit = 0;
}

void sl_arena_reset(sl_arena *a)
{
    sl_arena_chunk *keep = NULL, *c = a->head;
    /* Keep the last chunk of the list: the first one allocated, which is
     * a standard-size chunk unless a big array came first. */
    while (c) {
        sl_arena_chunk *n = c->next;
        if (!n)
            keep = c;
        else
            free(c);
        c = n;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
    a->over_limit = 0;
}

void *sl_arena_alloc(sl_arena *a, size_t n)
{
    const size_t al = alignof(max_align_t);
    sl_arena_chunk *c = a->head;
    void *r;

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + al - 1) & ~(al - 1);
    if (a->limit && (n > a->limit || a->used > a->limit - n)) {
        a->over_limit = 1;
        return NULL;
    }
    if (!c || c->size - c->used < n) {
        size_t sz = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof(*c) + sz);
        if (!c)
            return NULL;
        c->size = sz;
        c->used = 0;
        if (a->head && n > ARENA_CHUNK) {
            /* A big array gets its own chunk behind the current one, so
             * the current chunk's free space stays usable. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    r = c->data + c->used;
    c->used += n;
    a->used += n;
    memset(r, 0, n);
    return r;
}

/* ---- decode helpers --------------------------------------------------- */

uint32_t sl__rd_count(sl_rd *rd, size_t min_size)
{
    uint32_t n = sl_rd_u32(rd);
    if (rd->err)
        return 0;
    if (min_size && n > sl_rd_left(rd) / min_size) {
        rd->err = SL_ERR_MALFORMED;
        return 0;
    }
    return n;
}

void *sl__rd_array(sl_rd *rd, sl_arena *a, uint32_t count, size_t size)
{
    void *p;
    if (rd->err || count == 0)
        return NULL;
    p = sl_arena_alloc(a, (size_t)count * size);
    if (!p)
        rd->err = a->over_limit ? SL_ERR_TOO_LARGE : SL_ERR_NOMEM;
    return p;
}

sl_err sl__rd_end(sl_rd *rd)
{
    if (rd->err)
        return (sl_err)rd->err;
    if (rd->off != rd->len)
        return SL_ERR_MALFORMED;
    return SL_OK;
}

const uint8_t *sl__rd_blob(sl_rd *rd, size_t *len)
{
    uint32_t n = sl_rd_u32(rd);
    const uint8_t *p;
    if (rd->err)
        return NULL;
    p = sl_rd_bytes(rd, n); /* 0xFFFFFFFF never fits: malformed */
    if (p)
        *len = n;
    return p;
}

void sl__put_strs(sl_wb *wb, uint32_t n, const sl_str *s)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++)
        sl__wb_str(wb, s[i]);
}

sl_str *sl__get_strs(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    sl_str *s;
    *n = sl__rd_count(rd, SL_MIN_STR);
    s = sl__rd_array(rd, a, *n, sizeof(*s));
    for (uint32_t i = 0; i < *n && !rd->err; i++)
        s[i] = sl__rd_str(rd);
    return s;
}

void sl__put_kvs(sl_wb *wb, uint32_t n, const sl_kv *kv)
{
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        sl__wb_str(wb, kv[i].key);
        sl__wb_str(wb, kv[i].value);
    }
}

sl_kv *sl__get_kvs(sl_rd *rd, sl_arena *a, uint32_t *n)
{
    sl_kv *kv;
    *n = sl__rd_count(rd, 2 * SL_MIN_STR);
    kv = sl__rd_array(rd, a, *n, sizeof(*kv));
    for (uint32_t i = 0; i < *n && !rd->err; i++) {
        kv[i].key = sl__rd_str(rd);
        kv[i].value = sl__rd_str(rd);
    }
    return kv;
}

/* ---- errors and status-only responses --------------------------------- */

sl_err sl__resp_error(sl_wb *wb, uint32_t corr, int32_t err, sl_str msg)
{
    size_t st;
    if (err == SL_OK)
        return SL_ERR_INVALID_ARG;
    st = sl_resp_begin(wb, corr, err);
    if (msg.p && msg.len >= 0xFFFF)
        msg.len = 0xFFFE; /* truncate an over-long message */
    sl__wb_str(wb, msg);
    return sl_frame_finish(wb, st);
}

sl_err sl_resp_error_encode(sl_wb *wb, uint32_t corr, int32_t err,
                            const char *msg)
{
    return sl__resp_error(wb, corr, err, sl_str_c(msg));
}

sl_err sl_resp_error_decode(const uint8_t *body, size_t len, int32_t *err,
                            sl_str *msg)
{
    sl_rd rd;
    int32_t e;
    sl_str m = {NULL, 0};

    sl_rd_init(&rd, body, len);
    e = sl_rd_i32(&rd);
    if (!rd.err && e != SL_OK)
        m = sl__rd_str(&rd);
    if (rd.err)
        return SL_ERR_MALFORMED;
    *err = e;
    *msg = m;
    return SL_OK;
}

sl_err sl_status_resp_encode(sl_wb *wb, uint32_t corr, int32_t err,
                             const char *msg)
{
    if (err != SL_OK)
        return sl_resp_error_encode(wb, corr, err, msg);
    return sl_frame_finish(wb, sl_resp_begin(wb, corr, SL_OK));
}

sl_err sl_status_resp_decode(const uint8_t *body, size_t len, int32_t *err,
                             sl_str *msg)
{
    sl_rd rd;
    int32_t e = 0;
    sl_str m = {NULL, 0};
    sl_err rc;

    sl_rd_init(&rd, body, len);
    sl__rd_resp_status(&rd, &e, &m);
    rc = sl__rd_end(&rd);
    if (rc != SL_OK)
        return rc;
    *err = e;
    *msg = m;
    return SL_OK;
}

/* ---- records blobs ---------------------------------------------------- */

int sl_records_next(const uint8_t *p, size_t len, size_t *off,
                    size_t *batch_off, size_t *batch_len, sl_err *err)
{
    sl_batch_hdr h;
    sl_err rc;
    size_t left, bsz;

    if (*off >= len) {
        if (err)
            *err = SL_OK;
        return 0;
    }
    left = len - *off;
    rc = sl_batch_hdr_decode(p + *off, left, &h);
    if (rc == SL_OK) {
        bsz = sl_batch_size(&h);
        if (bsz > left)
            rc = SL_ERR_MALFORMED; /* batch overruns the records field */
    }
    if (rc != SL_OK) {
        if (err)
            *err = rc;
        return 0;
    }
    *batch_off = *off;
    *batch_len = bsz;
    *off += bsz;
    if (err)
        *err = SL_OK;
    return 1;
}
