/*
 * broker_api.h - access to the broker object's pieces for modules
 * (implemented by broker.c; broker/ops.h includes it, so a module that
 * includes ops.h has it). Kept apart from ops.h so that broker.c, which
 * implements it, does not depend on ops.c's module, which includes
 * broker.h (scripts/include-cycles.py).
 */
#ifndef SL_BROKER_API_H
#define SL_BROKER_API_H

#include <stdint.h>

#include "broker/types.h"
#include "storage/flusher.h"

struct event_base;

/* The broker's version (ADMIN version, /metrics sluice_build_info). */
#define SL_BROKER_VERSION "0.1.0"

struct sl_config; /* broker/config.h */

/* ---- access to the broker's pieces ----------------------------------- */

struct event_base *sl_broker_base(sl_broker *b);
/*
 * Event priorities on the broker's base (libevent runs the active events
 * of the most urgent priority first, and lower ones only once none of
 * those are left). Every event is SL_PRI_NORMAL (libevent's default for
 * SL_PRI_N priorities) unless set otherwise.
 * Reading from a STOMP connection with no subscription (a producer) is
 * SL_PRI_INGRESS: the loop delivers what is stored and reads acks before
 * it takes in more, so on a busy loop producers slow down to what the
 * consumers take instead of a backlog (and its latency) growing inside
 * the broker. A publisher that the loop cannot keep up with is paced,
 * as RabbitMQ's credit flow paces one; nothing is refused or dropped.
 */
enum { SL_PRI_NORMAL = 1, SL_PRI_INGRESS = 2, SL_PRI_N = 3 }; /* 0: unused */
/* Strict priorities starve: a loop kept busy at SL_PRI_NORMAL (a binary
 * client producing or fetching flat out) would never get to the ingress
 * reads. So every read of normal priority arms the connection layer's
 * guard timer (broker/conn.c): a bounded wait instead of an unbounded
 * one. Which connections are paced: sl_conn_set_pace (conn.h). */
sl_flusher *sl_broker_flusher(sl_broker *b);
/* The parsed settings (struct sl_config in broker/config.h; one field per
 * config_table.h entry). Read-only after start-up. */
const struct sl_config *sl_broker_config(const sl_broker *b);
/* The data directory (e.g. "./sluice-data"); groups.db goes there. */
const char *sl_broker_data_dir(const sl_broker *b);
/* True once shutdown began (SIGTERM/SIGINT): finish, accept nothing new. */
int sl_broker_stopping(const sl_broker *b);
/* The HTTP listener's bound "IP:PORT" ("" before it is bound). */
const char *sl_broker_http_addr(const sl_broker *b);
/*
 * Clean shutdown for modules. On SIGTERM/SIGINT the listeners stop, every
 * stop hook runs once (fn(arg): stop reading new frames, finish what is in
 * flight, e.g. receipts waiting for durability), and the loop keeps running
 * until every binary connection is closed AND every hold is released, or
 * shutdown-timeout-ms passes. Then module fini, final flush, exit 0.
 * A module takes a hold for each connection (or piece of work) that must
 * finish first and releases it when done; holds are counted.
 */
void sl_broker_on_stop(sl_broker *b, void (*fn)(void *arg), void *arg);
void sl_broker_hold(sl_broker *b);
void sl_broker_release(sl_broker *b);
/* From a stop hook: the connections stay open and are served as before
 * (the listeners are closed) until sl_broker_stop_conns, which then
 * stops them as the stop would have (finish what is in flight, close).
 * A cluster node's controlled shutdown drains its queue groups so
 * (broker/cluster_ops.c). Take a hold as well. */
void sl_broker_keep_conns(sl_broker *b);
void sl_broker_stop_conns(sl_broker *b);

/* Fatal error in a module at start-up or run time: logs `why`, stops the
 * loop, and sluiced exits with status 1. */
void sl_broker_fail(sl_broker *b, const char *why);
/* Wall-clock milliseconds since the epoch. @thread any */
int64_t sl_now_ms(void);

#endif
