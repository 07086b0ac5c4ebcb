/*
 * auth_int.h - what auth.c, auth_check.c and auth_sasl.c share: limits,
 * the module's state, a login check (job) and a connection's login state.
 * The design is the essay at the top of auth.c.
 * @thread loop unless tagged
 */
#ifndef SL_AUTH_INT_H
#define SL_AUTH_INT_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>

#include "broker/auth.h"
#include "broker/broker.h"

#define AUTH_THREADS 2
#define PEER_SEEN 4096
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

/* JOB_LOOKUP: no check, only a read barrier in a cluster before fin
 * (auth_check.c), for SCRAM's first message */
enum { JOB_PASSWORD = 1, JOB_SCRAM = 2, JOB_LOOKUP = 3 };
enum { MECH_NONE = 0, MECH_SCRAM, MECH_PLAIN, MECH_EXTERNAL, MECH_BROKER };
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
    int no_password; /* asked without a user or password: never known */
    int barrier;     /* a read barrier ran for it (cluster) */
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
    struct sqlite3 *db;
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
    uint64_t failures;     /* /metrics some day */
    uint64_t synced_index; /* cluster: log index of the users and rules */
    /* peer_auth.c: the cluster secret and the nonces of recent broker
     * logins (a replayed login is refused) */
    uint8_t peer_secret[256];
    size_t peer_secret_len;
    struct {
        uint8_t nonce[16];
        int64_t ms;
    } peer_seen[PEER_SEEN];
    size_t peer_seen_next;
    struct ssl_ctx_st *peer_tls_ctx; /* cluster-tls client context */
    /* audit lines of logins: token bucket (thousandths), dropped counts */
    int64_t tok_milli, tok_at;
    long sup_ok, sup_fail;
    struct event *sup_ev;
    /* auth_guest.c: the default set-up's guest, made on first use */
    sl_user guest;
    int guest_ready;
};

/* Per connection (sl_conn_set_auth). */
typedef struct conn_auth {
    sl_broker *b;
    sl_conn *c;
    char user[65];
    int authed, admin;
    int in_store;   /* its user is in the store (sl_auth_conns_mark) */
    int via_cert;   /* logged in by its TLS client certificate */
    int32_t broker; /* another broker of the cluster (peer_auth.c): its id */
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

static inline sl_auth *auth_of(const sl_broker *b)
{
    return b->auth;
}

/* auth_check.c: audit lines of logins (token bucket; the summary timer's
 * callback), the client address of "IP:PORT", the credentials of a user
 * that does not exist, and login checks on the check threads. */
void auth_audit_summary_cb(evutil_socket_t fd, short what, void *arg);
int auth_audit_take(sl_auth *a, int ok);
void auth_audit_login_ok(sl_auth *a, const char *user, const char *peer,
                         const char *proto, const char *mech,
                         const char *extra);
void auth_peer_addr(const char *peer, char *out, size_t n);
void auth_fake_user(sl_auth *a, const char *name, sl_user *u);
void *auth_worker(void *arg); /* @thread worker */
sl_auth_job *auth_job_new(sl_auth *a, int kind, const char *peer,
                          const char *proto, const char *mech,
                          const char *user);
void auth_job_submit(sl_auth *a, sl_auth_job *j);
void auth_job_free(sl_auth_job *j);
void auth_done_cb(evutil_socket_t fd, short what, void *arg);

/* auth_guest.c: 1 when addr ("HOST:PORT", "IP:PORT") is on loopback;
 * the user a login as name from peer checks against: the store's, or
 * the default set-up's guest (no users, name guest, peer on loopback),
 * or NULL (then auth_fake_user). */
int auth_addr_loopback(const char *addr);
const sl_user *auth_login_user(sl_auth *a, const char *name, const char *peer);

/* auth_sasl.c: register SASL_HANDSHAKE and SASL_AUTHENTICATE. */
void auth_sasl_register(sl_broker *b);

/* peer_auth.c, for the auth module's init (auth.c calls them; declared
 * here, not in peer_auth.h, so auth does not depend on peer_auth, which
 * uses this header). Start checks of cluster-tls: SL_OK or an error with
 * err naming what is missing. Read cluster-secret-file: SL_OK, or an
 * error with err naming the problem (missing, too short). */
sl_err sl_peer_tls_check(sl_broker *b, char *err, size_t errlen);
sl_err sl_peer_auth_load(sl_broker *b, char *err, size_t errlen);

#endif
