/*
 * binary.c - what every binary-protocol handler uses (binary.h): the
 * registration into the dispatch table, the error reply, and the helpers
 * of binary_int.h. The protocol itself is in other files, which register
 * their handlers through sl_binary_register:
 *   binary_conn.c      the connection's input (the frame cutter), the
 *                      dispatch, the module's start
 *   binary_topics.c    0 HANDSHAKE, 1 METADATA, 2-4 CREATE, DELETE and
 *                      LIST_TOPICS
 *   binary_produce.c   5 PRODUCE
 *   binary_fetch.c     6 FETCH (zero copy, long poll), 7 LIST_OFFSETS
 *   binary_groups.c    the group and queue apis (10-27)
 *   auth.c, acl.c ...  SASL and the ACL apis
 * So a handler module depends on binary.h and binary.c depends on none
 * of them (scripts/include-cycles.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binary_int.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "protocol/api.h"
#include "protocol/log.h"

sl_err sl_binary_register(sl_broker *b, uint16_t api_key, uint16_t min_version,
                          uint16_t max_version, sl_binary_handler fn)
{
    if (api_key >= SL_MAX_API || min_version > max_version)
        return SL_ERR_INVALID_ARG;
    b->apis[api_key].fn = fn;
    b->apis[api_key].min_version = min_version;
    b->apis[api_key].max_version = max_version;
    return SL_OK;
}

sl_err sl_bin_topic_cstr(sl_str s, char *buf, size_t n)
{
    if (!s.p || s.len == 0 || s.len >= n)
        return SL_ERR_INVALID_TOPIC;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return sl_topic_name_check(buf, s.len);
}

sl_str sl_bin_arena_str(sl_arena *a, sl_str s)
{
    sl_str r = {NULL, 0};
    char *p;
    if (!s.p)
        return r;
    p = sl_arena_alloc(a, s.len + 1);
    if (!p)
        return r;
    memcpy(p, s.p, s.len);
    r.p = p;
    r.len = s.len;
    return r;
}

void sl_bin_reply_wb(sl_reply *r, sl_wb *wb, sl_err enc_rc, const char *api)
{
    if (enc_rc != SL_OK) {
        sl_log(SL_ERROR, "binary", "%s: cannot encode reply: %s", api,
               sl_strerror(enc_rc));
        sl_reply_error(r, enc_rc, "cannot encode the reply");
        return;
    }
    if (sl_reply_add(r, wb->p, wb->len) != SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    sl_reply_done(r);
}

void sl_bin_malformed(sl_conn *c, sl_reply *r, const char *api)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "%s: malformed request body", api);
    sl_conn_warn(c, "malformed", "%s", msg);
    sl_reply_error(r, SL_ERR_MALFORMED, msg);
}

void sl_reply_error(sl_reply *r, sl_err err, const char *msg)
{
    sl_wb wb;

    sl_reply_clear(r);
    sl_wb_init(&wb, 64);
    if (sl_resp_error_encode(&wb, sl_reply_corr(r), (int32_t)err, msg) !=
        SL_OK) {
        /* message too long or no memory: send the bare code */
        sl_wb_reset(&wb);
        sl_resp_error_encode(&wb, sl_reply_corr(r), (int32_t)err, NULL);
    }
    sl_reply_add(r, wb.p, wb.len);
    sl_wb_fini(&wb);
    sl_reply_done(r);
}
