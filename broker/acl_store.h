/*
 * acl_store.h - the permission rules as stored (tables of meta.db through
 * sl_auth_db): load, replace, list, the changes the user store makes, and
 * the admin verbs that edit them. Implemented by acl.c; apart from acl.h
 * because the user store (auth.c) and the cluster's replication of users
 * and rules (cluster_users.c) manage the rules, while acl.c's checks ask
 * auth.c who a connection is (scripts/include-cycles.py). @thread loop
 */
#ifndef SL_BROKER_ACL_STORE_H
#define SL_BROKER_ACL_STORE_H

#include <stddef.h>

#include "broker/types.h"
#include "protocol/err.h"

struct sl_jw;
struct sl_auth_later;

/* A rule: the user, the resource kind and pattern, the operations. */
typedef struct sl_acl_rule {
    char user[65];
    int kind;
    char pattern[256];
    int prefix;
    int ops;
} sl_acl_rule;

/* The store (tables of meta.db through sl_auth_db). */
sl_err sl_acl_load(sl_broker *b, char *err, size_t errlen);
void sl_acl_free(sl_broker *b);
/* Replace every rule by rules[0..n) in the table, inside the caller's
 * transaction (a cluster's rules come from the metadata log: cluster_users.c);
 * the caller reloads with sl_acl_load after its commit. */
sl_err sl_acl_store_replace(sl_broker *b, const sl_acl_rule *rules, size_t n,
                            char *err, size_t errlen);
/* The number of rules in *n; with out (room for that many, from a
 * first call with NULL), a copy of them too. */
void sl_acl_rules(const sl_broker *b, sl_acl_rule *out, size_t *n);
/* Remove every rule of user (user.delete). */
void sl_acl_forget_user(sl_broker *b, const char *user);
/* Every operation on every topic and group (stomp-users-file import). */
sl_err sl_acl_grant_all_topics(sl_broker *b, const char *user, char *err,
                               size_t errlen);

/* acl.grant, acl.revoke, acls (sl_auth_verb). */
sl_err sl_acl_verb(sl_broker *b, const char *verb, size_t n,
                   const char *const *keys, const char *const *values,
                   const char *who, const char *peer, struct sl_jw *j,
                   char *msg, size_t msglen, struct sl_auth_later *later);

#endif
