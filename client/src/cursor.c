/*
 * cursor.c - record iteration over received batches. See cursor.h.
 */
#include "client/src/cursor.h"

#include <string.h>

#include "protocol/api.h"

void sl_cursor_init(sl_cursor *cu, sl_chunk *chunk, const uint8_t *rec,
                    size_t len)
{
    memset(cu, 0, sizeof(*cu));
    cu->chunk = chunk;
    sl_chunk_ref(chunk);
    cu->rec = rec;
    cu->len = len;
    cu->bad_first = cu->bad_last = -1;
}

static void end_batch(sl_cursor *cu)
{
    if (cu->in_batch)
        sl_batch_iter_fini(&cu->it);
    cu->in_batch = 0;
    sl_chunk_unref(cu->dchunk);
    cu->dchunk = NULL;
}

int sl_cursor_next(sl_cursor *cu, sl_record *r, sl_chunk **owner, sl_err *err)
{
    size_t boff, blen;
    sl_batch_hdr h;
    sl_err e;

    *err = SL_OK;
    for (;;) {
        if (!cu->in_batch) {
            if (cu->off >= cu->len)
                return 0;
            if (!sl_records_next(cu->rec, cu->len, &cu->off, &boff, &blen,
                                 &e)) {
                cu->off = cu->len;
                *err = e;
                return 0;
            }
            e = sl_batch_verify(cu->rec + boff, blen, &h);
            if (e == SL_OK)
                e = sl_batch_iter_init(&cu->it, cu->rec + boff, blen);
            if (e != SL_OK) {
                sl_batch_iter_fini(&cu->it);
                if (sl_batch_hdr_decode(cu->rec + boff, blen, &h) == SL_OK) {
                    cu->bad_first = h.base_offset;
                    cu->bad_last = sl_batch_last_offset(&h);
                }
                cu->off = cu->len;
                *err = e;
                return 0;
            }
            cu->in_batch = 1;
            if (cu->it.owned) {
                cu->dchunk = sl_chunk_adopt(cu->it.owned, cu->it.owned_cap);
                cu->it.owned = NULL;
                cu->it.owned_cap = 0;
                if (!cu->dchunk) {
                    end_batch(cu);
                    cu->off = cu->len;
                    *err = SL_ERR_NOMEM;
                    return 0;
                }
            }
        }
        if (sl_batch_iter_next(&cu->it, r, &e) == 1) {
            *owner = cu->dchunk ? cu->dchunk : cu->chunk;
            return 1;
        }
        if (e != SL_OK) {
            cu->bad_first = cu->it.hdr.base_offset;
            cu->bad_last = sl_batch_last_offset(&cu->it.hdr);
        }
        end_batch(cu);
        if (e != SL_OK) {
            cu->off = cu->len;
            *err = e;
            return 0;
        }
    }
}

void sl_cursor_fini(sl_cursor *cu)
{
    end_batch(cu);
    sl_chunk_unref(cu->chunk);
    cu->chunk = NULL;
}

int64_t sl_records_end(const uint8_t *rec, size_t len)
{
    size_t off = 0, boff, blen;
    sl_batch_hdr h;
    int64_t end = -1;
    while (sl_records_next(rec, len, &off, &boff, &blen, NULL)) {
        if (sl_batch_hdr_decode(rec + boff, blen, &h) == SL_OK)
            end = sl_batch_last_offset(&h) + 1;
    }
    return end;
}
