/*
 * types.h - the names the broker object (broker.h) shares with the
 * modules' headers, declared without pulling any module in. broker.h
 * includes this instead of binary.h, conn.h, ops.h and topic.h, so a
 * module whose .c includes broker.h is not in an include cycle with it
 * (scripts/include-cycles.py, run by scripts/test.sh).
 */
#ifndef SL_BROKER_TYPES_H
#define SL_BROKER_TYPES_H

#include <stdint.h>

typedef struct sl_broker sl_broker; /* broker.h */
typedef struct sl_conn sl_conn;     /* conn.h */
typedef struct sl_reply sl_reply;   /* conn.h */
typedef struct sl_req sl_req;       /* binary.h */
typedef struct sl_topics sl_topics; /* topic.h */
typedef struct sl_tpart sl_tpart;   /* topic.h */
struct sl_conn_ops;                 /* conn.h */
struct sl_fetch_req;                /* protocol/api.h */

/* The listeners a protocol can be attached to (conn.h). */
enum sl_listener {
    SL_LISTENER_BINARY = 0,
    SL_LISTENER_STOMP = 1,
    SL_LISTENER_STOMP_WS = 2,
    SL_LISTENER_HTTP = 3,
    SL_LISTENER_N = 4
};

/* A binary-protocol request handler (binary.h, sl_binary_register). */
typedef void (*sl_binary_handler)(sl_broker *b, sl_conn *c, const sl_req *req,
                                  sl_reply *r);

/* An append hook (ops.h, sl_ops_on_append). */
typedef void (*sl_ops_append_fn)(void *arg, const char *topic,
                                 int32_t partition, int64_t end_offset);

#endif
