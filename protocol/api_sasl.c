/*
 * api_sasl.c - codecs of SASL_HANDSHAKE (31) and SASL_AUTHENTICATE (32).
 *
 *   SASL_HANDSHAKE request:     str16 mechanism
 *   SASL_HANDSHAKE response:    i32 error | u32 n | str16 mechanism * n
 *   SASL_AUTHENTICATE request:  bytes32 data
 *   SASL_AUTHENTICATE response: i32 error | bytes32 data | u8 complete
 *
 * (an error response ends after its str16 message, as every response).
 */
#include "protocol/api_sasl.h"
#include "protocol/api_common_int.h"

sl_err sl_sasl_handshake_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_sasl_handshake_req *r)
{
    size_t st;
    if (!r->mechanism.p || !r->mechanism.len)
        return SL_ERR_INVALID_ARG;
    st = sl_req_begin(wb, SL_API_SASL_HANDSHAKE, SL_API_V1, corr);
    sl__wb_str(wb, r->mechanism);
    return sl_frame_finish(wb, st);
}

sl_err sl_sasl_handshake_req_decode(const uint8_t *body, size_t len,
                                    sl_sasl_handshake_req *out)
{
    sl_rd rd;
    sl_sasl_handshake_req o = {{0}};
    sl_err rc;
    sl_rd_init(&rd, body, len);
    o.mechanism = sl__rd_str(&rd);
    if (!rd.err && !o.mechanism.p)
        rd.err = SL_ERR_MALFORMED;
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_sasl_handshake_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_sasl_handshake_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl__put_strs(wb, r->nmechanisms, r->mechanisms);
    return sl_frame_finish(wb, st);
}

sl_err sl_sasl_handshake_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_sasl_handshake_resp *out)
{
    sl_rd rd;
    sl_sasl_handshake_resp o = {0};
    sl_err rc;
    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg))
        o.mechanisms = sl__get_strs(&rd, a, &o.nmechanisms);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_sasl_auth_req_encode(sl_wb *wb, uint32_t corr,
                               const sl_sasl_auth_req *r)
{
    size_t st = sl_req_begin(wb, SL_API_SASL_AUTHENTICATE, SL_API_V1, corr);
    sl_wb_bytes32(wb, r->data ? r->data : (const uint8_t *)"", r->len);
    return sl_frame_finish(wb, st);
}

sl_err sl_sasl_auth_req_decode(const uint8_t *body, size_t len,
                               sl_sasl_auth_req *out)
{
    sl_rd rd;
    sl_sasl_auth_req o = {0};
    sl_err rc;
    sl_rd_init(&rd, body, len);
    o.data = sl__rd_blob(&rd, &o.len);
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}

sl_err sl_sasl_auth_resp_encode(sl_wb *wb, uint32_t corr,
                                const sl_sasl_auth_resp *r)
{
    size_t st;
    if (r->error != SL_OK)
        return sl__resp_error(wb, corr, r->error, r->error_msg);
    st = sl_resp_begin(wb, corr, SL_OK);
    sl_wb_bytes32(wb, r->data ? r->data : (const uint8_t *)"", r->len);
    sl_wb_u8(wb, r->complete ? 1 : 0);
    return sl_frame_finish(wb, st);
}

sl_err sl_sasl_auth_resp_decode(const uint8_t *body, size_t len,
                                sl_sasl_auth_resp *out)
{
    sl_rd rd;
    sl_sasl_auth_resp o = {0};
    sl_err rc;
    sl_rd_init(&rd, body, len);
    if (sl__rd_resp_status(&rd, &o.error, &o.error_msg)) {
        o.data = sl__rd_blob(&rd, &o.len);
        o.complete = sl_rd_u8(&rd);
        if (!rd.err && o.complete > 1)
            rd.err = SL_ERR_MALFORMED;
    }
    rc = sl__rd_end(&rd);
    if (rc == SL_OK)
        *out = o;
    return rc;
}
