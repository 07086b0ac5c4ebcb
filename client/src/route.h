/*
 * route.h - where a handle sends each partition's requests (docs/cluster.md
 * section 5): the bootstrap connection, one connection per broker of a
 * cluster, and a cache of each partition's leader from METADATA version 2.
 *
 * A single node (the metadata names no brokers) and topics the cluster
 * image does not hold are served by whatever node the bootstrap
 * connection reached: every request goes there, as before. In a cluster,
 * a partition's requests go to its leader over a connection to that
 * broker's registered address, made on first use.
 *
 * TLS (security.protocol=ssl): a TLS client must not use a broker's
 * plaintext address. Brokers register their --tls-listen address too,
 * which METADATA version 3 hands out (as Kafka's advertised listeners),
 * so a TLS router asks for version 3 and adds each broker at its TLS
 * address: one bootstrap address is enough. It also makes one broker
 * entry per bootstrap address, its id unknown (0) until a METADATA reply
 * on it names the answering node (or a broker's TLS address is that
 * entry's); a refresh asks the entries whose id is still unknown too.
 * Against brokers without version 3 (SL_ERR_UNSUPPORTED_VERSION: asked
 * with version 2 from then on), or a broker without a TLS listener, a
 * leader whose TLS address is not in the bootstrap list is reached
 * through the bootstrap connection as before (NOT_LEADER, retried within
 * delivery.timeout.ms). Every connection uses the same TLS settings
 * (conn.c).
 *
 * The router does no retrying itself: its owner (producer.c, consumer.c)
 * marks the cache stale on NOT_LEADER, NOT_ENOUGH_REPLICAS or a lost
 * connection and calls sl_cl_route_refresh, which asks any reachable
 * broker (the bootstrap connection first, then the known brokers not
 * marked bad) and is rate-limited to one attempt per retry.backoff.ms.
 * Not thread-safe: the owning handle's mutex serialises every call.
 */
#ifndef SL_CLIENT_ROUTE_H
#define SL_CLIENT_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "client/src/conn.h"
#include "client/src/internal.h"
#include "protocol/api.h"

typedef struct sl_cl_bnode {
    int32_t id;   /* 0: a TLS bootstrap entry not identified yet */
    int boot_idx; /* TLS: its bootstrap address (cfg->boot_*) */
    char host[256], port[16];
    sl_cl_conn conn;   /* fixed to host:port */
    int64_t bad_until; /* failed lately: not asked for metadata before */
} sl_cl_bnode;

typedef struct sl_cl_rtopic {
    char *name;
    int32_t nparts;
    int32_t *leader; /* per partition: node id, SL_META_LEADER_ANY/_NONE */
    int32_t *epoch;
} sl_cl_rtopic;

/* Called for a reply frame that is not the metadata reply (a produce
 * reply on the same connection, say). The callee does not keep fr. */
typedef void (*sl_cl_stray_fn)(void *arg, sl_cl_conn *c, sl_chunk *fr);
/* Called when a connection is found dead while asking for metadata, so
 * the owner fails (and requeues) what it had in flight there. */
typedef void (*sl_cl_lost_fn)(void *arg, sl_cl_conn *c, sl_err rc);

typedef struct sl_cl_router {
    const sl_cl_cfg *cfg;
    sl_cl_conn boot; /* the bootstrap list (conn.c) */
    sl_cl_bnode **nodes;
    size_t nnodes;
    int cluster; /* the last metadata named brokers */
    sl_cl_rtopic *topics;
    size_t ntopics;
    int32_t boot_id;         /* the node the bootstrap connection is on */
    int stale;               /* refresh before routing */
    int meta_v2;             /* TLS: the brokers lack METADATA version 3 */
    int64_t last_refresh_ms; /* last attempt (rate limit) */
    sl_cl_stray_fn stray;
    sl_cl_lost_fn lost;
    void *arg;
} sl_cl_router;

void sl_cl_route_init(sl_cl_router *r, const sl_cl_cfg *cfg,
                      sl_cl_stray_fn stray, sl_cl_lost_fn lost, void *arg);
void sl_cl_route_fini(sl_cl_router *r);

/*
 * Ask for METADATA (version 2) of topics (n > 0) on any reachable broker
 * and update the leader cache and the brokers. On SL_OK, *resp borrows
 * from *frame (caller unrefs) and from a. SL_ERR_DISCONNECTED when no
 * broker answered; a timeout closes the connection that did not answer.
 */
sl_err sl_cl_route_metadata(sl_cl_router *r, const char *const *topics,
                            size_t n, int64_t deadline, sl_arena *a,
                            sl_metadata_resp *resp, sl_chunk **frame);
/* Learn the brokers and leaders of a METADATA reply asked elsewhere
 * (the stream consumer asks on its own connection). */
void sl_cl_route_learn(sl_cl_router *r, const sl_metadata_resp *resp);
/* Refresh the topics the cache holds, if stale and retry.backoff.ms has
 * passed since the last attempt. SL_OK when nothing was due. */
sl_err sl_cl_route_refresh(sl_cl_router *r, sl_arena *a);

/*
 * The connection for (topic, partition): the leader's, or the bootstrap
 * one when no placement is known (single node). NULL while the partition
 * has no leader, or its leader has no address yet (the cache is then
 * marked stale). Does not connect.
 */
sl_cl_conn *sl_cl_route_conn(sl_cl_router *r, const char *topic,
                             int32_t partition);
/* A request on c failed with rc (lost connection, NOT_LEADER, ...): mark
 * the cache stale and, for a broker's connection, the broker bad for a
 * while so metadata is asked elsewhere first. */
void sl_cl_route_failed(sl_cl_router *r, sl_cl_conn *c);
/* Every connection, for callers that walk them (close, write, poll).
 * Index 0 is the bootstrap connection; NULL past the end. */
sl_cl_conn *sl_cl_route_conn_at(sl_cl_router *r, size_t i);
/* The leader epoch the cache holds for (topic, partition), -1 unknown. */
int32_t sl_cl_route_epoch(sl_cl_router *r, const char *topic,
                          int32_t partition);

/* Errors a resend may cure: a leader change or a broker that went away. */
static inline int sl_cl_retriable(sl_err e)
{
    return e == SL_ERR_NOT_LEADER || e == SL_ERR_NOT_ENOUGH_REPLICAS ||
           e == SL_ERR_DISCONNECTED || e == SL_ERR_TIMEOUT ||
           e == SL_ERR_SHUTTING_DOWN || e == SL_ERR_FENCED_LEADER_EPOCH ||
           e == SL_ERR_UNKNOWN_LEADER_EPOCH;
}

#endif
