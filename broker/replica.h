/*
 * replica.h - the replica fetcher (broker/replica.c): followers copy their
 * partitions' batches from the leaders the metadata image names.
 * @thread loop
 */
#ifndef SL_BROKER_REPLICA_H
#define SL_BROKER_REPLICA_H

#include <stdint.h>

#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/err.h"

typedef struct sl_broker sl_broker;
typedef struct sl_replicas sl_replicas;

/* image is borrowed for the fetchers' life (the loop's copy). */
sl_err sl_replicas_new(sl_broker *b, int32_t self, const sl_meta *image,
                       sl_replicas **out);
void sl_replicas_free(sl_replicas *rs); /* accepts NULL */
/* The image changed: start, retarget or drop fetchers; re-evaluate the
 * high-water marks of the partitions this node leads. */
void sl_replicas_update(sl_replicas *rs);
/* A topic was deleted: forget what the leader's side knew of it (a topic
 * created again under its name starts afresh). */
void sl_replicas_topic_deleted(sl_replicas *rs, const char *topic);
/* The leader's side: a follower's FETCH (version 2) reported its log ends
 * and durable offsets. */
void sl_replicas_on_fetch(sl_replicas *rs, sl_fetch_req *q);
/* min-insync-replicas of t (its override or the broker's), capped to the
 * replication factor of its partition p (sl_meta_part_rf). */
int32_t sl_replicas_min_insync(const sl_broker *b, const sl_mi_topic *t,
                               int32_t p);
/* For /metrics: bytes this node's fetchers appended since it started, and
 * those of them copied for reassignments adding this node (rs may be
 * NULL: 0). */
void sl_replicas_bytes(const sl_replicas *rs, int64_t *fetched,
                       int64_t *copied);
/* An observer's copy of topic/p (broker/observer.c) starts again, empty,
 * at offset `at`: its records are deleted, the next fetch asks from `at`,
 * and the answer to a fetch already in flight is not applied. why says
 * why (logged). */
void sl_replicas_copy_restart(sl_replicas *rs, const char *topic, int32_t p,
                              int64_t at, const char *why);
/* Is this node's log of topic/p being checked against a new leader
 * (replica_apply.c)? Then no segment of it may be deleted meanwhile. */
int sl_replicas_checking(sl_replicas *rs, const char *topic, int32_t p);

#endif
