/*
 * auth.h - users, logins and their checks, for every protocol (auth.c has
 * the design essay; acl.h the permissions).
 *
 * One user store (DATA/meta.db, tables users and acls) serves the binary
 * protocol (SASL SCRAM-SHA-256, PLAIN over TLS), STOMP (CONNECT login and
 * passcode) and the HTTP API (Basic). Authentication is on as soon as one
 * user exists; with none, every client that does not log in is the
 * anonymous user and may do everything (development on loopback, see
 * sl_auth_module_init), and a login is accepted only for guest/guest from
 * loopback (auth_guest.c).
 * @thread loop (everything here unless tagged)
 */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "broker/conn.h"
#include "broker/ops.h"
#include "protocol/err.h"
#include "protocol/scram.h"

typedef struct sl_auth sl_auth;
typedef struct sl_auth_job sl_auth_job;
struct sl_req;
struct sl_jw;

/* A stored user: SCRAM credentials only, never a password. */
typedef struct sl_user {
    char name[65];
    uint8_t salt[64];
    size_t saltlen;
    uint32_t iter;
    uint8_t stored_key[SL_SCRAM_KEY_LEN];
    uint8_t server_key[SL_SCRAM_KEY_LEN];
    int admin;
    int64_t created_ms;
} sl_user;

/* Module life cycle (server.c's table; first, so later modules can ask).
 * init opens the store, imports stomp-users-file, creates the
 * --bootstrap-admin user, applies the safe defaults (data directory
 * modes, the non-loopback refusal) and starts the check threads. */
void sl_auth_module_init(sl_broker *b);
void sl_auth_module_fini(sl_broker *b);

/* 1 when at least one user exists: every connection must log in. */
int sl_auth_enabled(const sl_broker *b);
/* The user a connection logged in as, or NULL (anonymous: only while
 * authentication is off). */
const char *sl_auth_conn_user(sl_conn *c);
/* 1 when the connection's user has the admin role. */
int sl_auth_conn_admin(sl_conn *c);
/* Record that c logged in as user (STOMP after its CONNECT check). */
void sl_auth_conn_set_user(sl_conn *c, const char *user, int admin);
/*
 * Logged-in connections follow the store (RabbitMQ closes a deleted
 * user's connections): call sl_auth_conns_mark before the users change
 * (a `user delete` here, or this node's store following the metadata
 * log), sl_auth_conns_recheck after. A connection whose user was in the
 * store and is no longer is closed (one audit line); one whose user
 * stays gets the user's admin role as it is now. Rules are read at each
 * request already. Connections logged in as no stored user (guest,
 * brokers, relays) are left alone.
 */
void sl_auth_conns_mark(sl_broker *b);
void sl_auth_conns_recheck(sl_broker *b);
/*
 * tls-cert-login: log c in as the user its verified TLS client certificate
 * names (common name or subjectAltName), without a password. login: the
 * user the client asks for (STOMP's login header), NULL or "" for any.
 * 1 when c is now logged in that way (an audit line names user, peer and
 * certificate), 0 otherwise (no certificate, the setting is none, another
 * user asked for, or no such user: then a password login follows).
 */
int sl_auth_cert_login(sl_broker *b, sl_conn *c, const char *proto,
                       const char *login);
/*
 * The default set-up (no users): a login (not the anonymous CONNECT) is
 * accepted only for guest/guest from loopback (auth_guest.c). 1 when
 * user is guest asking from peer, not on loopback, in that set-up: why
 * says guest is loopback-only and an audit line (over proto) is written;
 * the caller refuses the login. 0 otherwise (the usual check follows).
 */
int sl_auth_guest_remote(sl_broker *b, const char *peer, const char *user,
                         const char *proto, char *why, size_t n);
/* Every user, sorted by name (borrowed until the next store change). */
void sl_auth_users(const sl_broker *b, const sl_user **users, size_t *n);
/* Find a user (NULL if none). Borrowed until the next store change. */
const sl_user *sl_auth_user_find(const sl_broker *b, const char *name);

/*
 * Binary protocol. sl_auth_bin_open: a binary connection was accepted
 * (pre-login input limit and login timer while authentication is on).
 * sl_auth_frame_limit: the largest frame c may send now (tens of KiB
 * before login). sl_auth_binary_gate: before dispatching req; returns 1
 * if it may run, 0 when r was answered (AUTHENTICATION_FAILED before
 * login, AUTHORIZATION_FAILED when no rule allows it).
 */
void sl_auth_bin_open(sl_broker *b, sl_conn *c);
uint32_t sl_auth_frame_limit(sl_broker *b, sl_conn *c);
int sl_auth_binary_gate(sl_broker *b, sl_conn *c, const struct sl_req *req,
                        sl_reply *r);

/*
 * Check a password (STOMP passcode, HTTP Basic, PLAIN) for user on the
 * check threads, slowed down per client address after failures. done
 * runs once on the loop: ok 1/0, admin set when ok. An unknown user costs
 * the same as a wrong password and gets the same answer. NULL when out of
 * memory (done will not run). `proto` ("stomp", "http") names it in the
 * audit line.
 */
typedef void (*sl_auth_done_fn)(void *arg, int ok, int admin);
sl_auth_job *sl_auth_check_password(sl_broker *b, const char *peer,
                                    const char *proto, const char *user,
                                    const char *password, sl_auth_done_fn done,
                                    void *arg);
/* The job's done will not run (its argument is going away). */
void sl_auth_job_cancel(sl_auth_job *j);

/* In a cluster a change to users or rules is a command of the metadata
 * log (cluster_users.c): the verb returns SL_OK with pending set, and
 * fn(arg, rc, msg) runs exactly once, later, when the log applied it (the
 * answer in j stands only if rc is SL_OK). */
typedef struct sl_auth_later {
    void (*fn)(void *arg, sl_err rc, const char *msg);
    void *arg;
    int pending;
} sl_auth_later;

/* Admin verbs of the user store (admin.c's table): user.add, user.passwd,
 * user.delete, users, acl.grant, acl.revoke, acls. Answer into j, msg on
 * error. who/peer name the caller in the audit line. */
sl_err sl_auth_verb(sl_broker *b, const char *verb, size_t n,
                    const char *const *keys, const char *const *values,
                    const char *who, const char *peer, struct sl_jw *j,
                    char *msg, size_t msglen, sl_auth_later *later);

/*
 * A cluster's users and rules come from the metadata log: replace the
 * store's users and rules by these, remembering the log index they are
 * as of (one transaction). sl_auth_synced_index: that index (0: never).
 */
struct sl_acl_rule;
sl_err sl_auth_store_replace(sl_broker *b, const sl_user *users, size_t n,
                             const struct sl_acl_rule *rules, size_t nrules,
                             uint64_t index, char *err, size_t errlen);
uint64_t sl_auth_synced_index(const sl_broker *b);

/* Store access for acl.c: run SQL on meta.db (the auth connection). */
struct sqlite3 *sl_auth_db(sl_broker *b);
/* Audit line (INFO, subsystem "audit"). */
void sl_auth_audit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
