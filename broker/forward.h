/*
 * forward.h - appends this node cannot make (it does not lead the
 * partition), sent to the leader as a PRODUCE (forward.c,
 * docs/cluster.md 5.1).
 */
#ifndef SL_BROKER_FORWARD_H
#define SL_BROKER_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/meta.h"
#include "protocol/err.h"

struct sl_broker;
typedef struct sl_fwd sl_fwd;

/* The leader's answer: SL_OK once it stored the batch (acks=durable:
 * fsynced on every in-sync replica), else why not. */
typedef void (*sl_fwd_cb)(void *arg, sl_err rc);

/* image: the loop's copy of the metadata (outlives fw). */
sl_err sl_fwd_new(struct sl_broker *b, const sl_meta *image, sl_fwd **out);
/* Fails what is in flight with SL_ERR_SHUTTING_DOWN. */
void sl_fwd_free(sl_fwd *fw);

/* Send batch (one or more whole record batches, copied) to the leader of
 * topic/partition. SL_OK: cb(arg, rc) runs exactly once, later (never from
 * inside this call). Else nothing was sent: SL_ERR_NOT_LEADER (no leader
 * known now), SL_ERR_UNKNOWN_TOPIC, SL_ERR_DISCONNECTED (cannot connect),
 * SL_ERR_BUSY (too much queued towards that leader). */
sl_err sl_fwd_append(sl_fwd *fw, const char *topic, int32_t partition,
                     const uint8_t *batch, size_t len, int durable,
                     sl_fwd_cb cb, void *arg);

#endif
