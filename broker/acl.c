/*
 * acl.c - permissions (issue 16).
 *
 * A rule is (user, resource kind, pattern, literal|prefix, operations);
 * rules live in meta.db (table acls) and in memory. Deny by default once
 * authentication is on (a user exists): a request runs only if a rule of
 * its user allows every operation it needs on every resource it names, or
 * the user has the admin role. With authentication off everything is
 * allowed (anonymous development mode, see auth.c).
 *
 * Matching: a literal pattern equals the name; a prefix pattern starts
 * it (the empty prefix matches every name). A cluster rule has no
 * pattern. As in Kafka, any operation on a resource implies describe on
 * it, and create on the cluster allows creating any topic.
 *
 * Protected topics: dead-letter topics (NAME.DLQ), STOMP temp queues
 * (stomp-tmp-*) and names starting with "__" are written by the broker.
 * Producing to them needs a rule naming that topic literally (a prefix
 * rule, even the empty one, does not do), or admin; STOMP replies to a
 * temp queue (the reply-to header) are the exception, see
 * sl_stomp_acl_*. Reading other sessions' temp queues needs admin.
 *
 * Listings are open to every logged-in user and filtered to what the user
 * may describe (sl_acl_may_list: describe on the entry, or on the
 * cluster), as Kafka filters ListTopics/Metadata/ListGroups; connections
 * are filtered to the user's own unless admin or describe on the cluster.
 *
 * What each binary request needs (sl_acl_check_request):
 *   METADATA            describe on each topic named (all topics: a login;
 *                       the answer lists what the user may describe)
 *   LIST_TOPICS         a login (filtered)
 *   CREATE_TOPICS       create on each topic
 *   DELETE_TOPICS       delete on each topic
 *   PRODUCE             produce on each topic (and create if it does not
 *                       exist yet and would be auto-created)
 *   FETCH               consume on each topic
 *   LIST_OFFSETS        describe on each topic
 *   GROUP_JOIN          consume on the group and on each topic
 *   GROUP_HEARTBEAT/LEAVE consume on the group
 *   OFFSET_COMMIT       commit on the group, consume on each topic
 *   OFFSET_FETCH        describe on the group
 *   GROUP_LIST          a login (filtered)
 *   GROUP_DESCRIBE      describe on the group
 *   QUEUE_ACQUIRE/ACK/NACK/REJECT/TOUCH consume on the topic and the group
 *   QUEUE_GROUP_CONFIG  alter on the group (describe when it only reads)
 *   DLQ_LIST            a login (filtered: describe on the group or the
 *                       DLQ topic)
 *   DLQ_REDRIVE         dlq-redrive on the DLQ topic (and produce on the
 *                       target when one is named)
 *   CLUSTER_STATUS      describe on the cluster
 *   CLUSTER_FORWARD     admin on the cluster (broker to broker)
 *   ADMIN               per verb: sl_acl_check_verb
 * @thread loop
 */
#include "broker/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "broker/auth.h"
#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/cluster_users_propose.h"
#include "broker/json.h"
#include "broker/topic.h"
#include "cluster/meta.h"
#include "protocol/api.h"

typedef sl_acl_rule rule;

static const struct {
    int op;
    const char *name;
} op_names[] = {
    {SL_OP_PRODUCE, "produce"}, {SL_OP_CONSUME, "consume"},
    {SL_OP_CREATE, "create"},   {SL_OP_DELETE, "delete"},
    {SL_OP_ALTER, "alter"},     {SL_OP_DESCRIBE, "describe"},
    {SL_OP_COMMIT, "commit"},   {SL_OP_DLQ_REDRIVE, "dlq-redrive"},
    {SL_OP_ADMIN, "admin"},
};
#define NOPS (sizeof(op_names) / sizeof(op_names[0]))

const char *sl_acl_op_name(int op)
{
    for (size_t i = 0; i < NOPS; i++)
        if (op_names[i].op == op)
            return op_names[i].name;
    return "?";
}

static const char *kind_name(int kind)
{
    return kind == SL_RES_TOPIC   ? "topic"
           : kind == SL_RES_GROUP ? "group"
                                  : "cluster";
}

int sl_acl_topic_protected(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && !strcmp(name + n - 4, ".DLQ")) ||
           !strncmp(name, "stomp-tmp-", 10) || !strncmp(name, "__", 2);
}

/* ---- store --------------------------------------------------------------- */

sl_err sl_acl_load(sl_broker *b, char *err, size_t errlen)
{
    sqlite3 *db = sl_auth_db(b);
    sqlite3_stmt *st = NULL;
    char *m = NULL;
    free(b->acl_rules);
    b->acl_rules = NULL;
    b->nacl_rules = 0;
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS acls("
                     " user TEXT NOT NULL, kind INTEGER NOT NULL,"
                     " pattern TEXT NOT NULL, prefix INTEGER NOT NULL,"
                     " ops INTEGER NOT NULL,"
                     " PRIMARY KEY(user, kind, pattern, prefix))",
                     NULL, NULL, &m) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", m ? m : "?");
        sqlite3_free(m);
        return SL_ERR_STORAGE;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT user, kind, pattern, prefix, ops FROM acls "
                           "ORDER BY user, kind, pattern, prefix",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(db));
        return SL_ERR_STORAGE;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        rule *nv = realloc(b->acl_rules, (b->nacl_rules + 1) * sizeof(*nv)), *r;
        if (!nv) {
            sqlite3_finalize(st);
            return SL_ERR_NOMEM;
        }
        b->acl_rules = nv;
        r = &b->acl_rules[b->nacl_rules++];
        memset(r, 0, sizeof(*r));
        snprintf(r->user, sizeof(r->user), "%s",
                 (const char *)sqlite3_column_text(st, 0));
        r->kind = sqlite3_column_int(st, 1);
        snprintf(r->pattern, sizeof(r->pattern), "%s",
                 (const char *)sqlite3_column_text(st, 2));
        r->prefix = sqlite3_column_int(st, 3);
        r->ops = sqlite3_column_int(st, 4);
    }
    sqlite3_finalize(st);
    return SL_OK;
}

void sl_acl_free(sl_broker *b)
{
    free(b->acl_rules);
    b->acl_rules = NULL;
    b->nacl_rules = 0;
}

/* Set the ops of one rule (0 deletes it), then reload. */
static sl_err rule_put(sl_broker *b, const rule *r, char *err, size_t errlen)
{
    sqlite3 *db = sl_auth_db(b);
    sqlite3_stmt *st = NULL;
    int src;
    const char *sql =
        r->ops ? "INSERT OR REPLACE INTO acls(user, kind, pattern, prefix, "
                 "ops) VALUES(?,?,?,?,?)"
               : "DELETE FROM acls WHERE user = ? AND kind = ? AND "
                 "pattern = ? AND prefix = ?";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(db));
        return SL_ERR_STORAGE;
    }
    sqlite3_bind_text(st, 1, r->user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, r->kind);
    sqlite3_bind_text(st, 3, r->pattern, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, r->prefix);
    if (r->ops)
        sqlite3_bind_int(st, 5, r->ops);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(db));
        return SL_ERR_STORAGE;
    }
    return sl_acl_load(b, err, errlen);
}

sl_err sl_acl_store_replace(sl_broker *b, const sl_acl_rule *rules, size_t n,
                            char *err, size_t errlen)
{
    sqlite3 *db = sl_auth_db(b);
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(db, "DELETE FROM acls", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO acls(user, kind, pattern, "
                           "prefix, ops) VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(db));
        return SL_ERR_STORAGE;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, rules[i].user, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, rules[i].kind);
        sqlite3_bind_text(st, 3, rules[i].pattern, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, rules[i].prefix);
        sqlite3_bind_int(st, 5, rules[i].ops);
        if (sqlite3_step(st) != SQLITE_DONE) {
            snprintf(err, errlen, "meta.db: %s", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            return SL_ERR_STORAGE;
        }
    }
    sqlite3_finalize(st);
    return SL_OK;
}

void sl_acl_rules(const sl_broker *b, sl_acl_rule *out, size_t *n)
{
    if (out && b->nacl_rules)
        memcpy(out, b->acl_rules, b->nacl_rules * sizeof(*out));
    *n = b->nacl_rules;
}

static rule *rule_find(sl_broker *b, const rule *k)
{
    for (size_t i = 0; i < b->nacl_rules; i++) {
        rule *r = &b->acl_rules[i];
        if (!strcmp(r->user, k->user) && r->kind == k->kind &&
            !strcmp(r->pattern, k->pattern) && r->prefix == k->prefix)
            return r;
    }
    return NULL;
}

void sl_acl_forget_user(sl_broker *b, const char *user)
{
    sqlite3 *db = sl_auth_db(b);
    sqlite3_stmt *st = NULL;
    char err[200];
    if (sqlite3_prepare_v2(db, "DELETE FROM acls WHERE user = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    sl_acl_load(b, err, sizeof(err));
}

sl_err sl_acl_grant_all_topics(sl_broker *b, const char *user, char *err,
                               size_t errlen)
{
    rule r;
    sl_err rc;
    memset(&r, 0, sizeof(r));
    snprintf(r.user, sizeof(r.user), "%s", user);
    r.prefix = 1;
    r.ops = SL_OP_ALL & ~SL_OP_ADMIN;
    r.kind = SL_RES_TOPIC;
    rc = rule_put(b, &r, err, errlen);
    if (rc == SL_OK) {
        r.kind = SL_RES_GROUP;
        rc = rule_put(b, &r, err, errlen);
    }
    return rc;
}

/* ---- checks -------------------------------------------------------------- */

static int matches(const rule *r, int kind, const char *name)
{
    if (r->kind != kind)
        return 0;
    if (kind == SL_RES_CLUSTER)
        return 1;
    if (r->prefix)
        return !strncmp(name, r->pattern, strlen(r->pattern));
    return !strcmp(name, r->pattern);
}

int sl_acl_allowed(sl_broker *b, const char *user, int admin, int op, int kind,
                   const char *name)
{
    int prot;
    if (!sl_auth_enabled(b) || admin)
        return 1;
    if (!user)
        return 0;
    if (!name)
        name = "";
    prot = kind == SL_RES_TOPIC && op == SL_OP_PRODUCE &&
           sl_acl_topic_protected(name);
    for (size_t i = 0; i < b->nacl_rules; i++) {
        const rule *r = &b->acl_rules[i];
        if (strcmp(r->user, user))
            continue;
        if (r->kind == SL_RES_CLUSTER && (r->ops & SL_OP_ADMIN))
            return 1; /* admin on the cluster: everything */
        if (kind == SL_RES_TOPIC && op == SL_OP_CREATE &&
            r->kind == SL_RES_CLUSTER && (r->ops & SL_OP_CREATE))
            return 1;
        if (!matches(r, kind, name))
            continue;
        if (prot && r->prefix)
            continue;
        if ((r->ops & op) || (op == SL_OP_DESCRIBE && r->ops))
            return 1;
    }
    return 0;
}

sl_err sl_acl_need(sl_broker *b, const char *user, int admin, int op, int kind,
                   const char *name, char *msg, size_t msglen)
{
    if (sl_acl_allowed(b, user, admin, op, kind, name))
        return SL_OK;
    if (kind == SL_RES_CLUSTER)
        snprintf(msg, msglen,
                 "AUTHORIZATION_FAILED: user '%s' may not %s on the cluster",
                 user ? user : "", sl_acl_op_name(op));
    else
        snprintf(msg, msglen,
                 "AUTHORIZATION_FAILED: user '%s' may not %s on %s '%.200s'%s",
                 user ? user : "", sl_acl_op_name(op), kind_name(kind),
                 name ? name : "",
                 kind == SL_RES_TOPIC && op == SL_OP_PRODUCE && name &&
                         sl_acl_topic_protected(name)
                     ? " (a dead-letter or internal topic: needs a rule "
                       "naming it literally)"
                     : "");
    return SL_ERR_AUTHORIZATION_FAILED;
}

int sl_acl_may_list(sl_broker *b, const char *user, int admin, int kind,
                    const char *name)
{
    return sl_acl_allowed(b, user, admin, SL_OP_DESCRIBE, SL_RES_CLUSTER,
                          NULL) ||
           sl_acl_allowed(b, user, admin, SL_OP_DESCRIBE, kind, name);
}

int sl_acl_conn_may_list(sl_broker *b, sl_conn *c, int kind, const char *name)
{
    return sl_acl_may_list(b, sl_auth_conn_user(c), sl_auth_conn_admin(c), kind,
                           name);
}

int sl_acl_may_list_all_conns(sl_broker *b, const char *user, int admin)
{
    return sl_acl_allowed(b, user, admin, SL_OP_DESCRIBE, SL_RES_CLUSTER, NULL);
}

/* The check of one (op, kind, sl_str name). */
typedef struct ck {
    sl_broker *b;
    const char *user;
    int admin;
    char *msg;
    size_t msglen;
    sl_err rc;
} ck;

static void need(ck *k, int op, int kind, sl_str s)
{
    char name[256];
    size_t n = s.p ? (s.len < sizeof(name) ? s.len : sizeof(name) - 1) : 0;
    if (k->rc != SL_OK)
        return;
    if (n)
        memcpy(name, s.p, n);
    name[n] = 0;
    k->rc =
        sl_acl_need(k->b, k->user, k->admin, op, kind, name, k->msg, k->msglen);
}

static void need_c(ck *k, int op, int kind, const char *name)
{
    need(k, op, kind, sl_str_c(name ? name : ""));
}

/* produce to a topic that does not exist auto-creates it: create too */
static void need_produce(ck *k, sl_str t)
{
    char name[256];
    size_t n = t.p ? (t.len < sizeof(name) ? t.len : sizeof(name) - 1) : 0;
    need(k, SL_OP_PRODUCE, SL_RES_TOPIC, t);
    if (k->rc != SL_OK || !k->b->cfg.auto_create_topics)
        return;
    if (n)
        memcpy(name, t.p, n);
    name[n] = 0;
    if (!sl_topics_find(k->b->topics, name))
        need(k, SL_OP_CREATE, SL_RES_TOPIC, t);
}

sl_err sl_acl_check_request(sl_broker *b, sl_conn *c, const sl_req *req,
                            char *msg, size_t msglen)
{
    ck k = {b, sl_auth_conn_user(c), sl_auth_conn_admin(c), msg, msglen, SL_OK};
    sl_arena a;
    sl_err drc = SL_OK;
    if (!sl_auth_enabled(b) || k.admin)
        return SL_OK;
    sl_arena_init(&a);
    sl_arena_set_limit(&a, 8 * req->len + 4096);
    switch (req->api_key) {
    case SL_API_METADATA: {
        sl_metadata_req q;
        if ((drc = sl_metadata_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK) {
            /* every topic (ntopics 0): filtered by the handler */
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_DESCRIBE, SL_RES_TOPIC, q.topics[i]);
        }
        break;
    }
    case SL_API_LIST_TOPICS:
    case SL_API_GROUP_LIST:
    case SL_API_DLQ_LIST:
        break; /* listings: filtered by the handler (sl_acl_may_list) */
    case SL_API_CLUSTER_STATUS:
        need_c(&k, SL_OP_DESCRIBE, SL_RES_CLUSTER, NULL);
        break;
    case SL_API_CLUSTER_FORWARD:
        need_c(&k, SL_OP_ADMIN, SL_RES_CLUSTER, NULL);
        break;
    case SL_API_CREATE_TOPICS: {
        sl_create_topics_req q;
        if ((drc = sl_create_topics_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK)
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_CREATE, SL_RES_TOPIC, q.topics[i].name);
        break;
    }
    case SL_API_DELETE_TOPICS: {
        sl_delete_topics_req q;
        if ((drc = sl_delete_topics_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK)
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_DELETE, SL_RES_TOPIC, q.topics[i]);
        break;
    }
    case SL_API_PRODUCE: {
        sl_produce_req q;
        if ((drc = sl_produce_req_decode((uint8_t *)req->body, req->len, &a,
                                         &q)) == SL_OK)
            for (uint32_t i = 0; i < q.ntopics; i++)
                need_produce(&k, q.topics[i].topic);
        break;
    }
    case SL_API_FETCH: {
        sl_fetch_req q;
        if ((drc = sl_fetch_req_decode(req->body, req->len, &a, &q)) == SL_OK)
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_CONSUME, SL_RES_TOPIC, q.topics[i].topic);
        break;
    }
    case SL_API_LIST_OFFSETS: {
        sl_list_offsets_req q;
        if ((drc = sl_list_offsets_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK)
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_DESCRIBE, SL_RES_TOPIC, q.topics[i].topic);
        break;
    }
    case SL_API_GROUP_JOIN: {
        sl_group_join_req q;
        if ((drc = sl_group_join_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK) {
            need(&k, SL_OP_CONSUME, SL_RES_GROUP, q.group);
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_CONSUME, SL_RES_TOPIC, q.topics[i]);
        }
        break;
    }
    case SL_API_GROUP_HEARTBEAT:
    case SL_API_GROUP_LEAVE: {
        sl_group_member_req q;
        if ((drc = sl_group_member_req_decode(req->api_key, req->body, req->len,
                                              &q)) == SL_OK)
            need(&k, SL_OP_CONSUME, SL_RES_GROUP, q.group);
        break;
    }
    case SL_API_OFFSET_COMMIT: {
        sl_offset_commit_req q;
        if ((drc = sl_offset_commit_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK) {
            need(&k, SL_OP_COMMIT, SL_RES_GROUP, q.group);
            for (uint32_t i = 0; i < q.ntopics; i++)
                need(&k, SL_OP_CONSUME, SL_RES_TOPIC, q.topics[i].topic);
        }
        break;
    }
    case SL_API_OFFSET_FETCH: {
        sl_offset_fetch_req q;
        if ((drc = sl_offset_fetch_req_decode(req->body, req->len, &a, &q)) ==
            SL_OK)
            need(&k, SL_OP_DESCRIBE, SL_RES_GROUP, q.group);
        break;
    }
    case SL_API_GROUP_DESCRIBE: {
        sl_group_describe_req q;
        if ((drc = sl_group_describe_req_decode(req->body, req->len, &q)) ==
            SL_OK)
            need(&k, SL_OP_DESCRIBE, SL_RES_GROUP, q.group);
        break;
    }
    case SL_API_QUEUE_ACQUIRE: {
        sl_queue_acquire_req q;
        if ((drc = sl_queue_acquire_req_decode(req->body, req->len, &q)) ==
            SL_OK) {
            need(&k, SL_OP_CONSUME, SL_RES_TOPIC, q.topic);
            need(&k, SL_OP_CONSUME, SL_RES_GROUP, q.group);
        }
        break;
    }
    case SL_API_QUEUE_ACK:
    case SL_API_QUEUE_NACK:
    case SL_API_QUEUE_REJECT:
    case SL_API_QUEUE_TOUCH: {
        sl_qsettle_req q;
        if ((drc = sl_qsettle_req_decode(req->api_key, req->body, req->len, &a,
                                         &q)) == SL_OK) {
            need(&k, SL_OP_CONSUME, SL_RES_TOPIC, q.topic);
            need(&k, SL_OP_CONSUME, SL_RES_GROUP, q.group);
        }
        break;
    }
    case SL_API_QUEUE_GROUP_CONFIG: {
        sl_queue_group_config_req q;
        if ((drc = sl_queue_group_config_req_decode(req->body, req->len, &a,
                                                    &q)) == SL_OK)
            need(&k, q.mode == SL_QGC_DESCRIBE ? SL_OP_DESCRIBE : SL_OP_ALTER,
                 SL_RES_GROUP, q.group);
        break;
    }
    case SL_API_DLQ_REDRIVE: {
        sl_dlq_redrive_req q;
        if ((drc = sl_dlq_redrive_req_decode(req->body, req->len, &q)) ==
            SL_OK) {
            need(&k, SL_OP_DLQ_REDRIVE, SL_RES_TOPIC, q.dlq_topic);
            if (q.target_topic.p)
                need(&k, SL_OP_PRODUCE, SL_RES_TOPIC, q.target_topic);
        }
        break;
    }
    case SL_API_ADMIN:
        break; /* per verb, in admin.c (sl_acl_check_verb) */
    default:
        break;
    }
    sl_arena_fini(&a);
    /* A body that does not decode is the handler's to refuse (MALFORMED). */
    (void)drc;
    return k.rc;
}

/* ---- admin verbs
 * -------------------------------------------------------------- */

static const struct verb_need {
    const char *verb;
    int op, kind;
    const char *arg; /* the argument naming the resource */
} verb_needs[] = {
    {"version", 0, 0, NULL},
    {"status", SL_OP_DESCRIBE, SL_RES_CLUSTER, NULL},
    /* listings: a login; admin.c filters them (sl_acl_may_list) */
    {"topics", 0, 0, NULL},
    {"groups", 0, 0, NULL},
    {"queues", 0, 0, NULL},
    {"dlq.list", 0, 0, NULL},
    {"connections", 0, 0, NULL},
    {"topic", SL_OP_DESCRIBE, SL_RES_TOPIC, "topic"},
    {"topic.create", SL_OP_CREATE, SL_RES_TOPIC, "topic"},
    {"topic.delete", SL_OP_DELETE, SL_RES_TOPIC, "topic"},
    {"topic.alter", SL_OP_ALTER, SL_RES_TOPIC, "topic"},
    {"topic.add_partitions", SL_OP_ALTER, SL_RES_TOPIC, "topic"},
    {"group", SL_OP_DESCRIBE, SL_RES_GROUP, "group"},
    {"group.delete", SL_OP_DELETE, SL_RES_GROUP, "group"},
    {"group.reset", SL_OP_ALTER, SL_RES_GROUP, "group"},
    {"queue.purge", SL_OP_ALTER, SL_RES_GROUP, "group"},
    {"queue.peek", SL_OP_DESCRIBE, SL_RES_GROUP, "group"},
    {"dlq.show", SL_OP_CONSUME, SL_RES_TOPIC, "dlq"},
    {"dlq.purge", SL_OP_ALTER, SL_RES_TOPIC, "dlq"},
    {"dlq.redrive", SL_OP_DLQ_REDRIVE, SL_RES_TOPIC, "dlq"},
};

sl_err sl_acl_check_verb(sl_broker *b, const char *user, int admin,
                         const char *verb, size_t n, const char *const *keys,
                         const char *const *values, char *msg, size_t msglen)
{
    const struct verb_need *vn = NULL;
    const char *name = NULL;
    if (!sl_auth_enabled(b) || admin)
        return SL_OK;
    if (!user) {
        snprintf(msg, msglen, "AUTHENTICATION_FAILED: %s refused: log in first",
                 verb);
        return SL_ERR_AUTHENTICATION_FAILED;
    }
    for (size_t i = 0; i < sizeof(verb_needs) / sizeof(verb_needs[0]); i++)
        if (!strcmp(verb_needs[i].verb, verb))
            vn = &verb_needs[i];
    if (!vn) /* users, acls, connection.close, whatever comes: admin */
        return sl_acl_need(b, user, admin, SL_OP_ADMIN, SL_RES_CLUSTER, NULL,
                           msg, msglen);
    if (!vn->op)
        return SL_OK;
    for (size_t i = 0; vn->arg && i < n; i++)
        if (!strcmp(keys[i], vn->arg))
            name = values[i];
    if (!strcmp(verb, "dlq.redrive")) {
        sl_err rc =
            sl_acl_need(b, user, admin, vn->op, vn->kind, name, msg, msglen);
        for (size_t i = 0; rc == SL_OK && i < n; i++)
            if (!strcmp(keys[i], "to") && values[i][0])
                rc = sl_acl_need(b, user, admin, SL_OP_PRODUCE, SL_RES_TOPIC,
                                 values[i], msg, msglen);
        return rc;
    }
    return sl_acl_need(b, user, admin, vn->op, vn->kind, name, msg, msglen);
}

/* ---- STOMP
 * ------------------------------------------------------------------------ */

sl_err sl_acl_stomp_send(sl_broker *b, sl_conn *c, const char *topic, int temp,
                         char *why, size_t whylen)
{
    if (temp || !strncmp(topic, "stomp-tmp-", 10))
        return SL_OK; /* replies to temp queues (reply-to) */
    return sl_acl_need(b, sl_auth_conn_user(c), sl_auth_conn_admin(c),
                       SL_OP_PRODUCE, SL_RES_TOPIC, topic, why, whylen);
}

sl_err sl_acl_stomp_subscribe(sl_broker *b, sl_conn *c, const char *topic,
                              const char *group, int temp, char *why,
                              size_t whylen)
{
    const char *u = sl_auth_conn_user(c);
    int adm = sl_auth_conn_admin(c);
    sl_err rc;
    if (temp)
        return SL_OK; /* its own (another's is refused by stomp.c) */
    rc =
        sl_acl_need(b, u, adm, SL_OP_CONSUME, SL_RES_TOPIC, topic, why, whylen);
    if (rc == SL_OK && group)
        rc = sl_acl_need(b, u, adm, SL_OP_CONSUME, SL_RES_GROUP, group, why,
                         whylen);
    return rc;
}

/* ---- acl.grant, acl.revoke, acls
 * ------------------------------------------------ */

static const char *vget(size_t n, const char *const *k, const char *const *v,
                        const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k[i], key))
            return v[i];
    return NULL;
}

/* "produce,consume" or "all" -> bits; -1 naming the bad word in msg. */
static int parse_ops(const char *s, char *msg, size_t msglen)
{
    int ops = 0;
    while (s && *s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int found = 0;
        if (len == 3 && !strncmp(s, "all", 3)) {
            ops |= SL_OP_ALL & ~SL_OP_ADMIN;
            found = 1;
        }
        for (size_t i = 0; !found && i < NOPS; i++)
            if (strlen(op_names[i].name) == len &&
                !strncmp(op_names[i].name, s, len)) {
                ops |= op_names[i].op;
                found = 1;
            }
        if (!found && len) {
            snprintf(msg, msglen,
                     "unknown operation '%.*s' (produce, consume, create, "
                     "delete, alter, describe, commit, dlq-redrive, admin, "
                     "all)",
                     (int)(len > 32 ? 32 : len), s);
            return -1;
        }
        s = e ? e + 1 : NULL;
    }
    return ops;
}

static void rule_json(sl_jw *j, const rule *r)
{
    sl_jw_obj(j);
    sl_jw_kstr(j, "user", r->user);
    sl_jw_kstr(j, "resource", kind_name(r->kind));
    if (r->kind != SL_RES_CLUSTER) {
        sl_jw_kstr(j, "pattern", r->pattern);
        sl_jw_kstr(j, "pattern_type", r->prefix ? "prefix" : "literal");
    }
    sl_jw_key(j, "ops");
    sl_jw_arr(j);
    for (size_t i = 0; i < NOPS; i++)
        if (r->ops & op_names[i].op)
            sl_jw_str(j, op_names[i].name);
    sl_jw_end(j);
    sl_jw_end(j);
}

sl_err sl_acl_verb(sl_broker *b, const char *verb, size_t n,
                   const char *const *k, const char *const *v, const char *who,
                   const char *peer, sl_jw *j, char *msg, size_t msglen,
                   sl_auth_later *later)
{
    const char *user = vget(n, k, v, "user");
    rule key, *old, nr;
    int grant, ops;
    char line[700];
    const char *res, *pat, *pre, *opss;
    sl_err rc;
    if (!strcmp(verb, "acls")) {
        sl_jw_obj(j);
        sl_jw_key(j, "acls");
        sl_jw_arr(j);
        for (size_t i = 0; i < b->nacl_rules; i++)
            if (!user || !user[0] || !strcmp(user, b->acl_rules[i].user))
                rule_json(j, &b->acl_rules[i]);
        sl_jw_end(j);
        sl_jw_end(j);
        return SL_OK;
    }
    if (strcmp(verb, "acl.grant") && strcmp(verb, "acl.revoke")) {
        snprintf(msg, msglen, "unknown admin verb '%.64s'", verb);
        return SL_ERR_INVALID_ARG;
    }
    grant = !strcmp(verb, "acl.grant");
    res = vget(n, k, v, "resource");
    pat = vget(n, k, v, "pattern");
    pre = vget(n, k, v, "prefix");
    opss = vget(n, k, v, "ops");
    memset(&key, 0, sizeof(key));
    if (!user || !sl_user_name_ok(user, strlen(user))) {
        snprintf(msg, msglen, "acl: missing or bad 'user'");
        return SL_ERR_INVALID_ARG;
    }
    if (grant && !sl_auth_user_find(b, user)) {
        snprintf(msg, msglen,
                 "acl.grant: no user '%.64s' (sluice user add "
                 "first)",
                 user);
        return SL_ERR_NOT_FOUND;
    }
    snprintf(key.user, sizeof(key.user), "%s", user);
    if (res && !strcmp(res, "topic"))
        key.kind = SL_RES_TOPIC;
    else if (res && !strcmp(res, "group"))
        key.kind = SL_RES_GROUP;
    else if (res && !strcmp(res, "cluster"))
        key.kind = SL_RES_CLUSTER;
    else {
        snprintf(msg, msglen,
                 "acl: 'resource' must be topic, group or "
                 "cluster");
        return SL_ERR_INVALID_ARG;
    }
    if (key.kind != SL_RES_CLUSTER) {
        key.prefix = pre && (!strcmp(pre, "yes") || !strcmp(pre, "true") ||
                             !strcmp(pre, "1"));
        if (!pat || (!pat[0] && !key.prefix) || strlen(pat) > 249) {
            snprintf(msg, msglen,
                     "acl: a %s rule needs a 'pattern' (1..249 "
                     "characters; an empty one only with "
                     "--prefix)",
                     res);
            return SL_ERR_INVALID_ARG;
        }
        snprintf(key.pattern, sizeof(key.pattern), "%s", pat);
    }
    ops = parse_ops(opss, msg, msglen);
    if (ops < 0)
        return SL_ERR_INVALID_ARG;
    if (grant && ops == 0) {
        snprintf(msg, msglen, "acl.grant: 'ops' lists no operation");
        return SL_ERR_INVALID_ARG;
    }
    old = rule_find(b, &key);
    nr = key;
    if (grant)
        nr.ops = (old ? old->ops : 0) | ops;
    else if (!old) {
        snprintf(msg, msglen, "acl.revoke: user '%s' has no rule on that %s",
                 user, res);
        return SL_ERR_NOT_FOUND;
    } else
        nr.ops = ops ? old->ops & ~ops : 0;
    snprintf(line, sizeof(line),
             "%s '%s' from %s: %s %s on %s %s%s for "
             "user '%s'",
             who ? "user" : "client", who ? who : "anonymous",
             peer ? peer : "?", grant ? "granted" : "revoked",
             opss && opss[0] ? opss : "every operation", res,
             key.kind == SL_RES_CLUSTER ? "" : key.pattern,
             key.prefix ? " (prefix)" : "", user);
    if (sl_cluster_users_on(b)) {
        /* the log applies the change to the rule as it is then */
        char missing[200];
        sl_wb wb;
        if (grant)
            snprintf(missing, sizeof(missing),
                     "acl.grant: no user '%.64s' (sluice user add first)",
                     user);
        else
            snprintf(missing, sizeof(missing),
                     "acl.revoke: user '%s' has no rule on that %s", user, res);
        sl_wb_init(&wb, 128);
        sl_meta_enc_acl_change(&wb, user, key.kind, key.pattern, key.prefix,
                               grant ? (uint32_t)ops : 0,
                               grant ? 0 : (uint32_t)(ops ? ops : SL_OP_ALL));
        rc = sl_cluster_users_propose(b, &wb, line, NULL, missing, later, msg,
                                      msglen);
        sl_wb_fini(&wb);
    } else {
        rc = rule_put(b, &nr, msg, msglen);
        if (rc == SL_OK)
            sl_auth_audit("%s", line);
    }
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(j);
    sl_jw_key(j, "rule");
    rule_json(j, &nr);
    sl_jw_end(j);
    return SL_OK;
}
