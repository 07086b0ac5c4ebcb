/*
 * cursor.h - walk the records of a "records" field (whole batches back to
 * back) received from the broker: CRC check, zstd decompression into a
 * chunk that messages can borrow from. Not thread-safe.
 */
#ifndef SL_CLIENT_CURSOR_H
#define SL_CLIENT_CURSOR_H

#include "client/src/internal.h"
#include "protocol/batch.h"

typedef struct sl_cursor {
    sl_chunk *chunk; /* ref held: the frame holding rec */
    const uint8_t *rec;
    size_t len, off;
    int in_batch;
    sl_batch_iter it;
    sl_chunk *dchunk; /* decompressed records of the current batch */
    /* After a bad batch (sl_cursor_next's *err set): the offsets it
     * claims, when its header decoded (else both -1). */
    int64_t bad_first, bad_last;
} sl_cursor;

/* Takes a new ref on chunk. */
void sl_cursor_init(sl_cursor *cu, sl_chunk *chunk, const uint8_t *rec,
                    size_t len);
/* 1: *r is the next record, its bytes live in *owner (borrowed: take a
 * ref to keep them). 0: end (*err SL_OK), or a bad batch (*err set; the
 * rest of the field is skipped). */
int sl_cursor_next(sl_cursor *cu, sl_record *r, sl_chunk **owner, sl_err *err);
void sl_cursor_fini(sl_cursor *cu);

/* Offset after the last record of the last whole batch in rec, or -1 if
 * none (framing only, no CRC). */
int64_t sl_records_end(const uint8_t *rec, size_t len);

#endif
