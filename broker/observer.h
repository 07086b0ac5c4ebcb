/*
 * observer.h - a queue-group coordinator copies the partitions it holds
 * no replica of, as a non-voting observer (observer.c has the essay,
 * docs/cluster.md 5.1 "A coordinator without a replica").
 * @thread loop
 */
#ifndef SL_BROKER_OBSERVER_H
#define SL_BROKER_OBSERVER_H

#include <stdint.h>

#include "cluster/meta.h"
#include "groups/groups.h"
#include "protocol/err.h"

struct sl_broker;
typedef struct sl_observer sl_observer;

/* What the observer asks of the replica fetchers (broker/replica.c, which
 * includes this header: given as functions, wired by broker/cluster.c).
 * restart: the copy of topic/p starts again, empty, at `at`
 * (sl_replicas_copy_restart); checking: is that copy being checked
 * against a new leader (sl_replicas_checking)? */
typedef struct sl_observer_copies {
    void *arg;
    void (*restart)(void *arg, const char *topic, int32_t p, int64_t at,
                    const char *why);
    int (*checking)(void *arg, const char *topic, int32_t p);
} sl_observer_copies;

/* One request to another node, its answer handed to fn (group_route.c's
 * sl_groute_call: SL_OK, and fn runs exactly once, later, with the
 * response frame or an error; otherwise fn never runs). Wired by
 * group_state.c (sl_observer_set_call): observer.c cannot include
 * group_route.h without an include cycle. */
typedef void (*sl_observer_call_fn)(void *arg, sl_err rc, const uint8_t *frame,
                                    size_t len);
typedef sl_err (*sl_observer_call)(struct sl_broker *b, int32_t node,
                                   const uint8_t *frame, size_t len,
                                   uint32_t corr, int timeout_ms,
                                   sl_observer_call_fn fn, void *arg);

/* image: the loop's copy of the metadata (outlives o); copies: see above
 * (copied); self: this node; groups(b): the broker's groups (NULL: none
 * yet); changed(b): the set of observed topics changed, or the image did
 * (the replica fetchers follow it). */
sl_err sl_observer_new(struct sl_broker *b, const sl_meta *image,
                       const sl_observer_copies *copies, int32_t self,
                       sl_groups *(*groups)(struct sl_broker *b),
                       void (*changed)(struct sl_broker *b), sl_observer **out);
void sl_observer_free(sl_observer *o); /* accepts NULL */
/* How o asks other nodes (for start=latest groups); o NULL: nothing. */
void sl_observer_set_call(sl_observer *o, sl_observer_call call);
/* Look at the queue groups coordinated here again now (after an image
 * change; a tick does it every OBS_TICK_MS too): when the set of topics
 * they read changed, the replica fetchers follow it. */
void sl_observer_refresh(sl_observer *o);
/* Does a queue group coordinated here read topic? Then every partition
 * of it that this node holds no replica of is copied here from its
 * leader (broker/replica.c, replica_followed). o NULL (not in a
 * cluster): 0. */
int sl_observer_wants(const sl_observer *o, const char *topic);
/* The replica fetcher: a FETCH answer for a partition this node observes
 * said that its leader's log starts at start and ends at end. */
void sl_observer_leader_end(sl_observer *o, const char *topic,
                            int32_t partition, int64_t start, int64_t end);
/* May the replica fetcher delete a copy of a partition this node holds no
 * replica of, when no queue group coordinated here reads it? Only once
 * the groups coordinated here were loaded for the current image and this
 * node is not fenced (a restarted coordinator keeps its copies until it
 * knows). o NULL: 1. */
int sl_observer_settled(const sl_observer *o);
/* The groups' env.need_from: a queue group here is about to read
 * topic/partition from offset (-1: the earliest record). A copy here (an
 * observer's) that starts above it, and above the leader's log start,
 * starts again there (sl_replicas_copy_restart). */
void sl_observer_need_from(sl_observer *o, const char *topic, int32_t partition,
                           int64_t offset);
/* Where a start=latest queue group created at since_ms starts on
 * topic/partition (the groups' env.latest; observer.c says how). -1: not
 * known yet (also while o is NULL: not started, or stopped). */
int64_t sl_observer_latest(sl_observer *o, const char *topic, int32_t partition,
                           int64_t since_ms);

#endif
