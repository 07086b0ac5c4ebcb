/*
 * auth.c - users, logins and their checks (issue 16): the user store,
 * the admin verbs on users, the safe defaults and the module's life
 * cycle. The rest is in auth_check.c (the check threads, slow-down and
 * audit lines: points 3 to 6) and auth_sasl.c (connections, SASL on
 * the binary protocol, certificates as users: points 7 and 8);
 * auth_int.h is what the three share.
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
 *  2. On or off. Authentication is on once a user exists. Off, a client
 *     that does not log in is the anonymous user with every right; that is
 *     allowed only while every listener is on loopback, or with
 *     --allow-anonymous (checked at start, one line naming the listener).
 *     A client that does log in while it is off is checked against one
 *     built-in user, guest/guest, found only from loopback (RabbitMQ's
 *     guest; auth_guest.c): a wrong password is refused in every set-up.
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
#include "broker/auth_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <sqlite3.h>

#include "broker/acl_store.h"
#include "broker/cluster_users_propose.h"
#include "broker/json.h"
#include "broker/stomp_auth.h"
#include "cluster/meta.h"
#include "protocol/log.h"

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

sl_err sl_auth_store_replace(sl_broker *b, const sl_user *users, size_t n,
                             const sl_acl_rule *rules, size_t nrules,
                             uint64_t index, char *err, size_t errlen)
{
    sl_auth *a = auth_of(b);
    sqlite3_stmt *st = NULL;
    sl_err rc = db_exec(a, "BEGIN IMMEDIATE; DELETE FROM users;", err, errlen);
    if (rc == SL_OK &&
        sqlite3_prepare_v2(a->db,
                           "INSERT INTO users(name, salt, iterations, "
                           "stored_key, server_key, admin, created_ms) "
                           "VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        rc = SL_ERR_STORAGE;
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        const sl_user *u = &users[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, u->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, u->salt, (int)u->saltlen, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, u->iter);
        sqlite3_bind_blob(st, 4, u->stored_key, SL_SCRAM_KEY_LEN,
                          SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 5, u->server_key, SL_SCRAM_KEY_LEN,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 6, u->admin);
        sqlite3_bind_int64(st, 7, u->created_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = SL_ERR_STORAGE;
    }
    sqlite3_finalize(st);
    if (rc == SL_OK)
        rc = sl_acl_store_replace(b, rules, nrules, err, errlen);
    if (rc == SL_OK) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO cluster_sync(key, value) "
                 "VALUES('auth_index', %llu); COMMIT;",
                 (unsigned long long)index);
        rc = db_exec(a, sql, err, errlen);
    } else {
        if (!err[0])
            snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(a->db));
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc == SL_OK)
        a->synced_index = index;
    /* reload either way: memory follows what the table holds */
    if (load_users(a, err, errlen) != SL_OK || sl_acl_load(b, err, errlen))
        rc = rc == SL_OK ? SL_ERR_STORAGE : rc;
    return rc;
}

void sl_auth_users(const sl_broker *b, const sl_user **users, size_t *n)
{
    *users = auth_of(b) ? auth_of(b)->users : NULL;
    *n = auth_of(b) ? auth_of(b)->nusers : 0;
}

uint64_t sl_auth_synced_index(const sl_broker *b)
{
    return auth_of(b) ? auth_of(b)->synced_index : 0;
}

struct sqlite3 *sl_auth_db(sl_broker *b)
{
    return auth_of(b) ? auth_of(b)->db : NULL;
}

/* The metadata log index the store's users and rules are as of (a
 * cluster node's; 0 otherwise). */
static uint64_t read_synced_index(sl_auth *a)
{
    sqlite3_stmt *st = NULL;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(a->db,
                           "SELECT value FROM cluster_sync WHERE key = "
                           "'auth_index'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
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
                         const char *peer, sl_jw *j, char *msg, size_t msglen,
                         sl_auth_later *later)
{
    const char *name = vget(n, k, v, "name"), *it = vget(n, k, v, "iterations");
    const char *adm = vget(n, k, v, "admin");
    const sl_user *old;
    sl_user u;
    int sl;
    long long iter;
    sl_err rc;
    char line[400];
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
    snprintf(line, sizeof(line), "%s '%s' from %s: %s user '%s'%s",
             who ? "user" : "client", who ? who : "anonymous",
             peer ? peer : "?", add ? "added" : "changed the password of", name,
             u.admin ? " (admin)" : "");
    if (sl_cluster_users_on(a->b)) {
        char exists[128], missing[128];
        snprintf(exists, sizeof(exists),
                 "user '%s' exists already (sluice user passwd changes its "
                 "password)",
                 name);
        snprintf(missing, sizeof(missing), "no user '%s'", name);
        rc = sl_cluster_users_propose_user(
            a->b, &u,
            (add ? SL_META_USER_NEW : SL_META_USER_EXISTING) |
                (adm ? 0 : SL_META_USER_KEEP_ADMIN),
            line, exists, missing, later, msg, msglen);
    } else {
        rc = store_user(a, &u, msg, msglen);
        if (rc == SL_OK)
            sl_auth_audit("%s", line);
    }
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(j);
    sl_jw_kstr(j, "name", name);
    sl_jw_key(j, "admin");
    sl_jw_bool(j, u.admin);
    sl_jw_end(j);
    return SL_OK;
}

sl_err sl_auth_verb(sl_broker *b, const char *verb, size_t n,
                    const char *const *k, const char *const *v, const char *who,
                    const char *peer, struct sl_jw *j, char *msg, size_t msglen,
                    sl_auth_later *later)
{
    sl_auth *a = auth_of(b);
    const char *name;
    sl_err rc;
    if (!a) {
        snprintf(msg, msglen, "the user store is not available");
        return SL_ERR_UNKNOWN;
    }
    if (!strcmp(verb, "user.add"))
        return v_user_set(a, 1, n, k, v, who, peer, j, msg, msglen, later);
    if (!strcmp(verb, "user.passwd"))
        return v_user_set(a, 0, n, k, v, who, peer, j, msg, msglen, later);
    if (!strcmp(verb, "user.delete")) {
        name = vget(n, k, v, "name");
        if (!name || !sl_auth_user_find(b, name)) {
            snprintf(msg, msglen, "no user '%.64s'", name ? name : "");
            return SL_ERR_NOT_FOUND;
        }
        if (sl_cluster_users_on(b)) {
            char line[300], missing[100];
            sl_wb wb;
            snprintf(line, sizeof(line),
                     "%s '%s' from %s: deleted user '%s' and its rules",
                     who ? "user" : "client", who ? who : "anonymous",
                     peer ? peer : "?", name);
            snprintf(missing, sizeof(missing), "no user '%.64s'", name);
            sl_wb_init(&wb, 80);
            sl_meta_enc_user_delete(&wb, name);
            rc = sl_cluster_users_propose(b, &wb, line, NULL, missing, later,
                                          msg, msglen);
            sl_wb_fini(&wb);
        } else {
            sl_auth_conns_mark(b);
            rc = delete_user(a, name, msg, msglen);
            sl_auth_conns_recheck(b); /* its connections close */
            if (rc == SL_OK)
                sl_auth_audit("%s '%s' from %s: deleted user '%s' and its "
                              "rules%s",
                              who ? "user" : "client", who ? who : "anonymous",
                              peer ? peer : "?", name,
                              a->nusers == 0 ? "; no user is left: "
                                               "authentication is off"
                                             : "");
        }
        if (rc != SL_OK)
            return rc;
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
    return sl_acl_verb(b, verb, n, k, v, who, peer, j, msg, msglen, later);
}

/* ---- safe defaults
 * ---------------------------------------------------------------- */

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
        if (!ls[i].addr || !ls[i].addr[0] || auth_addr_loopback(ls[i].addr))
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
                     " created_ms INTEGER NOT NULL);"
                     "CREATE TABLE IF NOT EXISTS cluster_sync("
                     " key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
                     err, sizeof(err));
    }
    if (rc == SL_OK)
        rc = sl_peer_auth_load(b, err, sizeof(err));
    if (rc == SL_OK)
        rc = sl_peer_tls_check(b, err, sizeof(err));
    if (rc == SL_OK)
        rc = load_users(a, err, sizeof(err));
    if (rc == SL_OK)
        a->synced_index = read_synced_index(a);
    if (rc == SL_OK)
        rc = sl_acl_load(b, err, sizeof(err));
    if (rc == SL_OK && a->synced_index > 0) {
        /* a cluster node whose store follows the metadata log: adding
         * users here would bring back ones the cluster deleted */
        if ((b->cfg.stomp_users_file && b->cfg.stomp_users_file[0]) ||
            (b->cfg.bootstrap_admin && b->cfg.bootstrap_admin[0]))
            sl_log(SL_INFO, "auth",
                   "users come from the cluster's metadata log: "
                   "stomp-users-file and bootstrap-admin are not applied "
                   "again (use sluice user)");
    } else {
        if (rc == SL_OK && b->cfg.stomp_users_file &&
            b->cfg.stomp_users_file[0])
            rc =
                import_users_file(a, b->cfg.stomp_users_file, err, sizeof(err));
        if (rc == SL_OK)
            rc = bootstrap_admin(a, err, sizeof(err));
    }
    a->tok_milli = (int64_t)AUDIT_BURST * 1000;
    a->tok_at = sl_now_ms();
    a->sup_ev = evtimer_new(b->base, auth_audit_summary_cb, a);
    if (rc == SL_OK) {
        a->done_ev = event_new(b->base, -1, 0, auth_done_cb, a);
        for (int i = 0; a->done_ev && i < AUTH_THREADS; i++)
            if (pthread_create(&a->th[a->nth], NULL, auth_worker, a) == 0)
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
    auth_sasl_register(b);
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
    sl_auth *a = auth_of(b);
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
        auth_job_free(j);
    }
    while ((j = a->todo_lo)) {
        a->todo_lo = j->next;
        auth_job_free(j);
    }
    while ((j = a->done)) {
        a->done = j->next;
        auth_job_free(j);
    }
    while ((j = a->delayed)) {
        a->delayed = j->next;
        auth_job_free(j);
    }
    if (a->done_ev)
        event_free(a->done_ev);
    if (a->sup_ev) {
        auth_audit_summary_cb(-1, 0, a); /* what the rate limit left out */
        event_free(a->sup_ev);
    }
    sl_acl_free(b);
    SSL_CTX_free(a->peer_tls_ctx);
    if (a->db)
        sqlite3_close(a->db);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->users);
    free(a);
    b->auth = NULL;
}
