/*
 * admin.c - the management verbs (admin.h): the call, its arguments, the
 * verb table, and the ADMIN binary api. The verbs themselves are in
 * admin_topics.c (status, topics, connections), admin_groups.c (groups
 * and queues) and admin_dlq.c (dead-letter topics); admin_int.h is what
 * they share.
 *
 * Vocabulary for operators coming from RabbitMQ or Kafka:
 *   ready      records a consumer of the queue group could get now
 *              (RabbitMQ "messages_ready")
 *   in_flight  acquired and not yet settled ("messages_unacknowledged")
 *   delayed    available but not due yet (not-before header, nack backoff)
 *   dlq        the dead-letter topic: total records in it, and pending
 *              ones (not yet redriven or purged: the depth to alert on)
 * @thread loop
 */
#include "broker/admin.h"
#include "broker/admin_int.h"

#include <event2/event.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/cluster_users_propose.h"
#include "broker/json.h"
#include "broker/ops_groups.h"
#include "broker/topic.h"
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* Listings show what the caller may describe (broker/acl.c). */
int adm_may_list(const sl_admin_call *x, int kind, const char *name)
{
    return sl_acl_may_list(x->b, x->args->user, x->args->admin, kind, name);
}

/* ---- arguments ----------------------------------------------------------- */

const char *adm_arg(const sl_admin_call *x, const char *k)
{
    for (size_t i = 0; i < x->args->n; i++)
        if (!strcmp(x->args->keys[i], k))
            return x->args->values[i];
    return NULL;
}

sl_err adm_need(sl_admin_call *x, const char *k, const char **out)
{
    const char *v = adm_arg(x, k);
    if (!v || !*v) {
        snprintf(x->msg, sizeof(x->msg), "missing argument '%s'", k);
        return SL_ERR_INVALID_ARG;
    }
    *out = v;
    return SL_OK;
}

sl_err adm_int_arg(sl_admin_call *x, const char *k, int64_t lo, int64_t hi,
                   int64_t dflt, int64_t *out)
{
    const char *v = adm_arg(x, k);
    char *end;
    long long n;
    if (!v || !*v) {
        *out = dflt;
        return SL_OK;
    }
    n = strtoll(v, &end, 10);
    if (*end || n < lo || n > hi) {
        snprintf(x->msg, sizeof(x->msg),
                 "argument '%s': expected a number in %lld..%lld, not '%.64s'",
                 k, (long long)lo, (long long)hi, v);
        return SL_ERR_INVALID_ARG;
    }
    *out = n;
    return SL_OK;
}

sl_groups *adm_groups(sl_admin_call *x)
{
    sl_groups *g = sl_ops_groups(x->b);
    if (!g)
        snprintf(x->msg, sizeof(x->msg), "groups are not available");
    return g;
}

sl_err adm_topic_or_fail(sl_admin_call *x, const char *name, sl_topic **t)
{
    *t = sl_topics_find(x->b->topics, name);
    if (!*t) {
        snprintf(x->msg, sizeof(x->msg), "unknown topic '%.249s'", name);
        return SL_ERR_UNKNOWN_TOPIC;
    }
    return SL_OK;
}

/* ---- records as JSON ----------------------------------------------------- */

void adm_record_json(sl_jw *j, int32_t partition, const sl_record *rec,
                     int64_t attempts)
{
    sl_header_iter hi;
    sl_header h;
    sl_jw_obj(j);
    sl_jw_ki64(j, "partition", partition);
    sl_jw_ki64(j, "offset", rec->offset);
    sl_jw_ki64(j, "timestamp", rec->timestamp);
    sl_jw_key(j, "key");
    if (rec->key)
        sl_jw_strn(j, rec->key, (size_t)rec->key_len);
    else
        sl_jw_null(j);
    sl_jw_key(j, "value");
    if (rec->value)
        sl_jw_strn(j, rec->value, (size_t)rec->value_len);
    else
        sl_jw_null(j);
    sl_jw_key(j, "headers");
    sl_jw_obj(j);
    sl_record_headers_begin(rec, &hi);
    while (sl_record_headers_next(&hi, &h) == SL_OK) {
        char k[256];
        snprintf(k, sizeof(k), "%.*s", (int)h.key_len, h.key);
        sl_jw_key(j, k);
        if (h.value)
            sl_jw_strn(j, h.value, h.value_len);
        else
            sl_jw_null(j);
    }
    sl_jw_end(j);
    if (attempts >= 0)
        sl_jw_ki64(j, "attempts", attempts);
    sl_jw_end(j);
}

/* ---- the verb table ------------------------------------------------------ */

static const struct verb {
    const char *name;
    verb_fn fn;
} verbs[] = {
    {"version", v_version},
    {"status", v_status},
    {"topics", v_topics},
    {"topic", v_topic},
    {"topic.create", v_topic_create},
    {"topic.delete", v_topic_delete},
    {"topic.alter", v_topic_alter},
    {"topic.add_partitions", v_topic_add_partitions},
    {"groups", v_groups},
    {"group", v_group},
    {"group.delete", v_group_delete},
    {"group.reset", v_group_reset},
    {"queues", v_queues},
    {"queue.purge", v_queue_purge},
    {"queue.peek", v_queue_peek},
    {"dlq.list", v_dlq_list},
    {"dlq.show", v_dlq_show},
    {"dlq.purge", v_dlq_purge},
    {"dlq.redrive", v_dlq_redrive},
    {"connections", v_connections},
    {"connection.close", v_connection_close},
    {"partition.reassign", v_partition_reassign},
    {"partition.reassignments", v_partition_reassignments},
    {"cluster.rebalance", v_cluster_rebalance},
    {"cluster.add_node", v_cluster_add_node},
    {"cluster.remove_node", v_cluster_remove_node},
};

const char *const *sl_admin_verbs(void)
{
    static const char *names[sizeof(verbs) / sizeof(verbs[0]) + 1];
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        names[i] = verbs[i].name;
    return names;
}

/* A call's own copy of its verb and arguments, kept while it waits for
 * a read barrier. */
typedef struct adm_copy {
    sl_admin_args args;
    char verb[128];
    char **kv; /* n keys, n values, user, peer */
} adm_copy;

static void copy_free(adm_copy *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->kv && i < 2 * c->args.n + 2; i++)
        free(c->kv[i]);
    free(c->kv);
    free(c);
}

static char *dup_or(const char *s, int *fail)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *fail = 1;
    return d;
}

static adm_copy *copy_args(const char *verb, const sl_admin_args *a)
{
    adm_copy *c = calloc(1, sizeof(*c));
    int fail = 0;
    if (!c || strlen(verb) >= sizeof(c->verb)) {
        free(c);
        return NULL;
    }
    snprintf(c->verb, sizeof(c->verb), "%s", verb);
    c->args = *a;
    c->kv = calloc(2 * a->n + 2, sizeof(*c->kv));
    if (!c->kv) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < a->n; i++) {
        c->kv[i] = dup_or(a->keys[i], &fail);
        c->kv[a->n + i] = dup_or(a->values[i], &fail);
    }
    c->kv[2 * a->n] = dup_or(a->user, &fail);
    c->kv[2 * a->n + 1] = dup_or(a->peer, &fail);
    c->args.keys = (const char *const *)c->kv;
    c->args.values = (const char *const *)c->kv + a->n;
    c->args.user = c->kv[2 * a->n];
    c->args.peer = c->kv[2 * a->n + 1];
    if (fail) {
        copy_free(c);
        return NULL;
    }
    return c;
}

static void call_free(sl_admin_call *x)
{
    copy_free(x->copy);
    if (x->prev)
        x->prev->next = x->next;
    else
        x->b->admin_calls = x->next;
    if (x->next)
        x->next->prev = x->prev;
    evbuffer_free(x->out);
    free(x);
}

void adm_finish(sl_admin_call *x, sl_err rc)
{
    if (!x->cancelled) {
        if (rc != SL_OK) {
            if (!x->msg[0])
                snprintf(x->msg, sizeof(x->msg), "%s", sl_strerror(rc));
            evbuffer_drain(x->out, evbuffer_get_length(x->out));
        }
        x->done(x->arg, rc, rc == SL_OK ? NULL : x->msg, x->out);
    }
    call_free(x);
}

static void committed(void *arg, sl_err rc)
{
    sl_admin_call *x = arg;
    if (x->in_verb) { /* sl_groups_wait ran it at once: sl_admin_run ends */
        x->later_rc = rc;
        x->later_done = 1;
        return;
    }
    if (rc != SL_OK)
        snprintf(x->msg, sizeof(x->msg),
                 "the change could not be made durable: %s", sl_strerror(rc));
    adm_finish(x, rc);
}

/* A change to users or rules in a cluster, applied by the log. */
static void auth_later(void *arg, sl_err rc, const char *msg)
{
    sl_admin_call *x = arg;
    if (rc != SL_OK && msg)
        snprintf(x->msg, sizeof(x->msg), "%s", msg);
    adm_finish(x, rc);
}

static const struct verb *verb_find(const char *verb)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verbs[i].name, verb))
            return &verbs[i];
    return NULL;
}

/* Verbs that read or change what the metadata log holds (topics, their
 * partitions and configs, users, rules, the caller's own rights): on a
 * cluster node they run once its copy holds every change answered before
 * (a read barrier, broker/cluster_read.c), so that what was answered
 * through one node is seen through any other. */
static int wants_barrier(const char *verb, const struct verb *v)
{
    return !v || !strncmp(verb, "topic", 5) ||
           !strncmp(verb, "partition.", 10) || !strncmp(verb, "cluster.", 8);
}

static sl_admin_call *run_verb(sl_admin_call *x, const char *verb,
                               const struct verb *v);

static void barrier_done(void *arg, sl_err rc, const char *msg)
{
    sl_admin_call *x = arg;
    (void)rc; /* no barrier: answered from this node's copy */
    (void)msg;
    if (x->cancelled) {
        adm_finish(x, SL_ERR_SHUTTING_DOWN);
        return;
    }
    x->args = &x->copy->args;
    run_verb(x, x->copy->verb, verb_find(x->copy->verb));
}

sl_admin_call *sl_admin_run(sl_broker *b, const char *verb,
                            const sl_admin_args *args, sl_admin_done_fn done,
                            void *arg)
{
    sl_admin_call *x = calloc(1, sizeof(*x));
    const struct verb *v = verb_find(verb);
    if (x)
        x->out = evbuffer_new();
    if (!x || !x->out) {
        if (x)
            free(x);
        done(arg, SL_ERR_NOMEM, "out of memory", NULL);
        return NULL;
    }
    x->next = b->admin_calls;
    if (b->admin_calls)
        b->admin_calls->prev = x;
    b->admin_calls = x;
    x->b = b;
    x->args = args;
    x->done = done;
    x->arg = arg;
    sl_jw_init(&x->j, x->out);
    if (wants_barrier(verb, v) &&
        (v ? sl_bcluster_read_needed(b) : sl_cluster_users_read_needed(b)) &&
        (x->copy = copy_args(verb, args)) != NULL) {
        x->args = NULL;
        if ((v ? sl_bcluster_read_barrier(b, barrier_done, x)
               : sl_cluster_users_barrier(b, barrier_done, x)) == SL_OK)
            return x; /* runs in barrier_done */
        x->args = args;
    }
    return run_verb(x, verb, v);
}

static sl_admin_call *run_verb(sl_admin_call *x, const char *verb,
                               const struct verb *v)
{
    sl_broker *b = x->b;
    const sl_admin_args *args = x->args;
    sl_err rc;
    rc = sl_acl_check_verb(b, args->user, args->admin, verb, args->n,
                           args->keys, args->values, x->msg, sizeof(x->msg));
    if (rc != SL_OK) {
        adm_finish(x, rc);
        return NULL;
    }
    if (!v) { /* users and permissions: broker/auth.c, broker/acl.c */
        sl_auth_later later = {auth_later, x, 0};
        rc =
            sl_auth_verb(b, verb, args->n, args->keys, args->values, args->user,
                         args->peer, &x->j, x->msg, sizeof(x->msg), &later);
        x->args = NULL; /* borrowed for the call only */
        if (rc == SL_OK && later.pending)
            return x; /* a cluster: the metadata log answers (auth_later) */
        adm_finish(x, rc);
        return NULL;
    }
    x->in_verb = 1;
    rc = v->fn(x);
    x->in_verb = 0;
    x->args = NULL; /* borrowed for the call only */
    if (rc == SL_OK && x->pending)
        return x; /* the verb calls finish */
    if (rc == SL_OK && x->wait && sl_ops_groups(b)) {
        x->in_verb = 1;
        x->later_done = 0;
        sl_groups_wait(sl_ops_groups(b), committed, x);
        x->in_verb = 0;
        if (!x->later_done)
            return x;
        rc = x->later_rc;
        if (rc != SL_OK)
            snprintf(x->msg, sizeof(x->msg),
                     "the change could not be made durable: %s",
                     sl_strerror(rc));
    }
    adm_finish(x, rc);
    return NULL;
}

void sl_admin_cancel(sl_admin_call *x)
{
    if (x)
        x->cancelled = 1;
}

/* ---- the ADMIN binary api ------------------------------------------------ */

typedef struct bin_call {
    sl_reply *r;
    uint32_t corr;
    sl_admin_call *x;
    int answered;
} bin_call;

static void bin_done(void *arg, sl_err rc, const char *msg,
                     struct evbuffer *json)
{
    bin_call *bc = arg;
    bc->answered = 1;
    if (bc->x) /* completed later: the cancel hook is ours no more */
        sl_reply_set_cancel(bc->r, NULL, NULL);
    if (rc != SL_OK) {
        sl_reply_error(bc->r, rc, msg);
    } else {
        sl_admin_resp resp;
        sl_wb wb;
        memset(&resp, 0, sizeof(resp));
        resp.json_len = evbuffer_get_length(json);
        resp.json = evbuffer_pullup(json, -1);
        sl_wb_init(&wb, resp.json_len + 64);
        if (sl_admin_resp_encode(&wb, bc->corr, &resp) != SL_OK ||
            sl_reply_add(bc->r, wb.p, wb.len) != SL_OK)
            sl_reply_error(bc->r, SL_ERR_NOMEM, "ADMIN: reply too large");
        else
            sl_reply_done(bc->r);
        sl_wb_fini(&wb);
    }
    if (bc->x)
        free(bc);
}

static void bin_cancel(void *arg)
{
    bin_call *bc = arg;
    sl_admin_cancel(bc->x);
    free(bc);
}

static void h_admin(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_arena a;
    sl_admin_req q = {0};
    bin_call *bc;
    char verb[128];
    char **kv = NULL;
    sl_admin_args args;
    sl_arena_init(&a);
    sl_arena_set_limit(&a, 8 * req->len + 4096);
    if (sl_admin_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "ADMIN: malformed body");
        goto out;
    }
    if (q.verb.len >= sizeof(verb)) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "ADMIN: verb too long");
        goto out;
    }
    memcpy(verb, q.verb.p, q.verb.len);
    verb[q.verb.len] = 0;
    kv = calloc(2 * (size_t)q.nargs + 2, sizeof(char *));
    bc = calloc(1, sizeof(*bc));
    if (!kv || !bc) {
        free(bc);
        sl_reply_error(r, SL_ERR_NOMEM, "ADMIN: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < q.nargs; i++) {
        sl_kv *p = &q.args[i];
        kv[i] = strndup(p->key.p ? p->key.p : "", p->key.len);
        kv[q.nargs + i] = strndup(p->value.p ? p->value.p : "", p->value.len);
        if (!kv[i] || !kv[q.nargs + i]) {
            free(bc);
            sl_reply_error(r, SL_ERR_NOMEM, "ADMIN: out of memory");
            goto out;
        }
    }
    args.n = q.nargs;
    args.keys = (const char *const *)kv;
    args.values = (const char *const *)kv + q.nargs;
    args.user = sl_auth_conn_user(c);
    args.admin = sl_auth_conn_admin(c);
    args.peer = sl_conn_peer(c);
    bc->r = r;
    bc->corr = req->correlation_id;
    bc->x = sl_admin_run(b, verb, &args, bin_done, bc);
    if (!bc->answered)
        sl_reply_set_cancel(r, bin_cancel, bc);
    else if (!bc->x)
        free(bc);
out:
    if (kv)
        for (uint32_t i = 0; i < 2 * q.nargs; i++)
            free(kv[i]);
    free(kv);
    sl_arena_fini(&a);
}

void sl_admin_module_init(sl_broker *b)
{
    b->started_ms = sl_now_ms();
    sl_binary_register(b, SL_API_ADMIN, 1, 1, h_admin);
}

void sl_admin_module_fini(sl_broker *b)
{
    /* Calls still waiting answer nobody: their requests (binary and
     * HTTP) went with the connections, which are freed before. */
    for (sl_admin_call *x = b->admin_calls; x; x = x->next)
        x->cancelled = 1;
}
