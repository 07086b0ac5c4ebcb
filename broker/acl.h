/*
 * acl.h - permissions: rules of (resource pattern, operations) per user,
 * enforced for every binary api, admin verb, HTTP route and STOMP frame
 * (acl.c has the essay and the table of what each request needs).
 * @thread loop
 */
#ifndef SL_ACL_H
#define SL_ACL_H

#include <stddef.h>

#include "broker/acl_store.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "protocol/err.h"

struct sl_req;

/* Operations (bits). */
enum {
    SL_OP_PRODUCE = 1 << 0,
    SL_OP_CONSUME = 1 << 1,
    SL_OP_CREATE = 1 << 2,
    SL_OP_DELETE = 1 << 3,
    SL_OP_ALTER = 1 << 4,
    SL_OP_DESCRIBE = 1 << 5,
    SL_OP_COMMIT = 1 << 6,
    SL_OP_DLQ_REDRIVE = 1 << 7,
    SL_OP_ADMIN = 1 << 8,
    SL_OP_ALL = (1 << 9) - 1
};

/* Resource kinds. */
enum { SL_RES_TOPIC = 1, SL_RES_GROUP = 2, SL_RES_CLUSTER = 3 };

/*
 * May user (admin: has the admin role) do op on the resource? 1/0. Always
 * 1 while authentication is off. name is the topic or group (ignored for
 * SL_RES_CLUSTER).
 */
int sl_acl_allowed(sl_broker *b, const char *user, int admin, int op, int kind,
                   const char *name);
/* As sl_acl_allowed; on refusal SL_ERR_AUTHORIZATION_FAILED with msg
 * naming the user, the operation and the resource. */
sl_err sl_acl_need(sl_broker *b, const char *user, int admin, int op, int kind,
                   const char *name, char *msg, size_t msglen);
/* Every resource a binary request touches (binary dispatch, before the
 * handler). SL_OK or SL_ERR_AUTHORIZATION_FAILED with msg. */
sl_err sl_acl_check_request(sl_broker *b, sl_conn *c, const struct sl_req *req,
                            char *msg, size_t msglen);
/* What an admin verb needs (admin.c, for the binary ADMIN api and HTTP). */
sl_err sl_acl_check_verb(sl_broker *b, const char *user, int admin,
                         const char *verb, size_t n, const char *const *keys,
                         const char *const *values, char *msg, size_t msglen);

/*
 * STOMP destinations on the same rules (stomp.c calls these; /queue/X
 * and /topic/X are topic X). SEND needs produce on the topic (a reply to
 * a temp queue, temp = 1, is always allowed); SUBSCRIBE needs consume on
 * the topic and, for a queue or a durable subscription, on the group
 * (group NULL otherwise). SL_OK or SL_ERR_AUTHORIZATION_FAILED with why
 * (the body of ERROR message:access refused).
 */
sl_err sl_acl_stomp_send(sl_broker *b, sl_conn *c, const char *topic, int temp,
                         char *why, size_t whylen);
sl_err sl_acl_stomp_subscribe(sl_broker *b, sl_conn *c, const char *topic,
                              const char *group, int temp, char *why,
                              size_t whylen);

/*
 * Listings (topic and group lists, METADATA of every topic, queues, DLQs):
 * may the user see the entry of resource (kind, name)? As in Kafka, a
 * listing is open to every logged-in user and shows what the user may
 * describe: describe (or any other operation) on the resource, or describe
 * on the cluster. Always 1 while authentication is off, and for admins.
 */
int sl_acl_may_list(sl_broker *b, const char *user, int admin, int kind,
                    const char *name);
/* The same for the user connection c logged in as. */
int sl_acl_conn_may_list(sl_broker *b, sl_conn *c, int kind, const char *name);
/* May that user see every connection (admin, or describe on the
 * cluster)? Others see their own only. */
int sl_acl_may_list_all_conns(sl_broker *b, const char *user, int admin);

/* "produce", "consume", ... for one op bit. */
const char *sl_acl_op_name(int op);
/* 1 for topics clients may not write without a rule naming them: dead
 * letter topics (NAME.DLQ), STOMP temp queues (stomp-tmp-*) and names
 * starting with "__". */
int sl_acl_topic_protected(const char *name);

#endif
