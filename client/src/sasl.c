/*
 * sasl.c - libsluice's login: SASL_HANDSHAKE then SASL_AUTHENTICATE with
 * SCRAM-SHA-256 (RFC 5802/7677) or PLAIN, right after the HANDSHAKE of
 * each new connection when a user is configured (sasl.username or
 * $SLUICE_USER; docs/protocol.md 4.31, 4.32).
 *
 * SCRAM: client-first "n,,n=USER,r=CNONCE"; the broker answers
 * "r=CNONCE+SNONCE,s=SALT,i=ITER"; client-final "c=biws,r=NONCE,p=PROOF";
 * the broker answers "v=SIGNATURE", which is checked: a broker that does
 * not know the password's keys cannot fake it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/conn.h"
#include "protocol/api.h"
#include "protocol/scram.h"

/* Send one SASL frame already encoded in c->out; check its error. */
static sl_err call(sl_cl_conn *c, uint32_t corr, sl_chunk **f,
                   const uint8_t **body, size_t *blen)
{
    uint32_t rcorr;
    sl_err rc =
        sl_cl_conn_call(c, corr, sl_cl_deadline(c->cfg->connect_timeout_ms), f);
    if (rc != SL_OK)
        return rc;
    *body = sl_frame_body(*f, blen, &rcorr);
    return SL_OK;
}

static sl_err refused(sl_cl_conn *c, int32_t err, sl_str msg)
{
    return sl_cl_fail((sl_err)err, "broker %s:%s: login as '%s': %.*s",
                      c->cfg->host, c->cfg->port, c->cfg->sasl_user,
                      (int)msg.len, msg.p ? msg.p : "");
}

static sl_err step(sl_cl_conn *c, const char *data, size_t len, sl_chunk **f,
                   sl_sasl_auth_resp *resp)
{
    sl_sasl_auth_req q;
    uint32_t corr = sl_cl_conn_corr(c);
    const uint8_t *body;
    size_t blen;
    sl_err rc;
    q.data = (const uint8_t *)data;
    q.len = len;
    rc = sl_sasl_auth_req_encode(&c->out, corr, &q);
    if (rc == SL_OK)
        rc = call(c, corr, f, &body, &blen);
    if (rc != SL_OK)
        return rc;
    if (sl_sasl_auth_resp_decode(body, blen, resp) != SL_OK)
        return sl_cl_fail(SL_ERR_PROTOCOL,
                          "broker %s:%s: bad SASL_AUTHENTICATE reply",
                          c->cfg->host, c->cfg->port);
    if (resp->error != SL_OK)
        return refused(c, resp->error, resp->error_msg);
    return SL_OK;
}

static sl_err scram(sl_cl_conn *c)
{
    char cnonce[32], first[160], final_wo[400], final[520], proof64[64];
    char sig64[64], authmsg[1200];
    const char *sfirst, *v, *nonce, *salt64, *it;
    size_t sflen, vlen, nlen, slen, ilen;
    uint8_t salt[128], salted[SL_SCRAM_KEY_LEN], ck[SL_SCRAM_KEY_LEN];
    uint8_t sk[SL_SCRAM_KEY_LEN], stored[SL_SCRAM_KEY_LEN];
    uint8_t sig[SL_SCRAM_KEY_LEN], proof[SL_SCRAM_KEY_LEN];
    uint8_t ssig[SL_SCRAM_KEY_LEN];
    char itb[16];
    long iter;
    int saltlen;
    sl_chunk *f = NULL;
    sl_sasl_auth_resp resp;
    sl_err rc;

    if (sl_scram_nonce(cnonce) != SL_OK)
        return sl_cl_fail(SL_ERR_UNKNOWN, "cannot make a nonce");
    snprintf(first, sizeof(first), "n,,n=%s,r=%s", c->cfg->sasl_user, cnonce);
    rc = step(c, first, strlen(first), &f, &resp);
    if (rc != SL_OK)
        goto out;
    sfirst = (const char *)resp.data;
    sflen = resp.len;
    if (!sl_scram_attr(sfirst, sflen, 'r', &nonce, &nlen) ||
        !sl_scram_attr(sfirst, sflen, 's', &salt64, &slen) ||
        !sl_scram_attr(sfirst, sflen, 'i', &it, &ilen) ||
        nlen <= strlen(cnonce) || memcmp(nonce, cnonce, strlen(cnonce)) ||
        ilen == 0 || ilen >= sizeof(itb) || sflen > 400) {
        rc = sl_cl_fail(SL_ERR_PROTOCOL,
                        "broker %s:%s: bad SCRAM server-first-message",
                        c->cfg->host, c->cfg->port);
        goto out;
    }
    memcpy(itb, it, ilen);
    itb[ilen] = 0;
    iter = strtol(itb, NULL, 10);
    saltlen = sl_b64_decode(salt64, slen, salt, sizeof(salt));
    if (iter < 1 || iter > SL_SCRAM_MAX_ITER || saltlen < 1) {
        rc = sl_cl_fail(SL_ERR_PROTOCOL,
                        "broker %s:%s: bad SCRAM salt or iteration count",
                        c->cfg->host, c->cfg->port);
        goto out;
    }
    snprintf(final_wo, sizeof(final_wo), "c=biws,r=%.*s", (int)nlen, nonce);
    snprintf(authmsg, sizeof(authmsg), "%s,%.*s,%s", first + 3, (int)sflen,
             sfirst, final_wo);
    rc = sl_scram_salted(c->cfg->sasl_password, strlen(c->cfg->sasl_password),
                         salt, (size_t)saltlen, (uint32_t)iter, salted);
    if (rc != SL_OK)
        goto out;
    sl_scram_keys(salted, ck, stored, sk);
    sl_scram_hmac(stored, sizeof(stored), authmsg, strlen(authmsg), sig);
    for (int i = 0; i < SL_SCRAM_KEY_LEN; i++)
        proof[i] = ck[i] ^ sig[i];
    sl_scram_hmac(sk, sizeof(sk), authmsg, strlen(authmsg), ssig);
    sl_b64_encode(proof, sizeof(proof), proof64, sizeof(proof64));
    snprintf(final, sizeof(final), "%s,p=%s", final_wo, proof64);
    sl_chunk_unref(f);
    f = NULL;
    rc = step(c, final, strlen(final), &f, &resp);
    if (rc != SL_OK)
        goto out;
    sl_b64_encode(ssig, sizeof(ssig), sig64, sizeof(sig64));
    if (!resp.complete ||
        !sl_scram_attr((const char *)resp.data, resp.len, 'v', &v, &vlen) ||
        vlen != strlen(sig64) || memcmp(v, sig64, vlen) != 0) {
        rc = sl_cl_fail(SL_ERR_AUTH,
                        "broker %s:%s: the broker's SCRAM signature is wrong "
                        "(it does not know this user's keys)",
                        c->cfg->host, c->cfg->port);
        goto out;
    }
out:
    sl_chunk_unref(f);
    memset(salted, 0, sizeof(salted));
    memset(ck, 0, sizeof(ck));
    return rc;
}

static sl_err plain(sl_cl_conn *c)
{
    char buf[1200];
    size_t ul = strlen(c->cfg->sasl_user), pl = strlen(c->cfg->sasl_password);
    sl_chunk *f = NULL;
    sl_sasl_auth_resp resp;
    sl_err rc;
    buf[0] = 0;
    memcpy(buf + 1, c->cfg->sasl_user, ul);
    buf[1 + ul] = 0;
    memcpy(buf + 2 + ul, c->cfg->sasl_password, pl);
    rc = step(c, buf, 2 + ul + pl, &f, &resp);
    memset(buf, 0, sizeof(buf));
    if (rc == SL_OK && !resp.complete)
        rc = sl_cl_fail(SL_ERR_PROTOCOL, "broker %s:%s: PLAIN not complete",
                        c->cfg->host, c->cfg->port);
    sl_chunk_unref(f);
    return rc;
}

sl_err sl_cl_sasl_login(sl_cl_conn *c)
{
    sl_sasl_handshake_req q;
    sl_sasl_handshake_resp resp;
    sl_arena a;
    sl_chunk *f = NULL;
    const uint8_t *body;
    size_t blen;
    uint32_t corr = sl_cl_conn_corr(c);
    const char *mech = c->cfg->sasl_plain ? "PLAIN" : SL_SCRAM_MECH;
    sl_err rc;

    if (!c->cfg->sasl_user[0])
        return SL_OK;
    sl_arena_init(&a);
    q.mechanism = sl_str_c(mech);
    rc = sl_sasl_handshake_req_encode(&c->out, corr, &q);
    if (rc == SL_OK)
        rc = call(c, corr, &f, &body, &blen);
    if (rc == SL_OK) {
        if (sl_sasl_handshake_resp_decode(body, blen, &a, &resp) != SL_OK)
            rc = sl_cl_fail(SL_ERR_PROTOCOL,
                            "broker %s:%s: bad SASL_HANDSHAKE reply",
                            c->cfg->host, c->cfg->port);
        else if (resp.error != SL_OK)
            rc = refused(c, resp.error, resp.error_msg);
    }
    sl_chunk_unref(f);
    sl_arena_fini(&a);
    if (rc == SL_OK)
        rc = c->cfg->sasl_plain ? plain(c) : scram(c);
    return rc;
}
