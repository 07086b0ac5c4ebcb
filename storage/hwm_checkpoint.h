/*
 * hwm_checkpoint.h - the high-water mark checkpoint of a data directory
 * (storage/hwm_checkpoint.c; Kafka's replication-offset-checkpoint).
 *
 * One small text file, DATA/replication-offset-checkpoint, lists for each
 * replicated partition the high-water mark this node last knew for it.
 * The broker (broker/replica_hwm.c) decides what goes in and when; this
 * file only writes it (the durable-file recipe: fsutil.c) and reads it
 * back, checking it whole.
 *
 * Format (text, one entry a line, '\n' endings):
 *
 *   sluice-hwm 1
 *   COUNT
 *   TOPIC PARTITION HWM        (COUNT lines)
 *   crc XXXXXXXX               (CRC-32C, 8 hex digits, of every byte
 *                               before this line)
 *
 * Topic names hold no blanks (broker/topic.c). A file that does not
 * parse, whose count or CRC does not match, or that ends early is
 * refused whole (SL_ERR_CORRUPT): no entry of it is used.
 */
#ifndef SL_HWM_CHECKPOINT_H
#define SL_HWM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

#define SL_HWM_CKPT_FILE "replication-offset-checkpoint"

typedef struct sl_hwm_entry {
    char *topic; /* owned by the array's owner */
    int32_t partition;
    int64_t hwm;
} sl_hwm_entry;

/*
 * Write the n entries to path with the durable-file recipe (PATH.tmp,
 * fsync, rename, fsync of the directory): after SL_OK they survive a
 * crash; on failure the old file is unchanged. One write and two fsyncs
 * whatever n is. @thread any
 */
sl_err sl_hwm_ckpt_write(const char *path, const sl_hwm_entry *e, size_t n);
/* The bytes sl_hwm_ckpt_write would write: *buf is malloc'ed (the
 * caller frees it), *len its length; for a caller that writes them on
 * another thread (sl_fs_write_durable). SL_ERR_NOMEM. @thread any */
sl_err sl_hwm_ckpt_encode(const sl_hwm_entry *e, size_t n, char **buf,
                          size_t *len);

/*
 * Read path: *out (malloc'ed, each topic too; sl_hwm_ckpt_free) holds
 * *n entries sorted by (topic, partition). SL_ERR_NOT_FOUND when there is
 * no file, SL_ERR_CORRUPT (why in errbuf) when it is damaged,
 * SL_ESYS(errno) when it cannot be read. @thread any
 */
sl_err sl_hwm_ckpt_read(const char *path, sl_hwm_entry **out, size_t *n,
                        char *errbuf, size_t errlen);
void sl_hwm_ckpt_free(sl_hwm_entry *e, size_t n);
/* The entry of (topic, partition) in a sorted array, or NULL. */
sl_hwm_entry *sl_hwm_ckpt_find(sl_hwm_entry *e, size_t n, const char *topic,
                               int32_t partition);

#endif
