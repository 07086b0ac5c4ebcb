/*
 * tls.c - the broker's TLS context (tls.h).
 *
 * Design
 * ------
 * TLS is a transport under the connection layer (conn.c): an accepted
 * socket of a TLS listener gets a bufferevent_openssl instead of a socket
 * bufferevent, and the protocols above see the same bufferevent interface.
 * This file only owns the server SSL_CTX every TLS listener shares
 * (binary, STOMP, HTTP):
 *
 *  - TLS 1.2 and 1.3 only. TLS 1.3 uses OpenSSL's default suites (all
 *    AEAD); TLS 1.2 is limited to ECDHE with AES-GCM or ChaCha20-Poly1305
 *    (Mozilla's "intermediate" list without DHE): forward secrecy and no
 *    CBC, RC4, 3DES or static RSA. Compression and renegotiation are off.
 *  - The certificate file holds the broker's certificate and its chain
 *    (SSL_CTX_use_certificate_chain_file); the key must match it, which is
 *    checked at start rather than at the first handshake. A key file that
 *    group or others may read is worth a WARN line.
 *  - tls-client-auth: none (no certificate asked for), request (asked for;
 *    one that is sent must verify against tls-ca), require (a client
 *    without a verified certificate fails the handshake). The subject of a
 *    verified client certificate is the connection's TLS identity
 *    (sl_conn_tls_subject, sl_conn_tls_cn in conn.h) for the auth layer.
 *  - SIGHUP rebuilds the context from the same files (certificates are
 *    renewed in place by certbot and the like). SSL_new takes a reference
 *    on its context, so connections opened before keep theirs and are not
 *    disturbed; new ones get the new context. A reload that fails (a
 *    half-written file) keeps the old context and says why.
 *
 * Kernel TLS: OpenSSL 3 can hand the record layer to the kernel
 * (SSL_OP_ENABLE_KTLS) and then send file ranges with SSL_sendfile, which
 * would keep fetch zero-copy. It needs the kernel's "tls" upper layer
 * protocol; sl_tls_init logs whether it is offered
 * (/proc/sys/net/ipv4/tcp_available_ulp). Without it, a fetch over TLS
 * reads the segment into memory to encrypt it (conn.c does not mark the
 * reply buffers of TLS connections for sendfile). docs/benchmarks.md has
 * the figures.
 *
 * @thread loop (everything in this file)
 */
#include "broker/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker/broker.h"
#include "protocol/log.h"

/* TLS 1.2 suites (TLS 1.3 keeps OpenSSL's defaults). */
#define TLS12_CIPHERS                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

enum { AUTH_NONE = 0, AUTH_REQUEST = 1, AUTH_REQUIRE = 2 };

static const char *auth_names[] = {"none", "request", "require"};

int sl_tls_wanted(const sl_broker *b)
{
    const sl_config *c = &b->cfg;
    return (c->tls_listen && *c->tls_listen) ||
           (c->stomp_tls_listen && *c->stomp_tls_listen) ||
           (c->stomp_wss_listen && *c->stomp_wss_listen) ||
           (c->http_tls_listen && *c->http_tls_listen);
}

const char *sl_tls_err_reason(unsigned long e, char *buf, size_t len)
{
    const char *r;
    if (!e)
        e = ERR_peek_error();
    r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        snprintf(buf, len, "OpenSSL error %lu", e);
    else
        snprintf(buf, len, "no detail from OpenSSL");
    ERR_clear_error();
    return buf;
}

/* "CN=...,O=..." of a certificate's subject. */
static void name_of(X509_NAME *n, char *buf, size_t len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int got = 0;
    buf[0] = '\0';
    if (!bio)
        return;
    if (X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0)
        got = BIO_read(bio, buf, (int)len - 1);
    buf[got > 0 ? got : 0] = '\0';
    BIO_free(bio);
}

/* Build a context from the configured files. NULL with err set. */
static SSL_CTX *ctx_build(const sl_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    char why[256];
    int mode;
    static const unsigned char sid[] = "sluiced";

    if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key || !*cfg->tls_key) {
        snprintf(err, errlen,
                 "TLS: a TLS listener needs --tls-cert and --tls-key");
        return NULL;
    }
    if (cfg->tls_client_auth != AUTH_NONE && (!cfg->tls_ca || !*cfg->tls_ca)) {
        snprintf(err, errlen,
                 "TLS: --tls-client-auth %s needs --tls-ca (the CA that "
                 "signs client certificates)",
                 auth_names[cfg->tls_client_auth]);
        return NULL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: cannot create a context: %s",
                 sl_tls_err_reason(0, why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        snprintf(err, errlen, "TLS: cipher list refused: %s",
                 sl_tls_err_reason(0, why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(err, errlen, "TLS: cannot load the certificate %s: %s",
                 cfg->tls_cert, sl_tls_err_reason(0, why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) ==
            X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen,
                     "TLS: the private key %s does not match the "
                     "certificate %s",
                     cfg->tls_key, cfg->tls_cert);
            ERR_clear_error();
        } else
            snprintf(err, errlen, "TLS: cannot load the private key %s: %s",
                     cfg->tls_key, sl_tls_err_reason(0, why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen,
                 "TLS: the private key %s does not match the certificate "
                 "%s",
                 cfg->tls_key, cfg->tls_cert);
        ERR_clear_error();
        goto fail;
    }
    if (cfg->tls_ca && *cfg->tls_ca) {
        STACK_OF(X509_NAME) * names;
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            snprintf(err, errlen, "TLS: cannot load the CA file %s: %s",
                     cfg->tls_ca, sl_tls_err_reason(0, why, sizeof(why)));
            goto fail;
        }
        /* the CA names sent in the CertificateRequest */
        names = SSL_load_client_CA_file(cfg->tls_ca);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    mode = SSL_VERIFY_NONE;
    if (cfg->tls_client_auth == AUTH_REQUEST)
        mode = SSL_VERIFY_PEER;
    else if (cfg->tls_client_auth == AUTH_REQUIRE)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    /* resumed sessions of verified clients need an id context */
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* One INFO line about the loaded certificate; a WARN when it is expired
 * or not yet valid (clients will refuse it). */
static void log_cert(SSL_CTX *ctx, const char *what)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    char subj[256], until[64] = "?";
    const ASN1_TIME *na;
    struct tm tm;
    if (!x)
        return;
    name_of(X509_get_subject_name(x), subj, sizeof(subj));
    na = X509_get0_notAfter(x);
    if (na && ASN1_TIME_to_tm(na, &tm) == 1)
        strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
    sl_log(SL_INFO, "tls", "%s: certificate %s, valid until %s", what, subj,
           until);
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        sl_log(SL_WARN, "tls",
               "certificate %s is not valid yet: clients will refuse it", subj);
    if (X509_cmp_current_time(na) < 0)
        sl_log(SL_WARN, "tls",
               "certificate %s expired at %s: clients will refuse it", subj,
               until);
}

static void check_key_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        sl_log(SL_WARN, "tls",
               "private key %s is readable by others (mode %04o): "
               "chmod 600 it",
               path, (unsigned)(st.st_mode & 07777));
}

/* Whether the kernel offers kernel TLS (the "tls" TCP upper layer). */
static int ktls_offered(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    size_t n;
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
        if (strcmp(t, "tls") == 0)
            return 1;
    return 0;
}

int sl_tls_init(sl_broker *b, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    if (!sl_tls_wanted(b))
        return 0;
    ctx = ctx_build(&b->cfg, err, errlen);
    if (!ctx)
        return -1;
    b->tls_ctx = ctx;
    check_key_mode(b->cfg.tls_key);
    log_cert(ctx, "TLS ready");
    sl_log(SL_INFO, "tls",
           "TLS 1.2/1.3, client certificates: %s; kernel TLS %s",
           auth_names[b->cfg.tls_client_auth],
           ktls_offered() ? "offered by the kernel (not used yet)"
                          : "not offered by this kernel (records are "
                            "encrypted in user space)");
    return 0;
}

void sl_tls_reload(sl_broker *b)
{
    char err[512];
    SSL_CTX *ctx;
    if (!b->tls_ctx)
        return;
    ctx = ctx_build(&b->cfg, err, sizeof(err));
    if (!ctx) {
        sl_log(SL_ERROR, "tls",
               "SIGHUP: certificates NOT reloaded, the old ones stay in "
               "use: %s",
               err);
        return;
    }
    /* connections opened before hold a reference of their own */
    SSL_CTX_free(b->tls_ctx);
    b->tls_ctx = ctx;
    check_key_mode(b->cfg.tls_key);
    log_cert(ctx, "SIGHUP: certificates reloaded");
}

SSL *sl_tls_ssl_new(sl_broker *b)
{
    return b->tls_ctx ? SSL_new(b->tls_ctx) : NULL;
}

void sl_tls_fini(sl_broker *b)
{
    SSL_CTX_free(b->tls_ctx);
    b->tls_ctx = NULL;
}
