/*
 * stomp_session.c - a STOMP session's CONNECT, login, heart-beats and
 * DISCONNECT, and the users file.
 *
 * CONNECT picks the highest version both sides speak (accept-version;
 * none = 1.0) and refuses a second CONNECT. Once the broker has users
 * (broker/auth.c: one store for every protocol; stomp-users-file is
 * imported into it), the passcode is checked on auth.c's login threads
 * (PBKDF2 is slow on purpose): reading stops until the answer, then
 * CONNECTED or an ERROR follows, and an unknown login costs as much as a
 * wrong passcode. Without users (development mode) a CONNECT without
 * login is the anonymous user, and a login is checked the same way
 * against the one built-in user, guest/guest, from loopback only
 * (broker/auth_guest.c: RabbitMQ's default).
 *
 * Heart-beats (1.1, 1.2): we send every max(cy, heartbeat-min) if the
 * client wants them and expect one every max(cx, heartbeat-min) if it
 * offers them; a timer at half the shorter interval writes an EOL after
 * a quiet half interval and closes a connection silent for 1.5 of its
 * interval (time we did not read counts as heard).
 *
 * Once CONNECTED, the parser gets the full frame limits; before, the
 * prelogin ones (stomp.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/config.h"
#include "broker/peer_auth.h"
#include "broker/stomp.h"
#include "broker/stomp_int.h"

#define SERVER_NAME "Sluice/0.1"

static void hb_cb(evutil_socket_t fd, short what, void *arg);

int stomp_hb_parse(const char *v, int64_t *a, int64_t *b)
{
    char *end;
    long long x, y;
    if (!v)
        return 0;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || end == v || *end != ',' || x < 0)
        return -1;
    v = end + 1;
    y = strtoll(v, &end, 10);
    if (errno || end == v || *end != 0 || y < 0)
        return -1;
    *a = x;
    *b = y;
    return 0;
}

int stomp_accept_version(const char *av)
{
    char buf[128], *tok, *save = NULL;
    int best = 0;
    snprintf(buf, sizeof(buf), "%s", av);
    for (tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        int v = strcmp(tok, "1.2") == 0   ? SL_STOMP_V12
                : strcmp(tok, "1.1") == 0 ? SL_STOMP_V11
                : strcmp(tok, "1.0") == 0 ? SL_STOMP_V10
                                          : 0;
        if (v > best)
            best = v;
    }
    return best;
}

void stomp_hb_negotiate(int version, int64_t cx, int64_t cy, int64_t hmin,
                        int64_t *out, int64_t *in)
{
    *out = cy > 0 ? (cy > hmin ? cy : hmin) : 0;
    *in = cx > 0 ? (cx > hmin ? cx : hmin) : 0;
    if (version == SL_STOMP_V10)
        *out = *in = 0;
}

static void auth_done(void *arg, int ok, int admin);
static void connect_finish(stomp_conn *c, int64_t cx, int64_t cy,
                           const char *receipt);

/* A relay session's identity (relay.c sends it, stomp_relay_replace
 * compares it): absent parts stay 0 / NULL. */
static void relay_identity(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *e = sl_stomp_frame_value(f, "sluice-relay-epoch");
    const char *q = sl_stomp_frame_value(f, "sluice-relay-seq");
    const char *k = sl_stomp_frame_value(f, "sluice-relay-session");
    int ok = 0;
    int64_t v;
    v = e ? parse_i64(e, &ok) : 0;
    c->relay_epoch = ok && v > 0 ? v : 0;
    ok = 0;
    v = q ? parse_i64(q, &ok) : 0;
    c->relay_seq = ok && v > 0 ? (uint64_t)v : 0;
    free(c->relay_key);
    c->relay_key = k && *k ? strdup(k) : NULL;
}

void stomp_h_connect(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *av = sl_stomp_frame_value(f, "accept-version");
    const char *login = sl_stomp_frame_value(f, "login");
    const char *pass = sl_stomp_frame_value(f, "passcode");
    const char *cid = sl_stomp_frame_value(f, "client-id");
    int64_t cx = 0, cy = 0;
    int check = 0;
    sl_stomp_enc e;
    sl_wb *wb = &c->scratch;

    if (c->connected) {
        stomp_send_error(c, RECEIPT(f), "already connected",
                         "CONNECT or STOMP was sent twice on this connection");
        return;
    }
    c->version = SL_STOMP_V10;
    if (av) {
        int best = stomp_accept_version(av); /* highest common version */
        if (!best) {
            sl_wb_reset(wb);
            stomp_enc_begin(c, &e, wb, SL_STOMP_V10, SL_STOMP_ERROR);
            sl_stomp_enc_header_s(&e, "version", "1.0,1.1,1.2");
            sl_stomp_enc_header_s(&e, "message",
                                  "unsupported protocol version");
            sl_stomp_enc_header_s(&e, "content-type", "text/plain");
            {
                char body[160];
                int bl = snprintf(body, sizeof(body),
                                  "Supported protocol versions are 1.0, 1.1 "
                                  "and 1.2; accept-version was '%.60s'",
                                  av);
                sl_stomp_enc_header_u(&e, "content-length", (uint64_t)bl);
                sl_stomp_enc_end(&e, body, (size_t)bl);
            }
            conn_write(c, wb->p, wb->len);
            sl_log(SL_INFO, STOMP_SUBSYS,
                   "peer %s: unsupported accept-version %s", c->peer, av);
            sl_conn_close_after_reply(c->conn);
            return;
        }
        c->version = best;
    }
    if (stomp_hb_parse(sl_stomp_frame_value(f, "heart-beat"), &cx, &cy) < 0) {
        stomp_send_error(c, RECEIPT(f), "Invalid header",
                         "invalid heart-beat header: it must be two "
                         "non-negative integers in ms: cx,cy");
        return;
    }
    {
        char why[400];
        if (stomp_vhost_connect(c, sl_stomp_frame_value(f, "host"),
                                sl_stomp_frame_value(f, "sluice-relay") != NULL,
                                why, sizeof(why)) < 0) {
            /* RabbitMQ's words for a vhost it does not have */
            stomp_send_error(c, RECEIPT(f), "Bad CONNECT", why);
            return;
        }
    }
    snprintf(c->login, sizeof(c->login), "%s", login ? login : "");
    snprintf(c->client_id, sizeof(c->client_id), "%s", cid ? cid : "");
    if (sl_stomp_frame_value(f, "sluice-relay")) {
        /* another node relays its clients' /queue subscriptions on this
         * session (relay.c): served here, never relayed again */
        int ok;
        int64_t n = parse_i64(sl_stomp_frame_value(f, "sluice-relay"), &ok);
        c->relay_from = ok && n > 0 && n <= INT32_MAX ? (int32_t)n : 0;
        relay_identity(c, f);
        /* its node reads up to 128 KiB at once (relay.c's
         * RELAY_READ_BYTES): written as much at once */
        sl_conn_set_write_max(c->conn, 128 * 1024);
    }
    if (sl_stomp_frame_value(f, "sluice-relay-login") &&
        sl_peer_auth_enabled(c->s->b)) {
        /* a relay session that proves the cluster secret (peer_auth.c):
         * a broker, not subject to the users' rules (the relaying node
         * checked its client's) */
        const char *m = sl_stomp_frame_value(f, "sluice-relay-login");
        char why[300];
        int32_t node = 0;
        if (sl_peer_auth_check(c->s->b, (const uint8_t *)m, strlen(m), &node,
                               c->relay_proof, sizeof(c->relay_proof), why,
                               sizeof(why)) != SL_OK) {
            sl_peer_login_warn("relay", 0, c->peer, why);
            c->relay_proof[0] = 0;
            stomp_send_error(c, RECEIPT(f), "access refused", why);
            return;
        }
        c->relay_from = node;
        snprintf(c->login, sizeof(c->login), "(node %d)", (int)node);
        sl_auth_conn_set_user(c->conn, c->login, 1);
        connect_finish(c, cx, cy, RECEIPT(f));
        return;
    }
    if (sl_auth_enabled(c->s->b) && !(pass && *pass) &&
        sl_auth_cert_login(c->s->b, c->conn, "stomp", login)) {
        /* tls-cert-login: the verified client certificate names the user
         * (RabbitMQ's ssl_cert_login); auth.c logged the audit line */
        snprintf(c->login, sizeof(c->login), "%s", sl_auth_conn_user(c->conn));
        connect_finish(c, cx, cy, RECEIPT(f));
        return;
    }
    if (!sl_auth_enabled(c->s->b) && login && *login &&
        !sl_stomp_frame_value(f, "sluice-relay")) {
        /* the default set-up (no users): a login must be guest/guest
         * from loopback (auth_guest.c), checked below like any other;
         * no login is the anonymous user, and a relay session (which
         * carries its client's login) as before */
        char why[300];
        if (sl_auth_guest_remote(c->s->b, c->peer, login, "stomp", why,
                                 sizeof(why))) {
            stomp_send_error(c, RECEIPT(f), "access refused", why);
            return;
        }
        check = 1;
    }
    if (sl_auth_enabled(c->s->b) || check) {
        /* checked on the login threads (broker/auth.c); reading stops
         * until the answer, connect_finish or an ERROR follows */
        const char *r = RECEIPT(f);
        c->auth_cx = cx;
        c->auth_cy = cy;
        c->auth_receipt = r ? strdup(r) : NULL;
        c->auth_job = sl_auth_check_password(c->s->b, c->peer, "stomp", login,
                                             pass, auth_done, c);
        if (!c->auth_job) {
            free(c->auth_receipt);
            c->auth_receipt = NULL;
            stomp_send_error(c, r, "out of memory", NULL);
            return;
        }
        sl_conn_pause(c->conn);
        /* a slow check is the broker's doing, not the client's */
        sl_conn_handshake_wait(c->conn);
        return;
    }
    connect_finish(c, cx, cy, RECEIPT(f));
}

/* The password check of a CONNECT came back. @thread loop */
static void auth_done(void *arg, int ok, int admin)
{
    stomp_conn *c = arg;
    char *receipt = c->auth_receipt;
    c->auth_job = NULL;
    c->auth_receipt = NULL;
    if (!ok) { /* auth.c logged the audit line */
        char why[300];
        snprintf(why, sizeof(why),
                 "Access refused for user '%.64s': wrong login or "
                 "passcode%s",
                 c->login,
                 sl_auth_enabled(c->s->b)
                     ? ""
                     : " (no users are configured: only guest/guest logs "
                       "in, from loopback; a CONNECT without login is "
                       "anonymous)");
        stomp_send_error(c, receipt, "access refused", why);
    } else {
        sl_auth_conn_set_user(c->conn, c->login, admin);
        connect_finish(c, c->auth_cx, c->auth_cy, receipt);
        sl_conn_resume(c->conn); /* and handle what came after CONNECT */
    }
    free(receipt);
}

/* CONNECT accepted: heart-beats, CONNECTED, the receipt. */
static void connect_finish(stomp_conn *c, int64_t cx, int64_t cy,
                           const char *receipt)
{
    sl_stomp_enc e;
    sl_wb *wb = &c->scratch;
    char hb[48];
    int64_t period;
    const int64_t hmin = c->s->cfg->stomp_heartbeat_min_ms;
    /* a relay session replaces the older ones of its client subscription
     * (or of its node's previous process) at once */
    if (c->relay_from && stomp_relay_replace(c) < 0)
        return;
    /* Heart-beats: we send every max(cy, min) if the client wants them,
     * and expect one every max(cx, min) if it offers them. */
    stomp_hb_negotiate(c->version, cx, cy, hmin, &c->hb_out, &c->hb_in);
    c->connected = 1;
    sl_stomp_parser_set_version(&c->ps, c->version);
    /* logged in: the full limits from the next frame on */
    c->ps.lim = c->s->lim;
    sl_conn_handshake_done(c->conn);

    sl_wb_reset(wb);
    stomp_enc_begin(c, &e, wb, c->version, SL_STOMP_CONNECTED);
    sl_stomp_enc_header_s(&e, "version",
                          c->version == SL_STOMP_V12   ? "1.2"
                          : c->version == SL_STOMP_V11 ? "1.1"
                                                       : "1.0");
    sl_stomp_enc_header_s(&e, "server", SERVER_NAME);
    sl_stomp_enc_header_s(&e, "session", c->session);
    /* in 1.0 too ("0,0"), as RabbitMQ and ActiveMQ send it */
    snprintf(hb, sizeof(hb), "%" PRId64 ",%" PRId64, c->hb_out, c->hb_in);
    sl_stomp_enc_header_s(&e, "heart-beat", hb);
    if (c->relay_proof[0]) /* this broker holds the cluster secret too */
        sl_stomp_enc_header_s(&e, "sluice-relay-proof", c->relay_proof);
    if (c->relay_from) /* the relay may send cumulative ACKs (relay.c) */
        sl_stomp_enc_header_s(&e, "sluice-ack-cumulative", "true");
    sl_stomp_enc_end(&e, NULL, 0);
    conn_write(c, wb->p, wb->len);
    sl_log(SL_DEBUG, STOMP_SUBSYS,
           "peer %s session %s: connected, STOMP %d.%d login '%s' "
           "heart-beat out %" PRId64 " in %" PRId64,
           c->peer, c->session, c->version / 10, c->version % 10, c->login,
           c->hb_out, c->hb_in);
    if (c->hb_out || c->hb_in) {
        /* half the intervals: an EOL goes out once the connection was
         * quiet for half of hb_out, so no gap exceeds hb_out (ticking at
         * hb_out could leave nearly two) */
        int64_t a = c->hb_out ? c->hb_out / 2 : INT64_MAX;
        int64_t b = c->hb_in ? c->hb_in / 2 : INT64_MAX;
        struct timeval tv;
        period = a < b ? a : b;
        if (period < 1)
            period = 1;
        tv.tv_sec = period / 1000;
        tv.tv_usec = (period % 1000) * 1000;
        c->hb_ev = event_new(sl_broker_base(c->s->b), -1, EV_PERSIST, hb_cb, c);
        if (c->hb_ev)
            event_add(c->hb_ev, &tv);
    }
    /* CONNECT may carry a receipt too */
    stomp_owe_receipt(c, receipt, NULL);
}

void stomp_h_disconnect(stomp_conn *c, const sl_stomp_frame *f)
{
    /* the receipt (if asked for) after every reply owed before it, then
     * the connection closes */
    stomp_owe_receipt(c, RECEIPT(f), NULL);
    sl_conn_close_after_reply(c->conn);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    stomp_conn *c = arg;
    int64_t now = sl_now_ms();
    if (conn_closing(c))
        return;
    if (!sl_conn_reading(c->conn))
        c->last_read = now; /* not reading is our doing, not the client's */
    if (c->hb_in && now - c->last_read > c->hb_in + c->hb_in / 2) {
        sl_log(SL_INFO, STOMP_SUBSYS,
               "peer %s session %s: no heart-beat for %" PRId64
               " ms (interval %" PRId64 " ms): closing",
               c->peer, c->session, now - c->last_read, c->hb_in);
        sl_conn_abort(c->conn, "no heart-beat");
        return;
    }
    if (c->hb_out && now - c->last_write >= c->hb_out / 2 && out_len(c) == 0)
        conn_write(c, "\n", 1);
}

/* ---- users --------------------------------------------------------------- */

sl_err stomp_users_init(stomp_srv *s, char *err, size_t errlen)
{
    /* users: broker/auth.c (stomp-users-file is imported there) */
    (void)err;
    (void)errlen;
    if (!sl_auth_enabled(s->b)) {
        sl_log(SL_WARN, STOMP_SUBSYS,
               "development mode: no users; a CONNECT without login is "
               "anonymous and may do everything, a login is accepted only "
               "for guest/guest from loopback");
    }
    return SL_OK;
}

void stomp_users_fini(stomp_srv *s)
{
    (void)s;
}
