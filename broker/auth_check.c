/*
 * auth_check.c - login checks off the loop: the check threads and their
 * fair queue, the slow-down per client address and user name, and the
 * audit lines of logins (points 3 to 6 of the essay in auth.c).
 * @thread loop unless tagged
 */
#include "broker/auth_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster_users_propose.h"
#include "protocol/log.h"

/* ---- helpers ------------------------------------------------------------- */

void sl_auth_audit(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sl_log(SL_INFO, "audit", "%s", line);
}

void auth_audit_summary_cb(evutil_socket_t fd, short what, void *arg)
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
int auth_audit_take(sl_auth *a, int ok)
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
void auth_audit_login_ok(sl_auth *a, const char *user, const char *peer,
                         const char *proto, const char *mech, const char *extra)
{
    if (auth_audit_take(a, 1))
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
    sl_auth *a = auth_of(b);
    if (!a || !name)
        return NULL;
    for (size_t i = 0; i < a->nusers; i++)
        if (!strcmp(a->users[i].name, name))
            return &a->users[i];
    return NULL;
}

/* "IP:PORT" -> "IP" */
void auth_peer_addr(const char *peer, char *out, size_t n)
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
void auth_fake_user(sl_auth *a, const char *name, sl_user *u)
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

/* ---- the address table --------------------------------------------------- */

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

/* ---- the check threads --------------------------------------------------- */

/* @thread auth_worker */
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

/* @thread auth_worker */
void *auth_worker(void *arg)
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

void auth_job_free(sl_auth_job *j)
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
        auth_job_free(j);
        return;
    }
    job_enqueue(j->a, j);
}

/* The slow-down key: client address and user name. */
static void slow_key(const sl_auth_job *j, char *out, size_t n)
{
    snprintf(out, n, "%.63s/%.64s", j->addr, j->user);
}

/* ---- read barriers (a cluster) ---------------------------------------------
 *
 * A cluster node checks a login against its copy of the users, which may
 * lag a change answered through another node (broker/cluster_read.c). So
 * before a check, a cluster node waits until its copy holds every change
 * answered before (a read barrier): a user added through node A logs in
 * through node B at once, and a deleted one or an old password no longer
 * does. HTTP Basic logs in at every request: there the barrier runs only
 * when the check failed, and the check runs again after it. */

static void job_enqueue(sl_auth *a, sl_auth_job *j);

static void barrier_done(void *arg, sl_err rc, const char *msg)
{
    sl_auth_job *j = arg;
    const sl_user *u;
    (void)rc; /* no barrier: the copy as it is */
    (void)msg;
    if (j->cancelled) {
        auth_job_free(j);
        return;
    }
    if (j->kind == JOB_LOOKUP) { /* the caller looks the user up */
        j->fin(j);
        auth_job_free(j);
        return;
    }
    u = j->no_password ? NULL : auth_login_user(j->a, j->user, j->peer);
    if (u) {
        j->u = *u;
        j->known = 1;
    } else {
        auth_fake_user(j->a, j->user, &j->u);
        j->known = 0;
    }
    auth_job_submit(j->a, j);
}

/* 1 when j now waits for a read barrier (barrier_done goes on). */
static int job_barrier(sl_auth *a, sl_auth_job *j)
{
    if (j->barrier || !sl_cluster_users_read_needed(a->b))
        return 0;
    j->barrier = 1;
    j->queued = 0; /* cancel: barrier_done frees it */
    return sl_cluster_users_barrier(a->b, barrier_done, j) == SL_OK;
}

void auth_job_submit(sl_auth *a, sl_auth_job *j)
{
    char key[140];
    int64_t when, now = sl_now_ms();
    if ((j->kind == JOB_LOOKUP ||
         (j->kind == JOB_PASSWORD && strcmp(j->proto, "http") != 0)) &&
        job_barrier(a, j))
        return;
    if (j->kind == JOB_LOOKUP) { /* not a cluster: nothing to wait for */
        j->fin(j);
        auth_job_free(j);
        return;
    }
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

void auth_done_cb(evutil_socket_t fd, short what, void *arg)
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
        if (!j->cancelled && !j->ok && j->kind == JOB_PASSWORD &&
            job_barrier(a, j))
            continue; /* HTTP Basic: checked again after the barrier */
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
                } else if (auth_audit_take(a, 0)) {
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
                auth_audit_login_ok(a, j->user, j->peer, j->proto, j->mech,
                                    NULL);
            } else {
                /* HTTP Basic logs in at every request: one line per
                 * address and user now and then */
                int64_t now = sl_now_ms();
                e = addr_get(a, k, 1);
                if (!e->ok_line_ms ||
                    now - e->ok_line_ms >= AUDIT_HTTP_OK_EVERY_MS) {
                    e->ok_line_ms = now;
                    auth_audit_login_ok(a, j->user, j->peer, j->proto, j->mech,
                                        " (HTTP Basic: next line for this "
                                        "address and user in 10 min at the "
                                        "earliest)");
                }
            }
            j->fin(j);
        }
        auth_job_free(j);
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

sl_auth_job *auth_job_new(sl_auth *a, int kind, const char *peer,
                          const char *proto, const char *mech, const char *user)
{
    sl_auth_job *j = calloc(1, sizeof(*j));
    const sl_user *u;
    if (!j)
        return NULL;
    j->a = a;
    j->kind = kind;
    auth_peer_addr(peer, j->addr, sizeof(j->addr));
    snprintf(j->peer, sizeof(j->peer), "%s", peer ? peer : "?");
    snprintf(j->proto, sizeof(j->proto), "%s", proto);
    snprintf(j->mech, sizeof(j->mech), "%s", mech);
    snprintf(j->user, sizeof(j->user), "%.64s", user ? user : "");
    u = auth_login_user(a, j->user, peer);
    if (u) {
        j->u = *u;
        j->known = 1;
    } else {
        auth_fake_user(a, j->user, &j->u);
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
    sl_auth *a = auth_of(b);
    sl_auth_job *j =
        auth_job_new(a, JOB_PASSWORD, peer, proto, "password", user);
    if (!j)
        return NULL;
    j->password = strdup(password ? password : "");
    if (!j->password) {
        auth_job_free(j);
        return NULL;
    }
    if (!user || !password) {
        j->known = 0;
        j->no_password = 1;
    }
    j->fin = pw_fin;
    j->done = done;
    j->arg = arg;
    auth_job_submit(a, j);
    return j;
}
