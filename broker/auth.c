/*
 * auth.c - users, logins and their checks (issue 16).
 *
 * Design
 * ------
 *  1. One user store. Users live in DATA/meta.db (table users: name, salt,
 *     iterations, StoredKey, ServerKey, admin) beside the topics, on a
 *     connection of our own (WAL; writes are rare admin changes, made on
 *     the loop as topic.c makes its own). The password itself is never
 *     stored: only SCRAM-SHA-256's keys (protocol/scram.h). The binary
 *     protocol logs in with SCRAM (two HMACs for the broker) or PLAIN over
 *     TLS; STOMP and HTTP send a password, checked by running the PBKDF2
 *     and comparing StoredKeys. A stomp-users-file (pbkdf2-sha256$I$S$H)
 *     is imported at start: its hash is SCRAM's SaltedPassword.
 *  2. On or off. Authentication is on once a user exists. Off, everyone is
 *     the anonymous user with every right; that is allowed only while
 *     every listener is on loopback, or with --allow-anonymous (checked at
 *     start, one line naming the listener).
 *  3. Checks off the loop. A PBKDF2 costs milliseconds to seconds (the
 *     iteration count is the user's); run on the loop, 40 logins in
 *     flight stalled every client for seconds. Every check is a job for
 *     AUTH_THREADS worker threads; its answer comes back through an event
 *     (done_cb). A job cancelled before it starts is not computed. The
 *     queue is fair: a check whose key (address and user name, see 5) has
 *     nothing else in flight goes before the backlog of keys that do, so
 *     a flood of logins from one place does not delay the others.
 *  4. Unknown users cost the same. A login for a name that does not exist
 *     runs the same work against a salt derived from a per-process secret
 *     and the name (stable, so it cannot be told apart by asking twice),
 *     and fails with the same error as a wrong password.
 *  5. Slow-down per address. Each failure for a user name from a client
 *     address (the IP, not the port) counts; from the third on, the next
 *     check of that name from that address waits login-failure-delay-ms,
 *     doubled per failure up to 10 s, and such checks run one per delay
 *     (parallel connections do not help). Keyed by address and name, so
 *     that one guesser does not lock out the other users behind the same
 *     address (NAT, a shared host). The count is forgotten after 5 minutes
 *     without a failure. The table holds ADDR_SLOTS keys (the stalest is
 *     replaced).
 *  6. Audit. One line per login (user, peer, protocol, mechanism; a
 *     failure also names the delay now in force) and per change to users
 *     and rules (who, from where, what), subsystem "audit". Login lines
 *     are bounded: per address and user name, the first AUDIT_KEY_LINES
 *     failures, then one line per AUDIT_KEY_EVERY_MS with the count of the
 *     rest; HTTP (a login per request) one success line per address and
 *     user per AUDIT_HTTP_OK_EVERY_MS; and in all a token bucket
 *     (AUDIT_BURST lines, AUDIT_PER_S a second), whatever it drops summed
 *     up in one line AUDIT_SUMMARY_MS later. Changes are never dropped.
 *  8. Certificates as users (tls-cert-login cn|san): a TLS connection
 *     whose client certificate verified logs in as the user its common
 *     name (or first DNS/email subjectAltName) names, if that user
 *     exists, without a password (RabbitMQ's EXTERNAL, Kafka's SSL
 *     principal). Binary: implicitly before its first request, or
 *     explicitly with SASL EXTERNAL; a SASL handshake on such a connection
 *     drops the certificate's login and starts over. STOMP: a CONNECT
 *     without login and passcode (or whose login is that user).
 *  7. Before login. A binary connection may send only HANDSHAKE and the
 *     SASL requests, frames of at most PRELOGIN_FRAME bytes, and must log
 *     in within handshake-timeout-ms (conn.c's handshake timer); anything
 *     else is answered AUTHENTICATION_FAILED and the connection closed.
 * @thread loop unless tagged
 */
#include "broker/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "broker/acl.h"
#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/json.h"
#include "broker/stomp_auth.h"
#include "protocol/api.h"
#include "protocol/log.h"

#define AUTH_THREADS 2
#define ADDR_SLOTS 256
#define FAIL_FORGET_MS (5 * 60 * 1000)
#define DELAY_MAX_MS 10000
#define PRELOGIN_FRAME (16u * 1024)
#define PRELOGIN_INPUT (64u * 1024)
#define AUDIT_KEY_LINES 10
#define AUDIT_KEY_EVERY_MS 10000
#define AUDIT_HTTP_OK_EVERY_MS (10 * 60 * 1000)
#define AUDIT_BURST 200
#define AUDIT_PER_S 2
#define AUDIT_SUMMARY_MS 10000

enum { JOB_PASSWORD = 1, JOB_SCRAM = 2 };
enum { MECH_NONE = 0, MECH_SCRAM, MECH_PLAIN, MECH_EXTERNAL };
enum { CERT_LOGIN_NONE = 0, CERT_LOGIN_CN, CERT_LOGIN_SAN };

typedef struct addr_ent {
    char addr[140]; /* "ADDRESS/USER" */
    int fails;
    int64_t last_fail_ms;
    int64_t next_ms;    /* the next check from here starts no earlier */
    int inflight;       /* checks queued or running for this key */
    int64_t line_ms;    /* last failure line of this key */
    int unlogged;       /* failures since that were not logged */
    int64_t ok_line_ms; /* last success line (HTTP) */
} addr_ent;

struct sl_auth_job {
    sl_auth_job *next;
    sl_auth *a;
    int kind;
    char addr[64], user[65], proto[16], mech[16];
    char peer[72]; /* address:port, for the success line */
    /* inputs */
    char *password;
    sl_user u; /* the user's credentials (or the fake ones) */
    int known;
    char *authmsg;
    uint8_t proof[SL_SCRAM_KEY_LEN];
    /* outputs */
    int ok;
    uint8_t server_sig[SL_SCRAM_KEY_LEN];
    /* loop side */
    int cancelled;
    int queued;
    struct event *delay_ev;
    void (*fin)(sl_auth_job *j);
    sl_auth_done_fn done;
    void *arg;
};

struct sl_auth {
    sl_broker *b;
    sqlite3 *db;
    sl_user *users;
    size_t nusers;
    uint8_t secret[32];
    /* the check threads */
    pthread_t th[AUTH_THREADS];
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* guarded by mu: checks of keys with nothing else in flight first,
     * then the backlog of keys that already have one (a flood of logins
     * from one address and name does not delay everyone else's) */
    sl_auth_job *todo, *todo_tail;
    sl_auth_job *todo_lo, *todo_lo_tail;
    sl_auth_job *done; /* guarded by mu */
    int stop;          /* guarded by mu */
    struct event *done_ev;
    sl_auth_job *delayed; /* waiting for their time (loop only) */
    addr_ent addrs[ADDR_SLOTS];
    uint64_t failures; /* /metrics some day */
    /* audit lines of logins: token bucket (thousandths), dropped counts */
    int64_t tok_milli, tok_at;
    long sup_ok, sup_fail;
    struct event *sup_ev;
};

/* Per connection (sl_conn_set_auth). */
typedef struct conn_auth {
    sl_broker *b;
    sl_conn *c;
    char user[65];
    int authed, admin;
    int via_cert;   /* logged in by its TLS client certificate */
    int cert_tried; /* that was looked at (once per connection) */
    char *cert_why; /* why the certificate did not log it in */
    int mech, step;
    char *cfb;    /* SCRAM client-first-bare */
    char *sfirst; /* SCRAM server-first */
    char nonce[128];
    sl_user u;
    int known;
    sl_auth_job *job;
    sl_reply *r;
    uint32_t corr;
} conn_auth;

/* ---- helpers ---------------------------------------------------------------
 */

void sl_auth_audit(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sl_log(SL_INFO, "audit", "%s", line);
}

static sl_auth *A(const sl_broker *b)
{
    return b->auth;
}

static void audit_summary_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_auth *a = arg;
    (void)fd;
    (void)what;
    if (a->sup_ok || a->sup_fail)
        sl_auth_audit("%ld successful and %ld failed login(s) not logged in "
                      "the last %d s (login lines are limited to %d at once "
                      "and %d a second)",
                      a->sup_ok, a->sup_fail, AUDIT_SUMMARY_MS / 1000,
                      AUDIT_BURST, AUDIT_PER_S);
    a->sup_ok = a->sup_fail = 0;
}

/* May a login line go out now? Else it is counted for the summary. */
static int audit_take(sl_auth *a, int ok)
{
    int64_t now = sl_now_ms();
    a->tok_milli += (now - a->tok_at) * AUDIT_PER_S;
    if (a->tok_milli > (int64_t)AUDIT_BURST * 1000)
        a->tok_milli = (int64_t)AUDIT_BURST * 1000;
    a->tok_at = now;
    if (a->tok_milli >= 1000) {
        a->tok_milli -= 1000;
        return 1;
    }
    if (ok)
        a->sup_ok++;
    else
        a->sup_fail++;
    if (a->sup_ev && !evtimer_pending(a->sup_ev, NULL)) {
        struct timeval tv = {AUDIT_SUMMARY_MS / 1000, 0};
        evtimer_add(a->sup_ev, &tv);
    }
    return 0;
}

/* The line of a successful login. peer: address:port. */
static void audit_login_ok(sl_auth *a, const char *user, const char *peer,
                           const char *proto, const char *mech,
                           const char *extra)
{
    if (audit_take(a, 1))
        sl_auth_audit("authentication succeeded: user '%s' from %s over %s "
                      "(%s)%s",
                      user, peer ? peer : "?", proto, mech, extra ? extra : "");
}

int sl_auth_enabled(const sl_broker *b)
{
    return b->auth && b->auth->nusers > 0;
}

const sl_user *sl_auth_user_find(const sl_broker *b, const char *name)
{
    sl_auth *a = A(b);
    if (!a || !name)
        return NULL;
    for (size_t i = 0; i < a->nusers; i++)
        if (!strcmp(a->users[i].name, name))
            return &a->users[i];
    return NULL;
}

/* "IP:PORT" -> "IP" */
static void peer_addr(const char *peer, char *out, size_t n)
{
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    size_t len = colon ? (size_t)(colon - peer) : (peer ? strlen(peer) : 0);
    if (len >= n)
        len = n - 1;
    if (peer)
        memcpy(out, peer, len);
    out[len] = 0;
}

/* Credentials for a user that does not exist: the same work, a certain
 * failure (the StoredKey is random), a salt stable for the name. */
static void fake_user(sl_auth *a, const char *name, sl_user *u)
{
    uint8_t h[SL_SCRAM_KEY_LEN];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    sl_scram_hmac(a->secret, sizeof(a->secret), name, strlen(name), h);
    memcpy(u->salt, h, SL_SCRAM_SALT_LEN);
    u->saltlen = SL_SCRAM_SALT_LEN;
    u->iter = SL_SCRAM_DEFAULT_ITER;
    sl_scram_random(u->stored_key, sizeof(u->stored_key));
    sl_scram_random(u->server_key, sizeof(u->server_key));
}

/* ---- the address table ------------------------------------------------------
 */

static addr_ent *addr_get(sl_auth *a, const char *addr, int create)
{
    addr_ent *old = &a->addrs[0];
    int64_t now = sl_now_ms();
    for (size_t i = 0; i < ADDR_SLOTS; i++) {
        addr_ent *e = &a->addrs[i];
        if (e->addr[0] && !strcmp(e->addr, addr)) {
            if (now - e->last_fail_ms > FAIL_FORGET_MS) {
                e->fails = 0;
                e->next_ms = 0;
            }
            return e;
        }
        if (!e->inflight &&
            (old->inflight || e->last_fail_ms < old->last_fail_ms))
            old = &a->addrs[i];
    }
    if (!create)
        return NULL;
    memset(old, 0, sizeof(*old));
    snprintf(old->addr, sizeof(old->addr), "%s", addr);
    return old;
}

static int64_t delay_for(const sl_auth *a, int fails)
{
    int64_t base = a->b->cfg.login_failure_delay_ms, d;
    if (base <= 0 || fails < 3)
        return 0;
    d = base;
    for (int i = 3; i < fails && d < DELAY_MAX_MS; i++)
        d *= 2;
    return d > DELAY_MAX_MS ? DELAY_MAX_MS : d;
}

/* When may a check from addr start? Pushes the address's next slot. */
static int64_t addr_schedule(sl_auth *a, const char *addr)
{
    addr_ent *e = addr_get(a, addr, 0);
    int64_t now = sl_now_ms(), when = now, d;
    if (!e || (d = delay_for(a, e->fails)) == 0)
        return now;
    if (e->next_ms > when)
        when = e->next_ms;
    e->next_ms = when + d;
    return when;
}

static int64_t addr_failed(sl_auth *a, const char *addr)
{
    addr_ent *e = addr_get(a, addr, 1);
    int64_t now = sl_now_ms(), d;
    e->fails++;
    e->last_fail_ms = now;
    d = delay_for(a, e->fails);
    if (d && e->next_ms < now + d)
        e->next_ms = now + d;
    a->failures++;
    return d;
}

/* ---- the check threads -----------------------------------------------------
 */

/* @thread worker */
static void job_run(sl_auth_job *j)
{
    uint8_t salted[SL_SCRAM_KEY_LEN], stored[SL_SCRAM_KEY_LEN];
    uint8_t sig[SL_SCRAM_KEY_LEN], ck[SL_SCRAM_KEY_LEN];
    j->ok = 0;
    if (j->kind == JOB_PASSWORD) {
        if (sl_scram_salted(j->password, strlen(j->password), j->u.salt,
                            j->u.saltlen, j->u.iter, salted) != SL_OK)
            return;
        sl_scram_keys(salted, NULL, stored, NULL);
        j->ok = sl_scram_equal(stored, j->u.stored_key, SL_SCRAM_KEY_LEN) &&
                j->known;
    } else {
        sl_scram_hmac(j->u.stored_key, SL_SCRAM_KEY_LEN, j->authmsg,
                      strlen(j->authmsg), sig);
        for (int i = 0; i < SL_SCRAM_KEY_LEN; i++)
            ck[i] = j->proof[i] ^ sig[i];
        sl_scram_sha256(ck, sizeof(ck), stored);
        j->ok = sl_scram_equal(stored, j->u.stored_key, SL_SCRAM_KEY_LEN) &&
                j->known;
        sl_scram_hmac(j->u.server_key, SL_SCRAM_KEY_LEN, j->authmsg,
                      strlen(j->authmsg), j->server_sig);
    }
}

/* @thread worker */
static void *worker(void *arg)
{
    sl_auth *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        sl_auth_job *j;
        while (!a->todo && !a->todo_lo && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop)
            break;
        if (a->todo) {
            j = a->todo;
            a->todo = j->next;
            if (!a->todo)
                a->todo_tail = NULL;
        } else {
            j = a->todo_lo;
            a->todo_lo = j->next;
            if (!a->todo_lo)
                a->todo_lo_tail = NULL;
        }
        if (!j->cancelled) { /* read under mu: cancel takes mu too */
            pthread_mutex_unlock(&a->mu);
            job_run(j);
            pthread_mutex_lock(&a->mu);
        }
        j->next = a->done;
        a->done = j;
        event_active(a->done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void job_free(sl_auth_job *j)
{
    if (!j)
        return;
    if (j->password) {
        memset(j->password, 0, strlen(j->password));
        free(j->password);
    }
    free(j->authmsg);
    if (j->delay_ev)
        event_free(j->delay_ev);
    free(j);
}

static void slow_key(const sl_auth_job *j, char *out, size_t n);

static void job_enqueue(sl_auth *a, sl_auth_job *j)
{
    char key[140];
    addr_ent *e;
    int hi;
    slow_key(j, key, sizeof(key));
    e = addr_get(a, key, 1);
    hi = e->inflight++ == 0;
    j->queued = 1;
    pthread_mutex_lock(&a->mu);
    j->next = NULL;
    if (hi) {
        if (a->todo_tail)
            a->todo_tail->next = j;
        else
            a->todo = j;
        a->todo_tail = j;
    } else {
        if (a->todo_lo_tail)
            a->todo_lo_tail->next = j;
        else
            a->todo_lo = j;
        a->todo_lo_tail = j;
    }
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void delayed_unlink(sl_auth *a, sl_auth_job *j)
{
    for (sl_auth_job **p = &a->delayed; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            j->next = NULL;
            return;
        }
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_auth_job *j = arg;
    (void)fd;
    (void)what;
    delayed_unlink(j->a, j);
    if (j->cancelled) {
        job_free(j);
        return;
    }
    job_enqueue(j->a, j);
}

/* The slow-down key: client address and user name. */
static void slow_key(const sl_auth_job *j, char *out, size_t n)
{
    snprintf(out, n, "%.63s/%.64s", j->addr, j->user);
}

static void job_submit(sl_auth *a, sl_auth_job *j)
{
    char key[140];
    int64_t when, now = sl_now_ms();
    slow_key(j, key, sizeof(key));
    when = addr_schedule(a, key);
    if (when > now) {
        struct timeval tv;
        j->delay_ev = evtimer_new(a->b->base, delay_cb, j);
        if (j->delay_ev) {
            tv.tv_sec = (time_t)((when - now) / 1000);
            tv.tv_usec = (suseconds_t)((when - now) % 1000) * 1000;
            j->next = a->delayed;
            a->delayed = j;
            evtimer_add(j->delay_ev, &tv);
            return;
        }
    }
    job_enqueue(a, j);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_auth *a = arg;
    sl_auth_job *list, *rev = NULL;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&a->mu);
    list = a->done;
    a->done = NULL;
    pthread_mutex_unlock(&a->mu);
    while (list) {
        sl_auth_job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        sl_auth_job *j = rev;
        char k[140];
        addr_ent *e;
        rev = j->next;
        slow_key(j, k, sizeof(k));
        e = addr_get(a, k, 0);
        if (e && e->inflight > 0)
            e->inflight--;
        if (!j->cancelled) {
            if (!j->ok) {
                char key[140], more[80] = "";
                int64_t d, now = sl_now_ms();
                slow_key(j, key, sizeof(key));
                d = addr_failed(a, key);
                e = addr_get(a, key, 1);
                if (e->fails > AUDIT_KEY_LINES &&
                    now - e->line_ms < AUDIT_KEY_EVERY_MS) {
                    e->unlogged++;
                } else if (audit_take(a, 0)) {
                    if (e->unlogged)
                        snprintf(more, sizeof(more),
                                 " (%d earlier failure(s) of this user "
                                 "from this address not logged)",
                                 e->unlogged);
                    e->line_ms = now;
                    e->unlogged = 0;
                    sl_auth_audit("authentication failed: user '%s' from %s "
                                  "over %s (%s)%s; next check from this "
                                  "address delayed %" PRId64 " ms%s",
                                  j->user, j->addr, j->proto, j->mech,
                                  j->known ? "" : " [no such user]", d, more);
                }
            } else if (strcmp(j->proto, "http") != 0) {
                audit_login_ok(a, j->user, j->peer, j->proto, j->mech, NULL);
            } else {
                /* HTTP Basic logs in at every request: one line per
                 * address and user now and then */
                int64_t now = sl_now_ms();
                e = addr_get(a, k, 1);
                if (!e->ok_line_ms ||
                    now - e->ok_line_ms >= AUDIT_HTTP_OK_EVERY_MS) {
                    e->ok_line_ms = now;
                    audit_login_ok(a, j->user, j->peer, j->proto, j->mech,
                                   " (HTTP Basic: next line for this "
                                   "address and user in 10 min at the "
                                   "earliest)");
                }
            }
            j->fin(j);
        }
        job_free(j);
    }
}

void sl_auth_job_cancel(sl_auth_job *j)
{
    if (!j)
        return;
    if (j->queued) {
        pthread_mutex_lock(&j->a->mu);
        j->cancelled = 1;
        pthread_mutex_unlock(&j->a->mu);
    } else {
        j->cancelled = 1; /* delay_cb frees it */
    }
}

static sl_auth_job *job_new(sl_auth *a, int kind, const char *peer,
                            const char *proto, const char *mech,
                            const char *user)
{
    sl_auth_job *j = calloc(1, sizeof(*j));
    const sl_user *u;
    if (!j)
        return NULL;
    j->a = a;
    j->kind = kind;
    peer_addr(peer, j->addr, sizeof(j->addr));
    snprintf(j->peer, sizeof(j->peer), "%s", peer ? peer : "?");
    snprintf(j->proto, sizeof(j->proto), "%s", proto);
    snprintf(j->mech, sizeof(j->mech), "%s", mech);
    snprintf(j->user, sizeof(j->user), "%.64s", user ? user : "");
    u = sl_auth_user_find(a->b, j->user);
    if (u) {
        j->u = *u;
        j->known = 1;
    } else {
        fake_user(a, j->user, &j->u);
    }
    return j;
}

static void pw_fin(sl_auth_job *j)
{
    j->done(j->arg, j->ok, j->ok ? j->u.admin : 0);
}

sl_auth_job *sl_auth_check_password(sl_broker *b, const char *peer,
                                    const char *proto, const char *user,
                                    const char *password, sl_auth_done_fn done,
                                    void *arg)
{
    sl_auth *a = A(b);
    sl_auth_job *j = job_new(a, JOB_PASSWORD, peer, proto, "password", user);
    if (!j)
        return NULL;
    j->password = strdup(password ? password : "");
    if (!j->password) {
        job_free(j);
        return NULL;
    }
    if (!user || !password)
        j->known = 0;
    j->fin = pw_fin;
    j->done = done;
    j->arg = arg;
    job_submit(a, j);
    return j;
}

/* ---- the store
 * ----------------------------------------------------------------- */

static sl_err db_exec(sl_auth *a, const char *sql, char *err, size_t errlen)
{
    char *m = NULL;
    if (sqlite3_exec(a->db, sql, NULL, NULL, &m) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", m ? m : sqlite3_errmsg(a->db));
        sqlite3_free(m);
        return SL_ERR_STORAGE;
    }
    return SL_OK;
}

static sl_err load_users(sl_auth *a, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    sl_err rc = SL_OK;
    free(a->users);
    a->users = NULL;
    a->nusers = 0;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT name, salt, iterations, stored_key, "
                           "server_key, admin, created_ms FROM users "
                           "ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        return SL_ERR_STORAGE;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        sl_user u, *n;
        int sl = sqlite3_column_bytes(st, 1);
        memset(&u, 0, sizeof(u));
        snprintf(u.name, sizeof(u.name), "%s",
                 (const char *)sqlite3_column_text(st, 0));
        if (sl < 1 || (size_t)sl > sizeof(u.salt) ||
            sqlite3_column_bytes(st, 3) != SL_SCRAM_KEY_LEN ||
            sqlite3_column_bytes(st, 4) != SL_SCRAM_KEY_LEN) {
            sl_log(SL_ERROR, "auth",
                   "meta.db: user '%s' has damaged "
                   "credentials: skipped (set them again with sluice user "
                   "passwd)",
                   u.name);
            continue;
        }
        memcpy(u.salt, sqlite3_column_blob(st, 1), (size_t)sl);
        u.saltlen = (size_t)sl;
        u.iter = (uint32_t)sqlite3_column_int64(st, 2);
        memcpy(u.stored_key, sqlite3_column_blob(st, 3), SL_SCRAM_KEY_LEN);
        memcpy(u.server_key, sqlite3_column_blob(st, 4), SL_SCRAM_KEY_LEN);
        u.admin = sqlite3_column_int(st, 5);
        u.created_ms = sqlite3_column_int64(st, 6);
        n = realloc(a->users, (a->nusers + 1) * sizeof(*n));
        if (!n) {
            rc = SL_ERR_NOMEM;
            break;
        }
        a->users = n;
        a->users[a->nusers++] = u;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Insert or replace u. */
static sl_err store_user(sl_auth *a, const sl_user *u, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int src;
    if (sqlite3_prepare_v2(a->db,
                           "INSERT OR REPLACE INTO users(name, salt, "
                           "iterations, stored_key, server_key, admin, "
                           "created_ms) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        return SL_ERR_STORAGE;
    }
    sqlite3_bind_text(st, 1, u->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, u->salt, (int)u->saltlen, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, u->iter);
    sqlite3_bind_blob(st, 4, u->stored_key, SL_SCRAM_KEY_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 5, u->server_key, SL_SCRAM_KEY_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, u->admin);
    sqlite3_bind_int64(st, 7, u->created_ms);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        return SL_ERR_STORAGE;
    }
    return load_users(a, err, errlen);
}

static sl_err delete_user(sl_auth *a, const char *name, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int src;
    if (sqlite3_prepare_v2(a->db, "DELETE FROM users WHERE name = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        return SL_ERR_STORAGE;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        return SL_ERR_STORAGE;
    }
    sl_acl_forget_user(a->b, name);
    return load_users(a, err, errlen);
}

struct sqlite3 *sl_auth_db(sl_broker *b)
{
    return A(b) ? A(b)->db : NULL;
}

/* A user from a password (bootstrap admin): salt, keys. */
static sl_err user_from_password(const char *name, const char *pw, int admin,
                                 sl_user *u)
{
    uint8_t salted[SL_SCRAM_KEY_LEN];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->saltlen = SL_SCRAM_SALT_LEN;
    u->iter = SL_SCRAM_DEFAULT_ITER;
    u->admin = admin;
    u->created_ms = sl_now_ms();
    if (sl_scram_random(u->salt, u->saltlen) != SL_OK ||
        sl_scram_salted(pw, strlen(pw), u->salt, u->saltlen, u->iter, salted) !=
            SL_OK)
        return SL_ERR_UNKNOWN;
    sl_scram_keys(salted, NULL, u->stored_key, u->server_key);
    return SL_OK;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int x = hexval(s[2 * i]), y = hexval(s[2 * i + 1]);
        if (x < 0 || y < 0)
            return -1;
        out[i] = (uint8_t)(x * 16 + y);
    }
    return (int)(n / 2);
}

/* "pbkdf2-sha256$ITER$SALT_HEX$HASH_HEX" -> SCRAM credentials: the first
 * 32 bytes of the PBKDF2 output are SCRAM's SaltedPassword whatever the
 * length asked for (PBKDF2 makes its output block by block). */
static sl_err user_from_stomp_hash(const char *name, const char *hash,
                                   sl_user *u, char *err, size_t errlen)
{
    const char *p = hash + 14, *d1, *d2;
    uint8_t h[128];
    char ib[16];
    long long iter;
    int sl, hl;
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    d1 = strchr(p, '$');
    d2 = d1 ? strchr(d1 + 1, '$') : NULL;
    if (!d1 || !d2 || (size_t)(d1 - p) >= sizeof(ib)) {
        snprintf(err, errlen, "user '%s': malformed pbkdf2-sha256 hash", name);
        return SL_ERR_INVALID_CONFIG;
    }
    memcpy(ib, p, (size_t)(d1 - p));
    ib[d1 - p] = 0;
    iter = strtoll(ib, NULL, 10);
    sl = unhex(d1 + 1, (size_t)(d2 - d1 - 1), u->salt, sizeof(u->salt));
    hl = unhex(d2 + 1, strlen(d2 + 1), h, sizeof(h));
    if (iter < 1 || iter > SL_SCRAM_MAX_ITER || sl < 1 ||
        hl < SL_SCRAM_KEY_LEN) {
        snprintf(err, errlen,
                 "user '%s': the pbkdf2-sha256 hash needs 1..%d iterations, "
                 "a salt and at least %d bytes of hash",
                 name, SL_SCRAM_MAX_ITER, SL_SCRAM_KEY_LEN);
        return SL_ERR_INVALID_CONFIG;
    }
    u->saltlen = (size_t)sl;
    u->iter = (uint32_t)iter;
    sl_scram_keys(h, NULL, u->stored_key, u->server_key);
    u->created_ms = sl_now_ms();
    return SL_OK;
}

static sl_err import_users_file(sl_auth *a, const char *path, char *err,
                                size_t errlen)
{
    FILE *f = fopen(path, "r");
    sl_stomp_user *su = NULL;
    size_t n = 0, added = 0, updated = 0;
    struct stat st;
    sl_err rc;
    if (!f) {
        snprintf(err, errlen, "stomp-users-file %s: %s", path, strerror(errno));
        return SL_ESYS(errno);
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        sl_log(SL_WARN, "auth",
               "stomp-users-file %s is readable by other users (mode %03o): "
               "chmod 600 it",
               path, (unsigned)(st.st_mode & 0777));
    rc = sl_stomp_users_read(f, path, &su, &n, err, errlen);
    fclose(f);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        sl_user u;
        const sl_user *old = sl_auth_user_find(a->b, su[i].login);
        if (!sl_user_name_ok(su[i].login, strlen(su[i].login))) {
            snprintf(err, errlen,
                     "stomp-users-file %s: login '%.64s': use 1..64 of "
                     "A-Z a-z 0-9 . _ @ -",
                     path, su[i].login);
            rc = SL_ERR_INVALID_CONFIG;
            break;
        }
        rc = user_from_stomp_hash(su[i].login, su[i].hash, &u, err, errlen);
        if (rc != SL_OK)
            break;
        if (old) {
            if (old->saltlen == u.saltlen && old->iter == u.iter &&
                !memcmp(old->salt, u.salt, u.saltlen) &&
                !memcmp(old->stored_key, u.stored_key, SL_SCRAM_KEY_LEN))
                continue;
            u.admin = old->admin;
            u.created_ms = old->created_ms;
            updated++;
        } else {
            added++;
        }
        rc = store_user(a, &u, err, errlen);
        /* Imported users keep what they could do before users had
         * rights: every topic and group. */
        if (rc == SL_OK && !old)
            rc = sl_acl_grant_all_topics(a->b, u.name, err, errlen);
    }
    sl_stomp_users_free(su, n);
    if (rc == SL_OK && (added || updated))
        sl_auth_audit("stomp-users-file %s imported: %zu user(s) added "
                      "(with every right on every topic and group), %zu "
                      "updated",
                      path, added, updated);
    return rc;
}

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
        if (audit_take(A(b), 0))
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
    audit_login_ok(A(b), ca->user, sl_conn_peer(ca->c), proto, mech, extra);
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

/* (the audit line of a checked login is done_cb's) */
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

static void reply_cancelled(void *arg)
{
    conn_auth *ca = arg;
    sl_auth_job_cancel(ca->job);
    ca->job = NULL;
    ca->r = NULL;
}

static void scram_fin(sl_auth_job *j)
{
    conn_auth *ca = j->arg;
    sl_reply *r = ca->r;
    char v[80], b64[64];
    ca->job = NULL;
    ca->r = NULL;
    sl_reply_set_cancel(r, NULL, NULL);
    sl_conn_resume(ca->c);
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
    sl_reply *r = ca->r;
    ca->job = NULL;
    ca->r = NULL;
    sl_reply_set_cancel(r, NULL, NULL);
    sl_conn_resume(ca->c);
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
    job_submit(A(ca->b), j);
}

static void scram_first(conn_auth *ca, const char *m, size_t len, sl_reply *r,
                        uint32_t corr)
{
    const char *bare, *val;
    size_t vlen;
    char snonce[32], salt64[100], out[400];
    const sl_user *u;
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
    u = sl_auth_user_find(ca->b, ca->user);
    if (u) {
        ca->u = *u;
        ca->known = 1;
    } else {
        fake_user(A(ca->b), ca->user, &ca->u);
        ca->known = 0;
    }
    sl_b64_encode(ca->u.salt, ca->u.saltlen, salt64, sizeof(salt64));
    snprintf(out, sizeof(out), "r=%s,s=%s,i=%u", ca->nonce, salt64,
             (unsigned)ca->u.iter);
    free(ca->cfb);
    free(ca->sfirst);
    ca->cfb = strndup(bare, len - 3);
    ca->sfirst = strdup(out);
    if (!ca->cfb || !ca->sfirst) {
        sasl_fail(ca, r, SL_ERR_NOMEM, "out of memory");
        return;
    }
    ca->step = 1;
    auth_reply(r, corr, out, strlen(out), 0);
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
    j = job_new(A(ca->b), JOB_SCRAM, peer, "binary", SL_SCRAM_MECH, ca->user);
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
        job_free(j);
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
    memcpy(pw, z2 + 1, plen);
    pw[plen] = 0;
    j = job_new(A(ca->b), JOB_PASSWORD, peer, "binary", "PLAIN", ca->user);
    if (j)
        j->password = strdup(pw);
    memset(pw, 0, sizeof(pw));
    if (!j || !j->password) {
        job_free(j);
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
    else
        sasl_fail(ca, r, SL_ERR_AUTHENTICATION_FAILED,
                  "SASL_AUTHENTICATE before SASL_HANDSHAKE");
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

/* ---- admin verbs
 * ------------------------------------------------------------------ */

static const char *vget(size_t n, const char *const *k, const char *const *v,
                        const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k[i], key))
            return v[i];
    return NULL;
}

static int b64_arg(const char *s, uint8_t *out, size_t cap, size_t want)
{
    int n;
    if (!s)
        return -1;
    n = sl_b64_decode(s, strlen(s), out, cap);
    if (n < 0 || (want && (size_t)n != want))
        return -1;
    return n;
}

static sl_err v_user_set(sl_auth *a, int add, size_t n, const char *const *k,
                         const char *const *v, const char *who,
                         const char *peer, sl_jw *j, char *msg, size_t msglen)
{
    const char *name = vget(n, k, v, "name"), *it = vget(n, k, v, "iterations");
    const char *adm = vget(n, k, v, "admin");
    const sl_user *old;
    sl_user u;
    int sl;
    long long iter;
    sl_err rc;
    if (!name || !sl_user_name_ok(name, strlen(name))) {
        snprintf(msg, msglen,
                 "user name '%.64s': use 1..64 of A-Z a-z 0-9 . _ @ -",
                 name ? name : "");
        return SL_ERR_INVALID_ARG;
    }
    old = sl_auth_user_find(a->b, name);
    if (add && old) {
        snprintf(msg, msglen,
                 "user '%s' exists already (sluice user passwd "
                 "changes its password)",
                 name);
        return SL_ERR_INVALID_ARG;
    }
    if (!add && !old) {
        snprintf(msg, msglen, "no user '%s'", name);
        return SL_ERR_NOT_FOUND;
    }
    memset(&u, 0, sizeof(u));
    snprintf(u.name, sizeof(u.name), "%s", name);
    iter = it ? strtoll(it, NULL, 10) : 0;
    sl = b64_arg(vget(n, k, v, "salt"), u.salt, sizeof(u.salt), 0);
    if (sl < 8 || iter < SL_SCRAM_MIN_ITER || iter > SL_SCRAM_MAX_ITER ||
        b64_arg(vget(n, k, v, "stored_key"), u.stored_key, SL_SCRAM_KEY_LEN,
                SL_SCRAM_KEY_LEN) < 0 ||
        b64_arg(vget(n, k, v, "server_key"), u.server_key, SL_SCRAM_KEY_LEN,
                SL_SCRAM_KEY_LEN) < 0) {
        snprintf(msg, msglen,
                 "user credentials: want salt (base64, 8..64 bytes), "
                 "iterations (%d..%d), stored_key and server_key (base64, "
                 "32 bytes): the client derives them from the password",
                 SL_SCRAM_MIN_ITER, SL_SCRAM_MAX_ITER);
        return SL_ERR_INVALID_ARG;
    }
    u.saltlen = (size_t)sl;
    u.iter = (uint32_t)iter;
    u.admin = old ? old->admin : 0;
    if (adm)
        u.admin =
            !strcmp(adm, "yes") || !strcmp(adm, "true") || !strcmp(adm, "1");
    u.created_ms = old ? old->created_ms : sl_now_ms();
    rc = store_user(a, &u, msg, msglen);
    if (rc != SL_OK)
        return rc;
    sl_auth_audit("%s '%s' from %s: %s user '%s'%s", who ? "user" : "client",
                  who ? who : "anonymous", peer ? peer : "?",
                  add ? "added" : "changed the password of", name,
                  u.admin ? " (admin)" : "");
    sl_jw_obj(j);
    sl_jw_kstr(j, "name", name);
    sl_jw_key(j, "admin");
    sl_jw_bool(j, u.admin);
    sl_jw_end(j);
    return SL_OK;
}

sl_err sl_auth_verb(sl_broker *b, const char *verb, size_t n,
                    const char *const *k, const char *const *v, const char *who,
                    const char *peer, struct sl_jw *j, char *msg, size_t msglen)
{
    sl_auth *a = A(b);
    const char *name;
    sl_err rc;
    if (!a) {
        snprintf(msg, msglen, "the user store is not available");
        return SL_ERR_UNKNOWN;
    }
    if (!strcmp(verb, "user.add"))
        return v_user_set(a, 1, n, k, v, who, peer, j, msg, msglen);
    if (!strcmp(verb, "user.passwd"))
        return v_user_set(a, 0, n, k, v, who, peer, j, msg, msglen);
    if (!strcmp(verb, "user.delete")) {
        name = vget(n, k, v, "name");
        if (!name || !sl_auth_user_find(b, name)) {
            snprintf(msg, msglen, "no user '%.64s'", name ? name : "");
            return SL_ERR_NOT_FOUND;
        }
        rc = delete_user(a, name, msg, msglen);
        if (rc != SL_OK)
            return rc;
        sl_auth_audit("%s '%s' from %s: deleted user '%s' and its rules%s",
                      who ? "user" : "client", who ? who : "anonymous",
                      peer ? peer : "?", name,
                      a->nusers == 0 ? "; no user is left: authentication "
                                       "is off"
                                     : "");
        sl_jw_obj(j);
        sl_jw_kstr(j, "deleted", name);
        sl_jw_end(j);
        return SL_OK;
    }
    if (!strcmp(verb, "users")) {
        sl_jw_obj(j);
        sl_jw_key(j, "users");
        sl_jw_arr(j);
        for (size_t i = 0; i < a->nusers; i++) {
            sl_jw_obj(j);
            sl_jw_kstr(j, "name", a->users[i].name);
            sl_jw_key(j, "admin");
            sl_jw_bool(j, a->users[i].admin);
            sl_jw_ki64(j, "iterations", a->users[i].iter);
            sl_jw_ki64(j, "created_ms", a->users[i].created_ms);
            sl_jw_end(j);
        }
        sl_jw_end(j);
        sl_jw_end(j);
        return SL_OK;
    }
    return sl_acl_verb(b, verb, n, k, v, who, peer, j, msg, msglen);
}

/* ---- safe defaults
 * ---------------------------------------------------------------- */

static int addr_loopback(const char *addr)
{
    char host[80];
    peer_addr(addr, host, sizeof(host));
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        if (host[0] && host[strlen(host) - 1] == ']')
            host[strlen(host) - 1] = 0;
    }
    return !strncmp(host, "127.", 4) || !strcmp(host, "localhost") ||
           !strcmp(host, "::1");
}

/* Every listener on loopback, or users, or --allow-anonymous. */
static int check_exposure(sl_broker *b)
{
    const struct {
        const char *flag, *addr;
    } ls[] = {
        {"--listen", b->cfg.listen},
        {"--stomp-listen", b->cfg.stomp_listen},
        {"--stomp-ws-listen", b->cfg.stomp_ws_listen},
        {"--tls-listen", b->cfg.tls_listen},
        {"--stomp-tls-listen", b->cfg.stomp_tls_listen},
        {"--http-listen", b->cfg.http_listen},
    };
    char why[512];
    if (sl_auth_enabled(b) || b->cfg.allow_anonymous)
        return 0;
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        if (!ls[i].addr || !ls[i].addr[0] || addr_loopback(ls[i].addr))
            continue;
        snprintf(why, sizeof(why),
                 "refusing to listen on %s (%s) without users: anyone who "
                 "can reach it could do anything; create an administrator "
                 "(--bootstrap-admin NAME with SLUICE_ADMIN_PASSWORD) or pass "
                 "--allow-anonymous",
                 ls[i].addr, ls[i].flag);
        sl_log(SL_ERROR, "auth", "%s", why);
        sl_broker_fail(b, why);
        return -1;
    }
    return 0;
}

static sl_err bootstrap_admin(sl_auth *a, char *err, size_t errlen)
{
    const char *name = a->b->cfg.bootstrap_admin, *pw;
    sl_user u;
    sl_err rc;
    if (!name || !name[0] || a->nusers > 0)
        return SL_OK;
    if (!sl_user_name_ok(name, strlen(name))) {
        snprintf(err, errlen,
                 "--bootstrap-admin '%.64s': use 1..64 of A-Z a-z 0-9 . _ @ -",
                 name);
        return SL_ERR_INVALID_CONFIG;
    }
    pw = getenv("SLUICE_ADMIN_PASSWORD");
    if (!pw || !pw[0]) {
        snprintf(err, errlen,
                 "--bootstrap-admin %s needs the password in the "
                 "SLUICE_ADMIN_PASSWORD environment variable",
                 name);
        return SL_ERR_INVALID_CONFIG;
    }
    rc = user_from_password(name, pw, 1, &u);
    if (rc == SL_OK)
        rc = store_user(a, &u, err, errlen);
    if (rc == SL_OK)
        sl_auth_audit("bootstrap: created administrator '%s'", name);
    return rc;
}

/* ---- module
 * ------------------------------------------------------------------------ */

void sl_auth_module_init(sl_broker *b)
{
    sl_auth *a = calloc(1, sizeof(*a));
    char path[4200], err[600];
    sl_err rc = SL_OK;
    if (!a) {
        sl_broker_fail(b, "out of memory");
        return;
    }
    a->b = b;
    b->auth = a;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    sl_scram_random(a->secret, sizeof(a->secret));
    /* data directory 0700: its files hold every message */
    if (chmod(b->cfg.data, 0700) != 0)
        sl_log(SL_WARN, "auth", "cannot chmod 700 data directory %s: %s",
               b->cfg.data, strerror(errno));
    snprintf(path, sizeof(path), "%s/meta.db", b->cfg.data);
    if (sqlite3_open(path, &a->db) != SQLITE_OK) {
        snprintf(err, sizeof(err), "cannot open %.400s: %s", path,
                 a->db ? sqlite3_errmsg(a->db) : "out of memory");
        rc = SL_ERR_STORAGE;
    }
    if (rc == SL_OK) {
        sqlite3_busy_timeout(a->db, 5000);
        rc = db_exec(a,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS users("
                     " name TEXT PRIMARY KEY, salt BLOB NOT NULL,"
                     " iterations INTEGER NOT NULL,"
                     " stored_key BLOB NOT NULL, server_key BLOB NOT NULL,"
                     " admin INTEGER NOT NULL DEFAULT 0,"
                     " created_ms INTEGER NOT NULL);",
                     err, sizeof(err));
    }
    if (rc == SL_OK)
        rc = load_users(a, err, sizeof(err));
    if (rc == SL_OK)
        rc = sl_acl_load(b, err, sizeof(err));
    if (rc == SL_OK && b->cfg.stomp_users_file && b->cfg.stomp_users_file[0])
        rc = import_users_file(a, b->cfg.stomp_users_file, err, sizeof(err));
    if (rc == SL_OK)
        rc = bootstrap_admin(a, err, sizeof(err));
    a->tok_milli = (int64_t)AUDIT_BURST * 1000;
    a->tok_at = sl_now_ms();
    a->sup_ev = evtimer_new(b->base, audit_summary_cb, a);
    if (rc == SL_OK) {
        a->done_ev = event_new(b->base, -1, 0, done_cb, a);
        for (int i = 0; a->done_ev && i < AUTH_THREADS; i++)
            if (pthread_create(&a->th[a->nth], NULL, worker, a) == 0)
                a->nth++;
        if (!a->done_ev || a->nth == 0) {
            snprintf(err, sizeof(err), "cannot start the login threads");
            rc = SL_ERR_NOMEM;
        }
    }
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "auth", "%s", err);
        sl_broker_fail(b, err);
        return;
    }
    sl_binary_register(b, SL_API_SASL_HANDSHAKE, 1, 1, h_sasl_handshake);
    sl_binary_register(b, SL_API_SASL_AUTHENTICATE, 1, 1, h_sasl_authenticate);
    if (check_exposure(b) != 0)
        return;
    if (a->nusers > 0)
        sl_log(SL_INFO, "auth",
               "authentication on: %zu user(s); every client must log in",
               a->nusers);
    else
        sl_log(SL_INFO, "auth",
               "no users: authentication off, every client may do "
               "everything (%s)",
               b->cfg.allow_anonymous ? "--allow-anonymous"
                                      : "every listener is on loopback");
}

void sl_auth_module_fini(sl_broker *b)
{
    sl_auth *a = A(b);
    sl_auth_job *j;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->nth; i++)
        pthread_join(a->th[i], NULL);
    while ((j = a->todo)) {
        a->todo = j->next;
        job_free(j);
    }
    while ((j = a->todo_lo)) {
        a->todo_lo = j->next;
        job_free(j);
    }
    while ((j = a->done)) {
        a->done = j->next;
        job_free(j);
    }
    while ((j = a->delayed)) {
        a->delayed = j->next;
        job_free(j);
    }
    if (a->done_ev)
        event_free(a->done_ev);
    if (a->sup_ev) {
        audit_summary_cb(-1, 0, a); /* what the rate limit left out */
        event_free(a->sup_ev);
    }
    sl_acl_free(b);
    if (a->db)
        sqlite3_close(a->db);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->users);
    free(a);
    b->auth = NULL;
}
