/*
 * visible.h - the one visibility rule: which records of a partition its
 * readers may see. Every reader asks it: FETCH and its long-polls, STOMP
 * /topic subscribers (broker/ops.c, sl_ops_visible_offset) and queue
 * groups handing records out (binary queue groups, STOMP /queue and
 * durable subscriptions). The broker's queue-dispatch setting decides it
 * for all of them. Essay: visible.c; for users: docs/broker.md.
 * @thread loop
 */
#ifndef SL_GROUPS_VISIBLE_H
#define SL_GROUPS_VISIBLE_H

#include <stdint.h>

#include "storage/partition.h"

/* How a reader reads. */
typedef enum sl_visible_mode {
    SL_VISIBLE_STREAM = 0, /* keeps no broker state about what it read */
    SL_VISIBLE_QUEUE = 1   /* commits state about records (acks) */
} sl_visible_mode;

/* The offset below which records of p are visible. written: queue-dispatch
 * written (1) or durable (0). */
int64_t sl_visible_offset(const sl_part *p, int written, sl_visible_mode mode);

#endif
