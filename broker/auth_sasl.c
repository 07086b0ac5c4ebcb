/*
 * auth_sasl.c - a connection's login: SASL (SCRAM-SHA-256, PLAIN over
 * TLS, EXTERNAL) on the binary protocol, the gate before every binary
 * request, and TLS client certificates as users (points 7 and 8 of the
 * essay in auth.c).
 * @thread loop
 */
#include "broker/auth_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/binary.h"
#include "broker/cluster_users_propose.h"
#include "broker/peer_auth.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- connections
 * --------------------------------------------------------------- */

static void ca_free(void *p)
{
    conn_auth *ca = p;
    if (!ca)
        return;
    sl_auth_job_cancel(ca->job);
    free(ca->cfb);
    free(ca->sfirst);
    free(ca->cert_why);
    free(ca);
}

static conn_auth *ca_get(sl_broker *b, sl_conn *c)
{
    conn_auth *ca = sl_conn_auth(c);
    if (ca || !b)
        return ca;
    ca = calloc(1, sizeof(*ca));
    if (!ca)
        return NULL;
    ca->b = b;
    ca->c = c;
    sl_conn_set_auth(c, ca, ca_free);
    return ca;
}

const char *sl_auth_conn_user(sl_conn *c)
{
    conn_auth *ca = sl_conn_auth(c);
    return ca && ca->authed ? ca->user : NULL;
}

int sl_auth_conn_admin(sl_conn *c)
{
    conn_auth *ca = sl_conn_auth(c);
    return ca && ca->authed && ca->admin;
}

void sl_auth_conn_set_user(sl_conn *c, const char *user, int admin)
{
    conn_auth *ca = sl_conn_auth(c);
    if (!ca) {
        ca = calloc(1, sizeof(*ca));
        if (!ca)
            return;
        ca->c = c;
        sl_conn_set_auth(c, ca, ca_free);
    }
    snprintf(ca->user, sizeof(ca->user), "%s", user);
    ca->admin = admin;
    ca->authed = 1;
}

static void mark_one(void *arg, sl_conn *c, const sl_conn_stat *st)
{
    conn_auth *ca = sl_conn_auth(c);
    (void)st;
    if (ca)
        ca->in_store = ca->authed && !ca->broker &&
                       sl_auth_user_find(arg, ca->user) != NULL;
}

void sl_auth_conns_mark(sl_broker *b)
{
    sl_conn_foreach(b, mark_one, b);
}

typedef struct gone {
    sl_broker *b;
    uint64_t *ids;
    size_t n, cap;
} gone;

static void recheck_one(void *arg, sl_conn *c, const sl_conn_stat *st)
{
    gone *g = arg;
    conn_auth *ca = sl_conn_auth(c);
    const sl_user *u;
    if (!ca || !ca->in_store)
        return;
    ca->in_store = 0;
    u = sl_auth_user_find(g->b, ca->user);
    if (u) {
        ca->admin = u->admin;
        return;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        uint64_t *ids = realloc(g->ids, cap * sizeof(*ids));
        if (!ids)
            return;
        g->ids = ids;
        g->cap = cap;
    }
    g->ids[g->n++] = st->id;
}

void sl_auth_conns_recheck(sl_broker *b)
{
    gone g = {b, NULL, 0, 0};
    sl_conn_foreach(b, recheck_one, &g);
    /* closed after the walk: a close unlinks the connection. Replies
     * already asked for are still sent (the user's own `user delete`
     * gets its answer); nothing more is read or delivered */
    for (size_t i = 0; i < g.n; i++) {
        sl_conn *c = sl_conn_find(b, g.ids[i]);
        conn_auth *ca = c ? sl_conn_auth(c) : NULL;
        if (!ca)
            continue;
        sl_auth_audit("closing connection %llu from %s: user '%s' was "
                      "deleted",
                      (unsigned long long)g.ids[i], sl_conn_peer(c), ca->user);
        sl_conn_close_after_reply(c);
    }
    free(g.ids);
}

/* ---- TLS client certificates as users
 * ------------------------------------------ */

/* The user name c's verified client certificate gives (tls-cert-login),
 * or NULL. */
static const char *cert_name(const sl_broker *b, const sl_conn *c)
{
    if (!sl_conn_tls_subject(c))
        return NULL; /* no certificate, or it did not verify */
    switch (b->cfg.tls_cert_login) {
    case CERT_LOGIN_CN:
        return sl_conn_tls_cn(c);
    case CERT_LOGIN_SAN:
        return sl_conn_tls_san(c);
    default:
        return NULL;
    }
}

/* Log c in as the user its certificate names: 1 on success (audit line),
 * 0 when it names nobody; -1 when it names a user who cannot log in
 * (no such user, or not a user name: audit line, why filled). */
static int cert_login_now(sl_broker *b, conn_auth *ca, const char *proto,
                          const char *mech, char *why, size_t whylen)
{
    const char *name = cert_name(b, ca->c);
    const sl_user *u;
    char extra[300];
    if (!name)
        return 0;
    u = sl_user_name_ok(name, strlen(name)) ? sl_auth_user_find(b, name) : NULL;
    if (!u) {
        snprintf(why, whylen,
                 "AUTHENTICATION_FAILED: the TLS client certificate (%.160s) "
                 "names user '%.64s', who %s",
                 sl_conn_tls_subject(ca->c), name,
                 sl_user_name_ok(name, strlen(name))
                     ? "does not exist"
                     : "cannot be a user (1..64 of A-Z a-z 0-9 . _ @ -)");
        if (auth_audit_take(auth_of(b), 0))
            sl_auth_audit("authentication failed: TLS client certificate of "
                          "%s over %s (%s) names user '%.64s' [no such "
                          "user]",
                          sl_conn_peer(ca->c), proto,
                          sl_conn_tls_subject(ca->c), name);
        return -1;
    }
    snprintf(ca->user, sizeof(ca->user), "%s", u->name);
    ca->u = *u;
    ca->admin = u->admin;
    ca->authed = 1;
    ca->via_cert = 1;
    sl_conn_handshake_done(ca->c);
    snprintf(extra, sizeof(extra), ", TLS client certificate %.200s",
             sl_conn_tls_subject(ca->c));
    auth_audit_login_ok(auth_of(b), ca->user, sl_conn_peer(ca->c), proto, mech,
                        extra);
    return 1;
}

int sl_auth_cert_login(sl_broker *b, sl_conn *c, const char *proto,
                       const char *login)
{
    conn_auth *ca;
    const char *name;
    char why[400];
    if (!sl_auth_enabled(b) || b->cfg.tls_cert_login == CERT_LOGIN_NONE ||
        !(name = cert_name(b, c)))
        return 0;
    if (login && login[0] && strcmp(login, name) != 0)
        return 0; /* asks for another user: a password login */
    ca = ca_get(b, c);
    if (!ca)
        return 0;
    if (ca->authed)
        return ca->via_cert;
    return cert_login_now(b, ca, proto, "certificate", why, sizeof(why)) > 0;
}

/* Binary: before the first request, once per connection. */
static void cert_login_implicit(sl_broker *b, sl_conn *c)
{
    conn_auth *ca;
    char why[400];
    if (!sl_auth_enabled(b) || b->cfg.tls_cert_login == CERT_LOGIN_NONE ||
        !cert_name(b, c))
        return;
    ca = ca_get(b, c);
    if (!ca || ca->authed || ca->cert_tried || ca->mech != MECH_NONE)
        return;
    ca->cert_tried = 1;
    if (cert_login_now(b, ca, "binary", "certificate", why, sizeof(why)) < 0) {
        sl_conn_warn(c, "certificate", "%s", why);
        free(ca->cert_why);
        ca->cert_why = strdup(why);
    }
}

void sl_auth_bin_open(sl_broker *b, sl_conn *c)
{
    if (sl_auth_enabled(b))
        sl_conn_handshake_begin(c, PRELOGIN_INPUT);
}

uint32_t sl_auth_frame_limit(sl_broker *b, sl_conn *c)
{
    if (sl_auth_enabled(b) && !sl_auth_conn_user(c))
        cert_login_implicit(b, c);
    if (sl_auth_enabled(b) && !sl_auth_conn_user(c) &&
        (uint64_t)b->cfg.max_frame_bytes > PRELOGIN_FRAME)
        return PRELOGIN_FRAME;
    return (uint32_t)b->cfg.max_frame_bytes;
}

/* ---- SASL on the binary protocol
 * ------------------------------------------------ */

static void sasl_fail(conn_auth *ca, sl_reply *r, sl_err err, const char *msg)
{
    sl_reply_error(r, err, msg);
    /* A failed login ends the connection (Kafka does the same): a new
     * attempt starts from a new handshake, slowed down per address. */
    sl_conn_close_after_reply(ca->c);
    ca->mech = MECH_NONE;
    ca->step = 0;
}

static void h_sasl_handshake(sl_broker *b, sl_conn *c, const sl_req *req,
                             sl_reply *r)
{
    sl_sasl_handshake_req q;
    sl_sasl_handshake_resp s;
    sl_str mechs[3];
    sl_wb wb;
    conn_auth *ca = ca_get(b, c);
    char msg[200];
    int tls = sl_conn_is_tls(c);

    if (!ca) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    if (sl_sasl_handshake_req_decode(req->body, req->len, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "SASL_HANDSHAKE: malformed body");
        sl_conn_close_after_reply(c);
        return;
    }
    memset(&s, 0, sizeof(s));
    mechs[0] = SL_STR_LIT(SL_SCRAM_MECH);
    mechs[1] = SL_STR_LIT("PLAIN");
    mechs[2] = SL_STR_LIT("EXTERNAL");
    s.mechanisms = mechs;
    s.nmechanisms = tls ? 2 : 1;
    if (tls && b->cfg.tls_cert_login != CERT_LOGIN_NONE && cert_name(b, c))
        s.nmechanisms = 3;
    if (ca->authed && ca->via_cert) {
        /* logged in by the certificate: a SASL login starts over (and
         * nothing runs as the certificate's user meanwhile) */
        ca->authed = 0;
        ca->via_cert = 0;
        ca->admin = 0;
    }
    ca->cert_tried = 1;
    if (ca->authed) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "SASL_HANDSHAKE: this connection is logged in already");
        return;
    }
    if (sl_str_eq(q.mechanism, SL_SCRAM_MECH)) {
        ca->mech = MECH_SCRAM;
    } else if (sl_str_eq(q.mechanism, "PLAIN") && tls) {
        ca->mech = MECH_PLAIN;
    } else if (sl_str_eq(q.mechanism, "EXTERNAL") && s.nmechanisms == 3) {
        ca->mech = MECH_EXTERNAL;
    } else if (sl_str_eq(q.mechanism, SL_PEER_MECH) &&
               sl_peer_auth_enabled(b)) {
        ca->mech = MECH_BROKER; /* not listed: brokers know it */
    } else {
        snprintf(msg, sizeof(msg),
                 "SASL mechanism '%.*s' is not enabled on this connection "
                 "(enabled: %s%s%s)",
                 (int)(q.mechanism.len > 32 ? 32 : q.mechanism.len),
                 q.mechanism.p, SL_SCRAM_MECH,
                 tls ? ", PLAIN" : "; PLAIN only over TLS",
                 s.nmechanisms == 3 ? ", EXTERNAL"
                                    : "; EXTERNAL only with a verified TLS "
                                      "client certificate and tls-cert-login");
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, msg);
        return;
    }
    ca->step = 0;
    sl_wb_init(&wb, 64);
    if (sl_sasl_handshake_resp_encode(&wb, req->correlation_id, &s) == SL_OK &&
        sl_reply_add(r, wb.p, wb.len) == SL_OK)
        sl_reply_done(r);
    else
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
    sl_wb_fini(&wb);
}

static void auth_reply(sl_reply *r, uint32_t corr, const void *data, size_t len,
                       int complete)
{
    sl_sasl_auth_resp s;
    sl_wb wb;
    memset(&s, 0, sizeof(s));
    s.data = data;
    s.len = len;
    s.complete = (uint8_t)complete;
    sl_wb_init(&wb, len + 32);
    if (sl_sasl_auth_resp_encode(&wb, corr, &s) == SL_OK &&
        sl_reply_add(r, wb.p, wb.len) == SL_OK)
        sl_reply_done(r);
    else
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
    sl_wb_fini(&wb);
}

/* (the audit line of a checked login is auth_done_cb's) */
static void login_ok(conn_auth *ca, const char *mech)
{
    (void)mech;
    ca->authed = 1;
    ca->via_cert = 0;
    ca->admin = ca->u.admin;
    sl_conn_handshake_done(ca->c);
}

static void login_refused(conn_auth *ca, sl_reply *r)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "AUTHENTICATION_FAILED: authentication failed for user '%s' "
             "(wrong user name or password)",
             ca->user);
    sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, msg);
}

/* The default set-up's guest asked for from another address
 * (auth_guest.c): refused with a message saying why. */
static int guest_remote(conn_auth *ca, sl_reply *r, const char *mech)
{
    char why[300], msg[360];
    if (!sl_auth_guest_remote(ca->b, sl_conn_peer(ca->c), ca->user, "binary",
                              why, sizeof(why)))
        return 0;
    snprintf(msg, sizeof(msg), "AUTHENTICATION_FAILED: %s: %s", mech, why);
    sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, msg);
    return 1;
}

static void reply_cancelled(void *arg)
{
    conn_auth *ca = arg;
    sl_auth_job_cancel(ca->job);
    ca->job = NULL;
    ca->r = NULL;
}

/* A login job finished: its reply, taken back from the connection, which
 * reads again. */
static sl_reply *job_done(conn_auth *ca)
{
    sl_reply *r = ca->r;
    ca->job = NULL;
    ca->r = NULL;
    sl_reply_set_cancel(r, NULL, NULL);
    sl_conn_resume(ca->c);
    return r;
}

static void scram_fin(sl_auth_job *j)
{
    conn_auth *ca = j->arg;
    sl_reply *r = job_done(ca);
    char v[80], b64[64];
    if (!j->ok) {
        login_refused(ca, r);
        return;
    }
    sl_b64_encode(j->server_sig, SL_SCRAM_KEY_LEN, b64, sizeof(b64));
    snprintf(v, sizeof(v), "v=%s", b64);
    login_ok(ca, SL_SCRAM_MECH);
    auth_reply(r, ca->corr, v, strlen(v), 1);
}

static void plain_fin(sl_auth_job *j)
{
    conn_auth *ca = j->arg;
    sl_reply *r = job_done(ca);
    if (!j->ok) {
        login_refused(ca, r);
        return;
    }
    ca->u.admin = j->u.admin;
    login_ok(ca, "PLAIN");
    auth_reply(r, ca->corr, NULL, 0, 1);
}

/* Hand j to the threads; r is answered by its fin. */
static void park(conn_auth *ca, sl_auth_job *j, sl_reply *r, uint32_t corr)
{
    ca->job = j;
    ca->r = r;
    ca->corr = corr;
    j->arg = ca;
    sl_reply_set_cancel(r, reply_cancelled, ca);
    sl_conn_pause(ca->c); /* requests behind it wait for the answer */
    sl_conn_handshake_wait(ca->c);
    auth_job_submit(auth_of(ca->b), j);
}

/* The server-first-message: the user's salt and iterations (a made-up
 * user's when there is none, so that the answer does not say which names
 * exist). */
static void scram_first_reply(conn_auth *ca, sl_reply *r, uint32_t corr)
{
    char salt64[100], out[400];
    const sl_user *u;
    u = auth_login_user(auth_of(ca->b), ca->user, sl_conn_peer(ca->c));
    if (u) {
        ca->u = *u;
        ca->known = 1;
    } else {
        auth_fake_user(auth_of(ca->b), ca->user, &ca->u);
        ca->known = 0;
    }
    sl_b64_encode(ca->u.salt, ca->u.saltlen, salt64, sizeof(salt64));
    snprintf(out, sizeof(out), "r=%s,s=%s,i=%u", ca->nonce, salt64,
             (unsigned)ca->u.iter);
    free(ca->sfirst);
    ca->sfirst = strdup(out);
    if (!ca->cfb || !ca->sfirst) {
        sasl_fail(ca, r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    ca->step = 1;
    auth_reply(r, corr, out, strlen(out), 0);
}

/* A cluster: the salt is sent once this node's copy of the users holds
 * every change answered before (auth_check.c, read barriers). */
static void scram_first_fin(sl_auth_job *j)
{
    conn_auth *ca = j->arg;
    sl_reply *r = job_done(ca);
    scram_first_reply(ca, r, ca->corr);
}

static void scram_first(conn_auth *ca, const char *m, size_t len, sl_reply *r,
                        uint32_t corr)
{
    const char *bare, *val;
    size_t vlen;
    char snonce[32];
    /* gs2 header: "n,," (no channel binding, no authzid) */
    if (len < 3 || memcmp(m, "n,,", 3) != 0) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SCRAM: client-first-message must start with 'n,,' "
                  "(channel binding and authzid are not supported)");
        return;
    }
    bare = m + 3;
    if (!sl_scram_attr(bare, len - 3, 'n', &val, &vlen) ||
        !sl_user_name_ok(val, vlen)) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SCRAM: client-first-message needs n=USER (1..64 of "
                  "A-Z a-z 0-9 . _ @ -)");
        return;
    }
    memcpy(ca->user, val, vlen);
    ca->user[vlen] = 0;
    if (guest_remote(ca, r, SL_SCRAM_MECH))
        return;
    if (!sl_scram_attr(bare, len - 3, 'r', &val, &vlen) || vlen < 8 ||
        vlen > 64) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SCRAM: client-first-message needs r=NONCE (8..64 "
                  "characters)");
        return;
    }
    for (size_t i = 0; i < vlen; i++)
        if (val[i] < 0x21 || val[i] > 0x7e || val[i] == ',') {
            sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                      "SCRAM: the client nonce must be printable");
            return;
        }
    if (sl_scram_nonce(snonce) != SL_OK) {
        sasl_fail(ca, r, SL_ERR_UNKNOWN, "cannot make a nonce");
        return;
    }
    snprintf(ca->nonce, sizeof(ca->nonce), "%.*s%s", (int)vlen, val, snonce);
    free(ca->cfb);
    ca->cfb = strndup(bare, len - 3);
    if (sl_cluster_users_read_needed(ca->b)) {
        sl_auth_job *j =
            auth_job_new(auth_of(ca->b), JOB_LOOKUP, sl_conn_peer(ca->c),
                         "binary", SL_SCRAM_MECH, ca->user);
        if (j) {
            ca->job = j;
            ca->r = r;
            ca->corr = corr;
            j->arg = ca;
            j->fin = scram_first_fin;
            sl_reply_set_cancel(r, reply_cancelled, ca);
            sl_conn_pause(ca->c); /* requests behind it wait */
            auth_job_submit(auth_of(ca->b), j);
            return;
        }
    }
    scram_first_reply(ca, r, corr);
}

static void scram_final(conn_auth *ca, const char *m, size_t len, sl_reply *r,
                        uint32_t corr, const char *peer)
{
    const char *val, *pp;
    size_t vlen, wo;
    sl_auth_job *j;
    int n;
    if (!sl_scram_attr(m, len, 'r', &val, &vlen) || vlen != strlen(ca->nonce) ||
        memcmp(val, ca->nonce, vlen) != 0 ||
        !sl_scram_attr(m, len, 'c', &val, &vlen) ||
        !(vlen == 4 && !memcmp(val, "biws", 4)) || len < 3) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SCRAM: client-final-message needs c=biws and the "
                  "combined nonce");
        return;
    }
    /* the proof is the last attribute: ",p=..." */
    pp = NULL;
    for (size_t i = len; i-- > 2;)
        if (m[i - 2] == ',' && m[i - 1] == 'p' && m[i] == '=') {
            pp = m + i - 2;
            break;
        }
    if (!pp) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SCRAM: client-final-message has no proof (p=)");
        return;
    }
    wo = (size_t)(pp - m);
    j = auth_job_new(auth_of(ca->b), JOB_SCRAM, peer, "binary", SL_SCRAM_MECH,
                     ca->user);
    if (!j) {
        sasl_fail(ca, r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    n = sl_b64_decode(pp + 3, len - wo - 3, j->proof, sizeof(j->proof));
    if (n != SL_SCRAM_KEY_LEN)
        memset(j->proof, 0, sizeof(j->proof)); /* fails like a bad one */
    j->u = ca->u; /* the credentials the salt was sent for */
    j->known = ca->known;
    if (asprintf(&j->authmsg, "%s,%s,%.*s", ca->cfb, ca->sfirst, (int)wo, m) <
        0) {
        j->authmsg = NULL;
        auth_job_free(j);
        sasl_fail(ca, r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    j->fin = scram_fin;
    ca->step = 2;
    park(ca, j, r, corr);
}

static void plain_auth(conn_auth *ca, const uint8_t *m, size_t len, sl_reply *r,
                       uint32_t corr, const char *peer)
{
    /* [authzid] NUL authcid NUL passwd (RFC 4616) */
    const uint8_t *z1 = memchr(m, 0, len), *z2;
    char pw[1025];
    size_t ulen, plen;
    sl_auth_job *j;
    z2 = z1 ? memchr(z1 + 1, 0, len - (size_t)(z1 + 1 - m)) : NULL;
    if (!z1 || !z2) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "PLAIN: expected authzid NUL user NUL password");
        return;
    }
    ulen = (size_t)(z2 - z1 - 1);
    plen = len - (size_t)(z2 + 1 - m);
    if (!sl_user_name_ok((const char *)z1 + 1, ulen) || plen >= sizeof(pw)) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "PLAIN: bad user name or password length");
        return;
    }
    memcpy(ca->user, z1 + 1, ulen);
    ca->user[ulen] = 0;
    if (guest_remote(ca, r, "PLAIN"))
        return;
    memcpy(pw, z2 + 1, plen);
    pw[plen] = 0;
    j = auth_job_new(auth_of(ca->b), JOB_PASSWORD, peer, "binary", "PLAIN",
                     ca->user);
    if (j)
        j->password = strdup(pw);
    memset(pw, 0, sizeof(pw));
    if (!j || !j->password) {
        auth_job_free(j);
        sasl_fail(ca, r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    j->fin = plain_fin;
    park(ca, j, r, corr);
}

/* SASL EXTERNAL (RFC 4422 appendix A): the message is the authorization
 * identity, empty or the certificate's user. */
static void external_auth(conn_auth *ca, const uint8_t *m, size_t len,
                          sl_reply *r, uint32_t corr)
{
    const char *name = cert_name(ca->b, ca->c);
    char why[400];
    if (!name) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "EXTERNAL: no verified TLS client certificate");
        return;
    }
    if (len && (len != strlen(name) || memcmp(m, name, len) != 0)) {
        snprintf(why, sizeof(why),
                 "EXTERNAL: the TLS client certificate names user '%.64s', "
                 "not '%.*s'",
                 name, (int)(len > 64 ? 64 : len), (const char *)m);
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, why);
        return;
    }
    if (cert_login_now(ca->b, ca, "binary", "EXTERNAL", why, sizeof(why)) <=
        0) {
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, why);
        return;
    }
    ca->mech = MECH_NONE;
    auth_reply(r, corr, NULL, 0, 1);
}

/* SLUICE-BROKER (peer_auth.c): another broker of the cluster. Checked
 * here on the loop (two HMACs), so the request behind it runs logged in. */
static void broker_auth(conn_auth *ca, const uint8_t *m, size_t len,
                        sl_reply *r, uint32_t corr)
{
    char why[300], reply[80], msg[400];
    int32_t node = 0;
    if (sl_peer_auth_check(ca->b, m, len, &node, reply, sizeof(reply), why,
                           sizeof(why)) != SL_OK) {
        if (auth_audit_take(auth_of(ca->b), 0))
            sl_auth_audit("authentication failed: broker login from %s: %s",
                          sl_conn_peer(ca->c), why);
        snprintf(msg, sizeof(msg), "AUTHENTICATION_FAILED: %s", why);
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED, msg);
        return;
    }
    snprintf(ca->user, sizeof(ca->user), "(node %d)", (int)node);
    ca->broker = node;
    ca->authed = 1;
    ca->admin = 1;
    ca->mech = MECH_NONE;
    sl_conn_handshake_done(ca->c);
    sl_log(SL_DEBUG, "auth", "broker login: node %d from %s", (int)node,
           sl_conn_peer(ca->c));
    auth_reply(r, corr, reply, strlen(reply), 1);
}

static void h_sasl_authenticate(sl_broker *b, sl_conn *c, const sl_req *req,
                                sl_reply *r)
{
    sl_sasl_auth_req q;
    conn_auth *ca = ca_get(b, c);
    if (!ca) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    if (sl_sasl_auth_req_decode(req->body, req->len, &q) != SL_OK) {
        sasl_fail(ca, r, SL_ERR_MALFORMED, "SASL_AUTHENTICATE: malformed body");
        return;
    }
    if (ca->authed) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "SASL_AUTHENTICATE: this connection is logged in "
                       "already");
        return;
    }
    if (ca->mech == MECH_SCRAM && ca->step == 0)
        scram_first(ca, (const char *)q.data, q.len, r, req->correlation_id);
    else if (ca->mech == MECH_SCRAM && ca->step == 1)
        scram_final(ca, (const char *)q.data, q.len, r, req->correlation_id,
                    req->peer);
    else if (ca->mech == MECH_PLAIN)
        plain_auth(ca, q.data, q.len, r, req->correlation_id, req->peer);
    else if (ca->mech == MECH_EXTERNAL)
        external_auth(ca, q.data, q.len, r, req->correlation_id);
    else if (ca->mech == MECH_BROKER)
        broker_auth(ca, q.data, q.len, r, req->correlation_id);
    else
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SASL_AUTHENTICATE before SASL_HANDSHAKE");
}

/* Replica fetches (FETCH version 2) and CLUSTER_FORWARD are for the
 * brokers of the cluster: once a cluster secret is set or users exist,
 * only a connection logged in with the secret may send them. 1 (msg
 * filled) when req is one and c is not such a connection. */
static int broker_only(sl_broker *b, sl_conn *c, const sl_req *req, char *msg,
                       size_t msglen)
{
    conn_auth *ca;
    int fetch = req->api_key == SL_API_FETCH && req->api_version >= 2;
    if (!fetch && req->api_key != SL_API_CLUSTER_FORWARD)
        return 0;
    if (!sl_peer_auth_enabled(b) && !sl_auth_enabled(b))
        return 0; /* a cluster without a secret: as before (a WARN at start) */
    ca = sl_conn_auth(c);
    if (ca && ca->authed && ca->broker)
        return 0;
    snprintf(msg, msglen,
             "AUTHORIZATION_FAILED: %s is for the brokers of the cluster "
             "only; this connection did not log in with the cluster "
             "secret (SASL %s)",
             fetch ? "a replica fetch (FETCH version 2, a replica id)"
                   : "CLUSTER_FORWARD",
             SL_PEER_MECH);
    return 1;
}

int sl_auth_binary_gate(sl_broker *b, sl_conn *c, const sl_req *req,
                        sl_reply *r)
{
    char msg[256];
    const char *user;
    uint16_t k = req->api_key;
    if (k == SL_API_HANDSHAKE || k == SL_API_SASL_HANDSHAKE ||
        k == SL_API_SASL_AUTHENTICATE)
        return 1;
    if (broker_only(b, c, req, msg, sizeof(msg))) {
        sl_conn_warn(c, "not-a-broker", "%s", msg);
        sl_reply_error(r, SL_ERR_AUTHORIZATION_FAILED, msg);
        return 0;
    }
    user = sl_auth_conn_user(c);
    if (!user && sl_auth_enabled(b)) {
        cert_login_implicit(b, c);
        user = sl_auth_conn_user(c);
    }
    if (!user && sl_auth_enabled(b)) {
        conn_auth *ca = sl_conn_auth(c);
        if (ca && ca->cert_why)
            snprintf(msg, sizeof(msg), "%s refused: %s", sl_api_name(k),
                     ca->cert_why);
        else
            snprintf(msg, sizeof(msg),
                     "AUTHENTICATION_FAILED: %s refused: log in first "
                     "(SASL_HANDSHAKE and SASL_AUTHENTICATE; sluice --user, "
                     "SLUICE_USER and SLUICE_PASSWORD)",
                     sl_api_name(k));
        sl_conn_warn(c, "unauthenticated", "%s", msg);
        sl_reply_error(r, SL_ERR_AUTHENTICATION_FAILED, msg);
        sl_conn_close_after_reply(c);
        return 0;
    }
    if (sl_acl_check_request(b, c, req, msg, sizeof(msg)) != SL_OK) {
        sl_reply_error(r, SL_ERR_AUTHORIZATION_FAILED, msg);
        return 0;
    }
    return 1;
}

void auth_sasl_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_SASL_HANDSHAKE, 1, 1, h_sasl_handshake);
    sl_binary_register(b, SL_API_SASL_AUTHENTICATE, 1, 1, h_sasl_authenticate);
}
