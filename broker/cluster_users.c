/*
 * cluster_users.c - a cluster's users and permission rules go through the
 * metadata log (issue 16), as Kafka keeps SCRAM credentials and ACLs in
 * KRaft's log.
 *
 *  1. Changes. `sluice user add|passwd|delete` and `sluice acl
 *     grant|revoke` on any node become USER_UPSERT, USER_DELETE and
 *     ACL_CHANGE commands (cluster/meta_auth.c), proposed on the metadata
 *     leader or forwarded to it with CLUSTER_FORWARD like a topic
 *     creation. Only the SCRAM credentials travel (the CLI derives them;
 *     the password never reaches a broker). The client is answered when
 *     the log applied the command and this node's store has it.
 *  2. The store follows the image. Logins and checks read the broker's
 *     store (auth.c, acl.c: DATA/meta.db and memory). After each drain of
 *     the log, if the image's users or rules changed since the store's
 *     copy (auth_index, a Raft index, is above the index the store
 *     remembers), the store is replaced by the image's in one
 *     transaction. A node that restarts keeps its copy until the replay
 *     of the log (or a snapshot) passes it, so it never goes back to an
 *     older state, and a node that was down when a user was deleted drops
 *     it once it catches up.
 *  3. Seeding. Users a node had before it ever synced from the log
 *     (--bootstrap-admin, a stomp-users-file, a single broker turned into
 *     a cluster node) are proposed once, with their rules, as "new user"
 *     commands: the first node's version of a name wins. The store is not
 *     replaced before the seeding ran, so nothing is lost on the way.
 * @thread loop
 */
#include "broker/cluster_users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/acl_store.h"
#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/peer_auth.h"
#include "protocol/log.h"

#define SEED_RETRY_MS 500

/* A proposal waiting for the log. */
typedef struct up {
    struct up *next;
    sl_broker *b;
    sl_auth_later later;
    uint64_t auth_before; /* the image's auth_index when proposed */
    int applied;          /* the log applied it; waiting for this image */
    sl_err rc;
    char audit[700];
    char exists[200], missing[200], msg[256];
} up;

typedef struct seed {
    sl_user *users;
    size_t nusers;
    sl_acl_rule *rules;
    size_t nrules;
    size_t next; /* users then rules */
    int inflight;
    struct event *ev;
} seed;

/* A read barrier's caller waiting for the seeding to end. */
typedef struct ub {
    struct ub *next;
    sl_broker *b;
    void (*fn)(void *arg, sl_err rc, const char *msg);
    void *arg;
} ub;

typedef struct sl_cluster_users {
    up *ups;
    seed *seed;
    ub *seed_waits; /* read barriers done, waiting for the seeding */
} cu;

static cu g_none; /* no cluster: nothing pending */

static cu *state(sl_broker *b)
{
    return b->cluster_users ? b->cluster_users : &g_none;
}

int sl_cluster_users_on(const sl_broker *b)
{
    return b->cluster != NULL;
}

/* ---- the store follows the image ------------------------------------ */

static void answer(up *u)
{
    const char *m = u->msg[0] ? u->msg : sl_strerror(u->rc);
    if (u->rc == SL_ERR_INVALID_ARG && u->exists[0])
        m = u->exists;
    else if (u->rc == SL_ERR_NOT_FOUND && u->missing[0])
        m = u->missing;
    if (u->rc == SL_OK)
        sl_auth_audit("%s", u->audit);
    u->later.fn(u->later.arg, u->rc, u->rc == SL_OK ? NULL : m);
}

static void answer_ready(sl_broker *b, int all)
{
    const sl_meta *m = sl_bcluster_image(b);
    up **pp = &state(b)->ups;
    while (*pp) {
        up *u = *pp;
        /* while this node seeds, its store is its own (not the image's):
         * a change is answered once the seeding ended and the store
         * follows the image again */
        if (u->applied &&
            (all || u->rc != SL_OK ||
             (!state(b)->seed && m && m->auth_index > u->auth_before))) {
            *pp = u->next;
            answer(u);
            free(u);
        } else {
            pp = &u->next;
        }
    }
}

void sl_cluster_users_sync(sl_broker *b)
{
    const sl_meta *m = sl_bcluster_image(b);
    cu *s = state(b);
    sl_user *users = NULL;
    sl_acl_rule *rules = NULL;
    char err[300] = "";
    sl_err rc;
    if (!m || s->seed || m->auth_index <= sl_auth_synced_index(b)) {
        answer_ready(b, 0);
        return;
    }
    users = calloc(m->nusers + 1, sizeof(*users));
    rules = calloc(m->nacls + 1, sizeof(*rules));
    if (!users || !rules) {
        free(users);
        free(rules);
        return; /* the next drain tries again */
    }
    for (size_t i = 0; i < m->nusers; i++) {
        const sl_mi_user *mu = &m->users[i];
        sl_user *u = &users[i];
        snprintf(u->name, sizeof(u->name), "%s", mu->name);
        memcpy(u->salt, mu->salt, mu->saltlen);
        u->saltlen = mu->saltlen;
        u->iter = mu->iter;
        memcpy(u->stored_key, mu->stored_key, SL_SCRAM_KEY_LEN);
        memcpy(u->server_key, mu->server_key, SL_SCRAM_KEY_LEN);
        u->admin = mu->admin;
        u->created_ms = mu->created_ms;
    }
    for (size_t i = 0; i < m->nacls; i++) {
        const sl_mi_acl *ma = &m->acls[i];
        sl_acl_rule *r = &rules[i];
        snprintf(r->user, sizeof(r->user), "%s", ma->user);
        r->kind = ma->kind;
        snprintf(r->pattern, sizeof(r->pattern), "%s", ma->pattern);
        r->prefix = ma->prefix;
        r->ops = (int)ma->ops;
    }
    sl_auth_conns_mark(b);
    rc = sl_auth_store_replace(b, users, m->nusers, rules, m->nacls,
                               m->auth_index, err, sizeof(err));
    /* a user deleted through any node: its connections here close now
     * (docs/security.md, Clusters) */
    sl_auth_conns_recheck(b);
    if (rc != SL_OK)
        sl_log(SL_ERROR, "auth",
               "users and rules from the metadata log (index %llu) cannot "
               "be stored here: %s",
               (unsigned long long)m->auth_index, err);
    else
        sl_log(SL_INFO, "auth",
               "users and rules from the metadata log (index %llu): %zu "
               "user(s), %zu rule(s)%s",
               (unsigned long long)m->auth_index, m->nusers, m->nacls,
               m->nusers ? "" : "; no user: authentication is off");
    if (m->nusers &&
        !(b->cfg.cluster_secret_file && b->cfg.cluster_secret_file[0]))
        sl_log(SL_WARN, "auth",
               "the cluster has users but this node has no "
               "cluster-secret-file: requests it forwards to other nodes "
               "are refused (docs/security.md, Clusters)");
    free(users);
    free(rules);
    answer_ready(b, 0);
}

/* ---- proposals --------------------------------------------------------- */

static void up_done(void *arg, sl_err rc, const char *msg)
{
    up *u = arg;
    u->applied = 1;
    u->rc = rc;
    if (rc != SL_OK && msg)
        snprintf(u->msg, sizeof(u->msg), "%s", msg);
    sl_cluster_users_sync(u->b); /* answers it once this image has it */
}

sl_err sl_cluster_users_propose(sl_broker *b, const sl_wb *cmd,
                                const char *audit, const char *exists_msg,
                                const char *missing_msg, sl_auth_later *later,
                                char *msg, size_t msglen)
{
    const sl_meta *m = sl_bcluster_image(b);
    up *u;
    sl_err rc;
    if (cmd->err || !b->cluster_users || !m)
        return SL_ERR_NOMEM;
    u = calloc(1, sizeof(*u));
    if (!u)
        return SL_ERR_NOMEM;
    u->b = b;
    u->later = *later;
    u->auth_before = m->auth_index;
    snprintf(u->audit, sizeof(u->audit), "%s", audit ? audit : "");
    snprintf(u->exists, sizeof(u->exists), "%s", exists_msg ? exists_msg : "");
    snprintf(u->missing, sizeof(u->missing), "%s",
             missing_msg ? missing_msg : "");
    rc = sl_bcluster_propose(b, cmd->p, cmd->len, up_done, u);
    if (rc != SL_OK) {
        free(u);
        snprintf(msg, msglen,
                 "cannot change users now: %s (no metadata leader reachable?); "
                 "retry",
                 sl_strerror(rc));
        return rc;
    }
    u->next = state(b)->ups;
    state(b)->ups = u;
    later->pending = 1;
    return SL_OK;
}

static void to_mi(const sl_user *u, sl_mi_user *mu)
{
    memset(mu, 0, sizeof(*mu));
    mu->name = (char *)u->name;
    memcpy(mu->salt, u->salt, u->saltlen);
    mu->saltlen = (uint8_t)u->saltlen;
    mu->iter = u->iter;
    memcpy(mu->stored_key, u->stored_key, SL_META_KEY_LEN);
    memcpy(mu->server_key, u->server_key, SL_META_KEY_LEN);
    mu->admin = (uint8_t)(u->admin != 0);
    mu->created_ms = u->created_ms;
}

sl_err sl_cluster_users_propose_user(sl_broker *b, const sl_user *u, int flags,
                                     const char *audit, const char *exists_msg,
                                     const char *missing_msg,
                                     sl_auth_later *later, char *msg,
                                     size_t msglen)
{
    sl_mi_user mu;
    sl_wb wb;
    sl_err rc;
    to_mi(u, &mu);
    sl_wb_init(&wb, 200);
    sl_meta_enc_user_upsert(&wb, &mu, flags);
    rc = sl_cluster_users_propose(b, &wb, audit, exists_msg, missing_msg, later,
                                  msg, msglen);
    sl_wb_fini(&wb);
    return rc;
}

/* ---- read barriers ------------------------------------------------------- */

static void ub_run(ub *list, sl_err rc, const char *msg)
{
    ub *rev = NULL;
    while (list) { /* in the order they came */
        ub *w = list;
        list = w->next;
        w->next = rev;
        rev = w;
    }
    while (rev) {
        ub *w = rev;
        rev = w->next;
        w->fn(w->arg, rc, msg);
        free(w);
    }
}

static void ub_done(void *arg, sl_err rc, const char *msg)
{
    ub *w = arg;
    cu *s = state(w->b);
    if (s->seed) {
        w->next = s->seed_waits;
        s->seed_waits = w;
        return;
    }
    w->fn(w->arg, rc, msg);
    free(w);
}

int sl_cluster_users_read_needed(sl_broker *b)
{
    return b->cluster_users &&
           (sl_bcluster_read_needed(b) || state(b)->seed != NULL);
}

sl_err sl_cluster_users_barrier(
    sl_broker *b, void (*fn)(void *arg, sl_err rc, const char *msg), void *arg)
{
    ub *w;
    sl_err rc;
    if (!b->cluster_users)
        return SL_ERR_SHUTTING_DOWN;
    w = calloc(1, sizeof(*w));
    if (!w)
        return SL_ERR_NOMEM;
    w->b = b;
    w->fn = fn;
    w->arg = arg;
    rc = sl_bcluster_read_barrier(b, ub_done, w);
    if (rc != SL_OK)
        free(w);
    return rc;
}

/* ---- seeding ---------------------------------------------------------- */

static void seed_arm(sl_broker *b)
{
    struct timeval tv = {0, SEED_RETRY_MS * 1000};
    seed *sd = state(b)->seed;
    if (sd && sd->ev)
        evtimer_add(sd->ev, &tv);
}

static void seed_free(seed *sd)
{
    if (!sd)
        return;
    if (sd->ev)
        event_free(sd->ev);
    free(sd->users);
    free(sd->rules);
    free(sd);
}

static void seed_next(sl_broker *b);

/* The seeding ended: the barriers that waited for it go on. */
static void sd_waits_run(sl_broker *b)
{
    cu *s = state(b);
    ub *list = s->seed_waits;
    s->seed_waits = NULL;
    ub_run(list, SL_OK, NULL);
}

static void seed_done(void *arg, sl_err rc, const char *msg)
{
    sl_broker *b = arg;
    seed *sd = state(b)->seed;
    if (!sd)
        return;
    sd->inflight = 0;
    if (rc == SL_OK || rc == SL_ERR_INVALID_ARG || rc == SL_ERR_NOT_FOUND ||
        rc == SL_ERR_MALFORMED) {
        sd->next++; /* applied, or another node's version won */
        seed_next(b);
        return;
    }
    if (rc == SL_ERR_SHUTTING_DOWN)
        return;
    sl_log(SL_DEBUG, "auth", "seeding users into the metadata log: %s; retry",
           msg && msg[0] ? msg : sl_strerror(rc));
    seed_arm(b);
}

static void seed_next(sl_broker *b)
{
    cu *s = state(b);
    seed *sd = s->seed;
    sl_wb wb;
    sl_err rc;
    if (!sd || sd->inflight)
        return;
    if (sd->next >= sd->nusers + sd->nrules) {
        sl_log(SL_INFO, "auth",
               "%zu user(s) and %zu rule(s) of this node proposed to the "
               "metadata log",
               sd->nusers, sd->nrules);
        s->seed = NULL;
        seed_free(sd);
        sl_cluster_users_sync(b);
        sd_waits_run(b);
        return;
    }
    sl_wb_init(&wb, 200);
    if (sd->next < sd->nusers) {
        sl_mi_user mu;
        to_mi(&sd->users[sd->next], &mu);
        sl_meta_enc_user_upsert(&wb, &mu, SL_META_USER_NEW);
    } else {
        const sl_acl_rule *r = &sd->rules[sd->next - sd->nusers];
        sl_meta_enc_acl_change(&wb, r->user, r->kind, r->pattern, r->prefix,
                               (uint32_t)r->ops, 0);
    }
    rc = wb.err ? SL_ERR_NOMEM
                : sl_bcluster_propose(b, wb.p, wb.len, seed_done, b);
    sl_wb_fini(&wb);
    if (rc == SL_OK)
        sd->inflight = 1;
    else
        seed_arm(b);
}

static void seed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    seed_next(arg);
}

void sl_cluster_users_start(sl_broker *b)
{
    cu *s;
    seed *sd;
    size_t n = 0, nr = 0;
    const sl_user *u;
    if (!b->cluster || b->cluster_users)
        return;
    s = calloc(1, sizeof(*s));
    if (!s)
        return;
    b->cluster_users = s;
    if (!sl_peer_auth_enabled(b))
        sl_log(SL_WARN, "auth",
               "no cluster-secret-file: connections between brokers are not "
               "authenticated, so anything that reaches the binary port can "
               "fetch as a replica or forward metadata commands, and a "
               "cluster with users cannot forward requests "
               "(docs/security.md, Clusters)");
    if (sl_auth_synced_index(b) != 0)
        return; /* this store follows the log already */
    sl_auth_users(b, &u, &n);
    sl_acl_rules(b, NULL, &nr);
    if (n == 0)
        return;
    sd = calloc(1, sizeof(*sd));
    if (!sd)
        return;
    sd->users = calloc(n, sizeof(*sd->users));
    sd->rules = calloc(nr + 1, sizeof(*sd->rules));
    sd->ev = evtimer_new(b->base, seed_cb, b);
    if (!sd->users || !sd->rules || !sd->ev) {
        seed_free(sd);
        return;
    }
    memcpy(sd->users, u, n * sizeof(*u));
    sd->nusers = n;
    sl_acl_rules(b, sd->rules, &nr);
    sd->nrules = nr;
    s->seed = sd;
    sl_log(SL_INFO, "auth",
           "this node has %zu user(s) of its own: proposing them to the "
           "metadata log (the first node's version of a name wins)",
           n);
    seed_arm(b);
}

void sl_cluster_users_stop(sl_broker *b)
{
    cu *s = b->cluster_users;
    if (!s)
        return;
    seed_free(s->seed);
    s->seed = NULL;
    sd_waits_run(b); /* answered from the store as it is */
    while (s->ups) { /* the log's answer will not come any more */
        up *u = s->ups;
        s->ups = u->next;
        if (!u->applied) {
            u->rc = SL_ERR_SHUTTING_DOWN;
            snprintf(u->msg, sizeof(u->msg), "the broker is stopping");
        }
        answer(u);
        free(u);
    }
    free(s);
    b->cluster_users = NULL;
}
