/*
 * api_sasl.h - SASL_HANDSHAKE and SASL_AUTHENTICATE codecs (api_sasl.c).
 * Byte layouts: docs/protocol.md; the conventions every codec follows are at
 * the top of protocol/api.h.
 */
#ifndef SL_API_SASL_H
#define SL_API_SASL_H

#include "protocol/api_common.h"

/* ---- 31 SASL_HANDSHAKE, 32 SASL_AUTHENTICATE ------------------------- */

/*
 * SASL (docs/protocol.md 4.31, 4.32): HANDSHAKE picks a mechanism
 * ("SCRAM-SHA-256", or "PLAIN" over TLS), then AUTHENTICATE carries the
 * mechanism's messages until the broker answers complete = 1. The
 * response to SASL_HANDSHAKE lists the mechanisms the connection may use
 * (also when the one asked for is refused: then error is
 * SL_ERR_AUTHENTICATION_FAILED and the message names them).
 */
typedef struct sl_sasl_handshake_req {
    sl_str mechanism;
} sl_sasl_handshake_req;

typedef struct sl_sasl_handshake_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t nmechanisms;
    sl_str *mechanisms;
} sl_sasl_handshake_resp;

typedef struct sl_sasl_auth_req {
    const uint8_t *data; /* the mechanism's message (borrowed) */
    size_t len;
} sl_sasl_auth_req;

typedef struct sl_sasl_auth_resp {
    int32_t error;
    sl_str error_msg;
    const uint8_t *data; /* the broker's message, may be empty */
    size_t len;
    uint8_t complete; /* 1: authenticated */
} sl_sasl_auth_resp;

sl_err sl_sasl_handshake_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_sasl_handshake_req *r);
sl_err sl_sasl_handshake_req_decode(const uint8_t *body, size_t len,
                                    sl_sasl_handshake_req *out);
sl_err sl_sasl_handshake_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_sasl_handshake_resp *r);
sl_err sl_sasl_handshake_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_sasl_handshake_resp *out);
sl_err sl_sasl_auth_req_encode(sl_wb *wb, uint32_t corr,
                               const sl_sasl_auth_req *r);
sl_err sl_sasl_auth_req_decode(const uint8_t *body, size_t len,
                               sl_sasl_auth_req *out);
sl_err sl_sasl_auth_resp_encode(sl_wb *wb, uint32_t corr,
                                const sl_sasl_auth_resp *r);
sl_err sl_sasl_auth_resp_decode(const uint8_t *body, size_t len,
                                sl_sasl_auth_resp *out);

#endif
