/*
 * peer_auth.c - inter-broker authentication with the cluster secret
 * (issue 16).
 *
 * Without it, anything that reaches a broker's binary port could claim
 * to be a follower (FETCH version 2 with a replica id reads up to the log
 * end, past the high-water mark) or another broker (CLUSTER_FORWARD puts
 * commands in the metadata log). So every node of a cluster reads the
 * same secret (cluster-secret-file, at least 16 bytes), and every
 * connection one broker opens to another (a follower's fetcher, the
 * forwarded appends of broker/forward.c, CLUSTER_FORWARD from
 * broker/cluster.c) begins with a SASL login of mechanism SLUICE-BROKER:
 *
 *   client  SASL_HANDSHAKE "SLUICE-BROKER"
 *   client  SASL_AUTHENTICATE "n=NODE,t=UNIX_MS,r=NONCE,p=PROOF"
 *           PROOF = hex HMAC-SHA-256(secret, "SLUICE-BROKER,n=...,r=NONCE")
 *   server  complete, "v=" hex HMAC-SHA-256(secret,
 *           "SLUICE-BROKER-SERVER,n=...,r=NONCE")
 *
 * Both messages are sent at once, before the connection's first request
 * (the broker answers a connection's requests in order and checks the
 * proof on the loop, so the request behind them runs logged in); the
 * client reads the two replies before its own. The server's answer
 * proves that it holds the secret too, so a follower does not take
 * records from an impostor. The secret itself never travels. A proof is
 * accepted once (the nonces of the last PEER_SEEN logins are kept) and
 * within PEER_SKEW_MS of the server's clock, so a recorded login cannot
 * be replayed. It authenticates, it does not encrypt: replication
 * traffic is as readable as client traffic on a plaintext port.
 *
 * A connection logged in this way is a broker: it may send replica
 * fetches and CLUSTER_FORWARD (refused to every other connection once a
 * secret is set or users exist: auth_sasl.c's gate) and is not subject to
 * the users' rules (the node that took the client's request checked
 * them).
 * @thread loop
 */
#include "broker/peer_auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "broker/auth_int.h"
#include "broker/tls.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"
#include "protocol/scram.h"

#define PEER_CORR_BASE 0x7fff0000u
#define PEER_SKEW_MS (5 * 60 * 1000)
#define PEER_SECRET_MIN 16

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* HMAC(secret, label "," body) */
static void mac(const sl_auth *a, const char *label, const char *body,
                uint8_t out[SL_SCRAM_KEY_LEN])
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s,%s", label, body);
    sl_scram_hmac(a->peer_secret, a->peer_secret_len, msg,
                  n < 0 ? 0 : (size_t)n, out);
}

const uint8_t *sl_peer_secret(const sl_broker *b, size_t *len)
{
    *len = b->auth ? b->auth->peer_secret_len : 0;
    return b->auth ? b->auth->peer_secret : NULL;
}

int sl_peer_auth_enabled(const sl_broker *b)
{
    return b->auth && b->auth->peer_secret_len > 0;
}

sl_err sl_peer_auth_load(sl_broker *b, char *err, size_t errlen)
{
    const char *path = b->cfg.cluster_secret_file;
    sl_auth *a = b->auth;
    struct stat st;
    FILE *f;
    size_t n;
    if (!path || !path[0])
        return SL_OK;
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cluster-secret-file %.300s: %s", path,
                 strerror(errno));
        return SL_ERR_INVALID_CONFIG;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        sl_log(SL_WARN, "auth",
               "cluster-secret-file %s is readable by other users (mode "
               "%03o): chmod 600 it",
               path, (unsigned)(st.st_mode & 0777));
    n = fread(a->peer_secret, 1, sizeof(a->peer_secret), f);
    fclose(f);
    while (n > 0 &&
           (a->peer_secret[n - 1] == '\n' || a->peer_secret[n - 1] == '\r' ||
            a->peer_secret[n - 1] == ' '))
        n--; /* `echo SECRET > file` and `openssl rand -hex 32 > file` */
    if (n < PEER_SECRET_MIN) {
        memset(a->peer_secret, 0, sizeof(a->peer_secret));
        snprintf(err, errlen,
                 "cluster-secret-file %.300s: the secret must be at least "
                 "%d bytes (e.g. openssl rand -hex 32 > FILE)",
                 path, PEER_SECRET_MIN);
        return SL_ERR_INVALID_CONFIG;
    }
    a->peer_secret_len = n;
    return SL_OK;
}

/* ---- TLS between brokers (cluster-tls) ---------------------------------- */

const char *sl_peer_my_addr(const sl_broker *b, int stomp)
{
    if (b->cfg.cluster_tls)
        return stomp ? b->stomp_tls_addr : b->bin_tls_addr;
    return stomp ? b->stomp_addr : b->bin_addr;
}

sl_err sl_peer_tls_check(sl_broker *b, char *err, size_t errlen)
{
    const sl_config *cfg = &b->cfg;
    if (!cfg->cluster_tls || cfg->node_id == 0)
        return SL_OK;
    if (!cfg->tls_listen || !cfg->tls_listen[0] || !cfg->stomp_tls_listen ||
        !cfg->stomp_tls_listen[0] || !cfg->tls_ca || !cfg->tls_ca[0]) {
        snprintf(err, errlen,
                 "cluster-tls needs tls-listen and stomp-tls-listen (the "
                 "addresses this node registers) and tls-ca (the CA of the "
                 "other nodes' certificates)");
        return SL_ERR_INVALID_CONFIG;
    }
    return SL_OK;
}

/* The client context for connections to other brokers, built once:
 * TLS 1.2+, the peers' certificates checked against tls-ca, this node's
 * tls-cert shown as a client certificate. NULL (logged) on failure. */
static SSL_CTX *peer_ctx(sl_broker *b)
{
    sl_auth *a = b->auth;
    const sl_config *cfg = &b->cfg;
    SSL_CTX *ctx;
    char why[200];
    if (a->peer_tls_ctx)
        return a->peer_tls_ctx;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1 ||
        (cfg->tls_cert && cfg->tls_cert[0] &&
         (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) !=
              1))) {
        sl_log(SL_ERROR, "cluster",
               "cluster-tls: cannot build the client context (tls-ca %s, "
               "tls-cert %s): %s",
               cfg->tls_ca, cfg->tls_cert ? cfg->tls_cert : "",
               sl_tls_err_reason(0, why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    a->peer_tls_ctx = ctx;
    return ctx;
}

struct bufferevent *sl_peer_bev_new(sl_broker *b, const char *addr)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
    unsigned char ipbuf[16];
    struct bufferevent *bev;
    X509_VERIFY_PARAM *vp;
    SSL_CTX *ctx;
    SSL *ssl;
    if (!b->cfg.cluster_tls)
        return bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!(ctx = peer_ctx(b)) || !(ssl = SSL_new(ctx)))
        return NULL;
    if (n && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(n < 127 ? n : 127), addr);
    vp = SSL_get0_param(ssl);
    if (inet_pton(AF_INET, host, ipbuf) == 1 ||
        inet_pton(AF_INET6, host, ipbuf) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(vp, host);
    } else {
        X509_VERIFY_PARAM_set1_host(vp, host, 0);
        SSL_set_tlsext_host_name(ssl, host);
    }
    bev = bufferevent_openssl_socket_new(
        b->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* ---- client ------------------------------------------------------------- */

sl_err sl_peer_login_message(sl_broker *b, char *msg, size_t msglen,
                             uint8_t expect[32])
{
    sl_auth *a = b->auth;
    uint8_t nonce[16], proof[SL_SCRAM_KEY_LEN];
    char body[160], nhex[33], phex[65];
    if (sl_scram_random(nonce, sizeof(nonce)) != SL_OK)
        return SL_ERR_NOMEM;
    hex(nonce, sizeof(nonce), nhex);
    snprintf(body, sizeof(body), "n=%d,t=%" PRId64 ",r=%s", (int)b->cfg.node_id,
             sl_now_ms(), nhex);
    mac(a, SL_PEER_MECH, body, proof);
    hex(proof, sizeof(proof), phex);
    mac(a, SL_PEER_MECH "-SERVER", body, expect);
    snprintf(msg, msglen, "%s,p=%s", body, phex);
    return SL_OK;
}

int sl_peer_login_proof_ok(const uint8_t expect[32], const char *got)
{
    char want[80];
    hex(expect, 32, want + 2);
    want[0] = 'v';
    want[1] = '=';
    return got && strlen(got) == strlen(want) &&
           sl_scram_equal((const uint8_t *)got, (const uint8_t *)want,
                          strlen(want));
}

sl_err sl_peer_login_start(sl_broker *b, sl_peer_login *pl,
                           struct bufferevent *bev)
{
    char msg[256];
    sl_sasl_handshake_req hs;
    sl_sasl_auth_req ar;
    sl_wb wb;
    sl_err rc;
    memset(pl, 0, sizeof(*pl));
    if (!sl_peer_auth_enabled(b))
        return SL_OK;
    rc = sl_peer_login_message(b, msg, sizeof(msg), pl->expect);
    if (rc != SL_OK)
        return rc;
    hs.mechanism = sl_str_c(SL_PEER_MECH);
    ar.data = (const uint8_t *)msg;
    ar.len = strlen(msg);
    pl->corr = PEER_CORR_BASE + 1;
    sl_wb_init(&wb, 512);
    rc = sl_sasl_handshake_req_encode(&wb, PEER_CORR_BASE, &hs);
    if (rc == SL_OK)
        rc = sl_sasl_auth_req_encode(&wb, pl->corr, &ar);
    if (rc == SL_OK && bufferevent_write(bev, wb.p, wb.len) != 0)
        rc = SL_ERR_NOMEM;
    sl_wb_fini(&wb);
    if (rc == SL_OK)
        pl->left = 2;
    return rc;
}

/* An error reply's message (i32 error, str16 message). */
static void err_text(const uint8_t *body, size_t len, char *out, size_t n)
{
    sl_rd rd;
    uint16_t l = 0;
    const char *s;
    sl_rd_init(&rd, body, len);
    sl_rd_u32(&rd);
    s = sl_rd_left(&rd) >= 2 ? sl_rd_str16(&rd, &l) : NULL;
    snprintf(out, n, "%.*s", s ? (int)l : 0, s ? s : "");
}

int sl_peer_login_read(sl_peer_login *pl, struct evbuffer *in, char *msg,
                       size_t msglen)
{
    while (pl->left > 0) {
        size_t avail = evbuffer_get_length(in), flen = 0;
        const uint8_t *p = evbuffer_pullup(in, avail < 4 ? (ssize_t)avail : 4);
        uint32_t corr;
        int32_t err;
        char text[256];
        int rc;
        if (avail < 4 || !p)
            return 0;
        rc = sl_frame_peek(p, 4, 1u << 16, &flen);
        if (rc != SL_OK && rc != SL_FRAME_PARTIAL) {
            snprintf(msg, msglen, "broker login: bad reply frame");
            return -1;
        }
        if (avail < flen)
            return 0;
        p = evbuffer_pullup(in, (ssize_t)flen);
        if (!p || flen < SL_RESP_HDR_SIZE + 4 ||
            sl_resp_hdr_decode(p, flen, &corr) != SL_OK ||
            corr != pl->corr - (uint32_t)(pl->left - 1)) {
            snprintf(msg, msglen, "broker login: unexpected reply");
            return -1;
        }
        err = (int32_t)sl_get_u32(p + SL_RESP_HDR_SIZE);
        if (err != SL_OK) {
            err_text(p + SL_RESP_HDR_SIZE, flen - SL_RESP_HDR_SIZE, text,
                     sizeof(text));
            snprintf(msg, msglen, "broker login refused: %s",
                     text[0] ? text : sl_strerror((sl_err)err));
            return -1;
        }
        if (corr == pl->corr) {
            sl_sasl_auth_resp s;
            char got[80] = "";
            if (sl_sasl_auth_resp_decode(p + SL_RESP_HDR_SIZE,
                                         flen - SL_RESP_HDR_SIZE,
                                         &s) == SL_OK &&
                s.len < sizeof(got))
                memcpy(got, s.data, s.len);
            if (!sl_peer_login_proof_ok(pl->expect, got)) {
                snprintf(msg, msglen,
                         "broker login: the other side does not prove the "
                         "cluster secret (not a broker of this cluster, or "
                         "its cluster-secret-file differs)");
                return -1;
            }
        }
        evbuffer_drain(in, flen);
        pl->left--;
    }
    return 1;
}

void sl_peer_login_warn(const char *sub, int32_t node, const char *addr,
                        const char *msg)
{
    static int64_t last_ms;
    static long skipped;
    int64_t now = sl_now_ms();
    if (last_ms && now - last_ms < 10000) {
        skipped++;
        return;
    }
    if (node > 0)
        sl_log(SL_WARN, sub, "node %d at %s: %s%s", (int)node, addr, msg,
               skipped ? " (and earlier refusals not logged)" : "");
    else
        sl_log(SL_WARN, sub, "%s: %s%s", addr, msg,
               skipped ? " (and earlier refusals not logged)" : "");
    last_ms = now;
    skipped = 0;
}

/* ---- server ------------------------------------------------------------- */

static int unhex16(const char *s, size_t n, uint8_t *out)
{
    if (n != 32)
        return -1;
    for (size_t i = 0; i < 16; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= c - '0';
            else if (c >= 'a' && c <= 'f')
                v |= c - 'a' + 10;
            else
                return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

sl_err sl_peer_auth_check(sl_broker *b, const uint8_t *m, size_t len,
                          int32_t *node, char *reply, size_t replylen,
                          char *why, size_t whylen)
{
    sl_auth *a = b->auth;
    char msg[256], body[200], phex[65];
    const char *pp;
    uint8_t proof[SL_SCRAM_KEY_LEN], nonce[16], sp[SL_SCRAM_KEY_LEN];
    long long n, t;
    char r[40];
    int64_t now = sl_now_ms();
    if (!sl_peer_auth_enabled(b)) {
        snprintf(why, whylen, "this broker has no cluster-secret-file");
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    if (len >= sizeof(msg)) {
        snprintf(why, whylen, "malformed broker login");
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    memcpy(msg, m, len);
    msg[len] = 0;
    pp = strstr(msg, ",p=");
    if (!pp || sscanf(msg, "n=%lld,t=%lld,r=%32[0-9a-f]", &n, &t, r) != 3 ||
        unhex16(r, strlen(r), nonce) != 0 || n < 1 || n > INT32_MAX ||
        (size_t)(pp - msg) >= sizeof(body)) {
        snprintf(why, whylen, "malformed broker login");
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    *node = (int32_t)n;
    memcpy(body, msg, (size_t)(pp - msg));
    body[pp - msg] = 0;
    mac(a, SL_PEER_MECH, body, proof);
    hex(proof, sizeof(proof), phex);
    if (strlen(pp + 3) != 64 ||
        !sl_scram_equal((const uint8_t *)pp + 3, (const uint8_t *)phex, 64)) {
        snprintf(why, whylen,
                 "node %lld: wrong proof of the cluster secret (its "
                 "cluster-secret-file differs from this node's)",
                 n);
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    if (t < now - PEER_SKEW_MS || t > now + PEER_SKEW_MS) {
        snprintf(why, whylen,
                 "node %lld: login time %lld ms away from this node's clock "
                 "(more than %d s: synchronize the clocks)",
                 n, (long long)(t - now), PEER_SKEW_MS / 1000);
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    for (size_t i = 0; i < PEER_SEEN; i++)
        if (a->peer_seen[i].ms && !memcmp(a->peer_seen[i].nonce, nonce, 16)) {
            snprintf(why, whylen, "node %lld: a replayed login", n);
            return SL_ERR_AUTHENTICATION_FAILED;
        }
    memcpy(a->peer_seen[a->peer_seen_next].nonce, nonce, 16);
    a->peer_seen[a->peer_seen_next].ms = now;
    a->peer_seen_next = (a->peer_seen_next + 1) % PEER_SEEN;
    mac(a, SL_PEER_MECH "-SERVER", body, sp);
    if (replylen < 2 * sizeof(sp) + 3) {
        snprintf(why, whylen, "internal: reply buffer");
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    reply[0] = 'v';
    reply[1] = '=';
    hex(sp, sizeof(sp), reply + 2);
    return SL_OK;
}
