/*
 * visible.c - the one visibility rule (visible.h).
 *
 * A record is visible below
 *
 *     min(high-water mark, X)
 *
 * where the high-water mark is the cluster's (sl_part_read_cap; a single
 * node has none) and X depends on the topic's flush policy and the
 * broker's queue-dispatch:
 *
 *   flush=always, queue-dispatch written (the default): the log end, as
 *     soon as the record is appended, while its fdatasync runs (RabbitMQ
 *     and ActiveMQ dispatch while they store; Kafka's consumers read up to
 *     the high-water mark whatever was fsynced). State that refers to such
 *     a record (a queue ack, a stream group's offset commit) is committed
 *     to groups.db only after the flusher round that covers it
 *     (sl_flusher_token), so a power loss that takes the record back
 *     takes that state back too. A partition whose fdatasync failed
 *     (sl_part_failed) falls back to its durable offset.
 *   flush=always, queue-dispatch durable: the durable offset: no reader
 *     ever sees a record that a power loss could take back.
 *   flush=interval: the log end for stream readers (FETCH, STOMP /topic)
 *     with queue-dispatch written, else the durable offset. Queue groups
 *     always wait for the interval fsync: the flusher's coverage tokens
 *     exist for flush=always appends only, so nothing would hold an ack
 *     of such a record back until the record is durable.
 *   flush=never: the log end (nothing is ever fsynced on purpose).
 *
 * Readers are woken when X moves for them (broker/ops.c: after the append
 * when it is the log end, after the flusher round when it is the durable
 * offset, when the high-water mark rises).
 */
#include "groups/visible.h"

int64_t sl_visible_offset(const sl_part *p, int written, sl_visible_mode mode)
{
    int flush = sl_part_get_cfg(p)->flush;
    int64_t v, cap = sl_part_read_cap(p);

    if (flush == SL_FLUSH_NEVER)
        v = sl_part_end_offset(p);
    else if (!written)
        v = sl_part_durable_offset(p);
    else if (flush == SL_FLUSH_ALWAYS)
        v = sl_part_failed(p) ? sl_part_durable_offset(p)
                              : sl_part_end_offset(p);
    else /* interval */
        v = mode == SL_VISIBLE_STREAM ? sl_part_end_offset(p)
                                      : sl_part_durable_offset(p);
    return v < cap ? v : cap;
}
