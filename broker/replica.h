/*
 * replica.h - the replica fetcher (broker/replica.c): followers copy their
 * partitions' batches from the leaders the metadata image names.
 * @thread loop
 */
#ifndef SL_BROKER_REPLICA_H
#define SL_BROKER_REPLICA_H

#include <stdint.h>

#include "cluster/meta.h"
#include "protocol/err.h"

typedef struct sl_broker sl_broker;
typedef struct sl_replicas sl_replicas;

/* image is borrowed for the fetchers' life (the loop's copy). */
sl_err sl_replicas_new(sl_broker *b, int32_t self, const sl_meta *image,
                       sl_replicas **out);
void sl_replicas_free(sl_replicas *rs); /* accepts NULL */
/* The image changed: start, retarget or drop fetchers. */
void sl_replicas_update(sl_replicas *rs);

#endif
