/*
 * segment_index.c - the sparse offset and time indexes of a segment
 * (.index, .timeindex): kept in memory, written in batches, loaded and
 * checked at open, and the lookups and header walks that use them. The
 * .log format is at the top of segment.c.
 *
 * INDEX FILES
 * ===========
 * batches except after compaction, which leaves gaps (never renumbers).
 *
 * .index is an array of 8-byte entries, appended while the log grows:
 *
 *     u32 rel   base offset of a batch minus the segment's base
 *     u32 pos   byte position of that batch in .log
 *
 * An entry is added for the batch that starts after at least
 * index_interval_bytes (default 4096) were appended since the previous
 * entry (the first batch, at position 0, never needs one). Both fields
 * strictly increase. To find offset X: binary search the last entry with
 * rel <= X - base, then walk batch headers from its pos (at most about
 * index_interval_bytes plus one batch).
 *
 * .timeindex is an array of 12-byte entries:
 *
 *     i64 ts    max_timestamp of every batch up to this point
 *     u32 rel   base offset (relative) of the batch holding ts
 *
 * written together with an index entry whenever the segment's max
 * timestamp grew since the last time entry. Both fields strictly increase.
 * To find the first record with timestamp >= T: skip segments whose max
 * timestamp < T, then start at the rel of the last entry with ts < T (or the
 * segment start) and scan records.
 *
 * Indexes are derived data: they can always be rebuilt from .log, so they
 * are never fsynced on the append path (only once when their segment is
 * rolled) and recovery distrusts them.
 */
#include "storage/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- in-memory index arrays ----------------------------------------- */

static int idx_push(sl_seg *s, uint32_t rel, uint32_t pos)
{
    if (s->nidx == s->cidx) {
        size_t c = s->cidx ? s->cidx * 2 : 64;
        sl_idx_ent *n = realloc(s->idx, c * sizeof(*n));
        if (!n)
            return -1;
        s->idx = n;
        s->cidx = c;
    }
    s->idx[s->nidx].rel = rel;
    s->idx[s->nidx].pos = pos;
    s->nidx++;
    return 0;
}

static int tidx_push(sl_seg *s, int64_t ts, uint32_t rel)
{
    if (s->ntidx == s->ctidx) {
        size_t c = s->ctidx ? s->ctidx * 2 : 64;
        sl_tidx_ent *n = realloc(s->tidx, c * sizeof(*n));
        if (!n)
            return -1;
        s->tidx = n;
        s->ctidx = c;
    }
    s->tidx[s->ntidx].ts = ts;
    s->tidx[s->ntidx].rel = rel;
    s->ntidx++;
    return 0;
}

static void enc_idx(uint8_t *b, const sl_idx_ent *e)
{
    sl_put_u32(b, e->rel);
    sl_put_u32(b + 4, e->pos);
}

static void enc_tidx(uint8_t *b, const sl_tidx_ent *e)
{
    sl_put_u64(b, (uint64_t)e->ts);
    sl_put_u32(b + 8, e->rel);
}

static sl_err write_index_due(sl_seg *s, int force);

/* Rewrite both index files from memory (recovery, compaction). */
sl_err sl_seg__write_indexes(sl_seg *s)
{
    size_t n1 = s->nidx * SL_IDX_ENTRY, n2 = s->ntidx * SL_TIDX_ENTRY;
    uint8_t *b;
    sl_err rc;
    int own = sl_seg__idx_acquire(s);
    if (own < 0)
        return SL_ESYS(errno);
    b = malloc((n1 > n2 ? n1 : n2) + 1);
    if (!b) {
        if (own)
            sl_seg_idx_close(s);
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->nidx; i++)
        enc_idx(b + i * SL_IDX_ENTRY, &s->idx[i]);
    rc = sl_fs_pwrite_all(s->idx_fd, b, n1, 0);
    if (rc == SL_OK && sl_fs->ftruncate(s->idx_fd, (off_t)n1) != 0)
        rc = SL_ESYS(errno);
    if (rc != SL_OK)
        goto out;
    for (size_t i = 0; i < s->ntidx; i++)
        enc_tidx(b + i * SL_TIDX_ENTRY, &s->tidx[i]);
    rc = sl_fs_pwrite_all(s->tidx_fd, b, n2, 0);
    if (rc == SL_OK && sl_fs->ftruncate(s->tidx_fd, (off_t)n2) != 0)
        rc = SL_ESYS(errno);
    if (rc == SL_OK) {
        s->idx_disk = s->nidx;
        s->tidx_disk = s->ntidx;
    }
out:
    free(b);
    if (own)
        sl_seg_idx_close(s);
    return rc;
}

int sl_seg_index_due(const sl_seg *s)
{
    return (s->nidx > s->idx_disk && s->nidx - s->idx_disk >= SL_IDX_BATCH) ||
           (s->ntidx > s->tidx_disk && s->ntidx - s->tidx_disk >= SL_IDX_BATCH);
}

sl_err sl_seg_write_index(sl_seg *s, int force)
{
    int own;
    sl_err rc;
    if (force ? s->nidx <= s->idx_disk && s->ntidx <= s->tidx_disk
              : !sl_seg_index_due(s))
        return SL_OK; /* nothing due: no need to open the files */
    own = sl_seg__idx_acquire(s);
    if (own < 0)
        return SL_ESYS(errno);
    rc = write_index_due(s, force);
    if (own)
        sl_seg_idx_close(s);
    return rc;
}

static sl_err write_index_due(sl_seg *s, int force)
{
    uint8_t b[SL_IDX_BATCH * SL_TIDX_ENTRY];
    sl_err rc;
    while (s->nidx > s->idx_disk &&
           (force || s->nidx - s->idx_disk >= SL_IDX_BATCH)) {
        size_t n = s->nidx - s->idx_disk;
        if (n > SL_IDX_BATCH)
            n = SL_IDX_BATCH;
        for (size_t i = 0; i < n; i++)
            enc_idx(b + i * SL_IDX_ENTRY, &s->idx[s->idx_disk + i]);
        rc = sl_fs_pwrite_all(s->idx_fd, b, n * SL_IDX_ENTRY,
                              (off_t)(s->idx_disk * SL_IDX_ENTRY));
        if (rc != SL_OK)
            return rc;
        s->idx_disk += n;
    }
    while (s->ntidx > s->tidx_disk &&
           (force || s->ntidx - s->tidx_disk >= SL_IDX_BATCH)) {
        size_t n = s->ntidx - s->tidx_disk;
        if (n > SL_IDX_BATCH)
            n = SL_IDX_BATCH;
        for (size_t i = 0; i < n; i++)
            enc_tidx(b + i * SL_TIDX_ENTRY, &s->tidx[s->tidx_disk + i]);
        rc = sl_fs_pwrite_all(s->tidx_fd, b, n * SL_TIDX_ENTRY,
                              (off_t)(s->tidx_disk * SL_TIDX_ENTRY));
        if (rc != SL_OK)
            return rc;
        s->tidx_disk += n;
    }
    return SL_OK;
}

/* Read a whole small file; *buf malloc'ed (caller frees). */
static sl_err slurp(int fd, uint8_t **buf, size_t *len)
{
    struct stat st;
    uint8_t *b;
    if (fstat(fd, &st) != 0)
        return SL_ESYS(errno);
    b = malloc((size_t)st.st_size + 1);
    if (!b)
        return SL_ERR_NOMEM;
    sl_err rc = sl_fs_pread_all(fd, b, (size_t)st.st_size, 0, NULL);
    if (rc != SL_OK) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = (size_t)st.st_size;
    return SL_OK;
}

/* Load .index; 0 = plausible, -1 = must be rebuilt. */
int sl_seg__load_index(sl_seg *s, uint64_t fsize)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int ok = -1;
    if (slurp(s->idx_fd, &b, &len) != SL_OK)
        return -1;
    if (len % SL_IDX_ENTRY)
        goto out;
    for (size_t i = 0; i < len / SL_IDX_ENTRY; i++) {
        uint32_t rel = sl_get_u32(b + i * SL_IDX_ENTRY);
        uint32_t pos = sl_get_u32(b + i * SL_IDX_ENTRY + 4);
        if (pos == 0 || pos >= fsize)
            goto out;
        if (s->nidx &&
            (rel <= s->idx[s->nidx - 1].rel || pos <= s->idx[s->nidx - 1].pos))
            goto out;
        if (idx_push(s, rel, pos) != 0)
            goto out;
    }
    ok = 0;
out:
    free(b);
    return ok;
}

int sl_seg__load_tindex(sl_seg *s)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int ok = -1;
    if (slurp(s->tidx_fd, &b, &len) != SL_OK)
        return -1;
    if (len % SL_TIDX_ENTRY)
        goto out;
    for (size_t i = 0; i < len / SL_TIDX_ENTRY; i++) {
        int64_t ts = (int64_t)sl_get_u64(b + i * SL_TIDX_ENTRY);
        uint32_t rel = sl_get_u32(b + i * SL_TIDX_ENTRY + 8);
        if (s->ntidx && (ts <= s->tidx[s->ntidx - 1].ts ||
                         rel <= s->tidx[s->ntidx - 1].rel))
            goto out;
        if (tidx_push(s, ts, rel) != 0)
            goto out;
    }
    ok = 0;
out:
    free(b);
    return ok;
}

/* Does the batch header at pos carry base offset `want`? */
int sl_seg__hdr_matches(sl_seg *s, uint64_t pos, int64_t want, uint64_t fsize)
{
    uint8_t h[SL_BATCH_HDR_SIZE];
    sl_batch_hdr bh;
    if (pos + SL_BATCH_HDR_SIZE > fsize)
        return 0;
    if (sl_fs_pread_all(sl_seg_fd(s), h, sizeof(h), (off_t)pos, NULL) != SL_OK)
        return 0;
    if (sl_batch_hdr_decode(h, sizeof(h), &bh) != SL_OK)
        return 0;
    return bh.base_offset == want;
}

/* Index bookkeeping shared by append and scan: before adding the batch at
 * pos (base offset boff, header h), add index/time entries if due.
 * Returns 1 when entries were added to memory. */
int sl_seg__index_step(sl_seg *s, uint64_t pos, const sl_batch_hdr *h,
                       uint32_t interval, int allow_entry)
{
    int added = 0;
    if (h->max_timestamp > s->max_ts) {
        s->max_ts = h->max_timestamp;
        s->max_ts_off = h->base_offset;
    }
    if (allow_entry && pos > 0 && s->idx_bytes >= interval) {
        if (idx_push(s, (uint32_t)(h->base_offset - s->base), (uint32_t)pos) ==
            0)
            added = 1;
        if (s->max_ts != INT64_MIN &&
            (s->ntidx == 0 || s->max_ts > s->tidx[s->ntidx - 1].ts))
            if (tidx_push(s, s->max_ts, (uint32_t)(s->max_ts_off - s->base)) ==
                0)
                added = 1;
        s->idx_bytes = 0;
    }
    s->idx_bytes += sl_batch_size(h);
    return added;
}

uint64_t sl_seg_lookup(const sl_seg *s, int64_t offset)
{
    size_t lo = 0, hi = s->nidx;
    if (offset <= s->base || s->nidx == 0)
        return 0;
    if (offset - s->base > (int64_t)UINT32_MAX)
        return s->idx[s->nidx - 1].pos;
    uint32_t rel = (uint32_t)(offset - s->base);
    /* last entry with idx.rel <= rel */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->idx[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}

void sl_walker_init(sl_walker *w, sl_seg *s, uint8_t *buf, size_t cap)
{
    w->s = s;
    w->buf = buf;
    w->cap = cap;
    w->wpos = 0;
    w->wlen = 0;
}

sl_err sl_walker_hdr(sl_walker *w, uint64_t pos, int64_t *base, uint32_t *size,
                     int64_t *last)
{
    const uint8_t *h;
    uint64_t sz;
    if (pos + SL_WALK_HDR > w->s->size)
        return SL_ERR_CORRUPT;
    if (pos < w->wpos || pos + SL_WALK_HDR > w->wpos + w->wlen) {
        size_t want = w->cap;
        size_t got = 0;
        sl_err rc;
        if (w->s->size - pos < want)
            want = (size_t)(w->s->size - pos);
        rc = sl_fs_pread_all(sl_seg_fd(w->s), w->buf, want, (off_t)pos, &got);
        if (rc != SL_OK && rc != SL_ERR_MALFORMED)
            return rc;
        w->wpos = pos;
        w->wlen = got;
        if (got < SL_WALK_HDR)
            return SL_ERR_CORRUPT;
    }
    h = w->buf + (pos - w->wpos);
    sz = 12 + (uint64_t)sl_get_u32(h + SL_BATCH_LEN_OFF);
    if (h[16] != SL_BATCH_MAGIC || sz < SL_BATCH_HDR_SIZE ||
        sz > w->s->size - pos || !sl_batch_raw_offsets(h, base, last))
        return SL_ERR_CORRUPT;
    *size = (uint32_t)sz;
    return SL_OK;
}

sl_err sl_seg_find(sl_seg *s, int64_t offset, uint8_t *scratch,
                   uint64_t *pos_out)
{
    sl_walker w;
    uint64_t pos = sl_seg_lookup(s, offset), prev = pos;
    int resynced = 0;
    sl_walker_init(&w, s, scratch, SL_SCRATCH_SIZE);
    while (pos < s->size) {
        int64_t b, l;
        uint32_t sz;
        sl_err rc = sl_walker_hdr(&w, pos, &b, &sz, &l);
        /* A header whose offsets cannot belong here (below the segment's
         * base; the walker already refuses a negative record count) is
         * damaged: its length is not to be trusted either (the fuzz input
         * regress-find-negative-base: it jumped over the intact batches
         * after it). */
        if (rc == SL_OK && b < s->base)
            rc = SL_ERR_CORRUPT;
        if (rc == SL_ERR_CORRUPT && !resynced) {
            /* A damaged header here, or a damaged length in the one
             * before that sent us here: walk on from the first intact
             * batch after the previous one (the reader of the damaged
             * range reports it). Once per lookup. */
            int64_t nb;
            uint64_t np = sl_seg_next_good(s, prev, s->base, INT64_MAX, &nb);
            resynced = 1;
            if (nb >= 0 && nb <= offset) {
                pos = prev = np;
                w.wlen = 0;
                continue;
            }
            pos = prev; /* offset is in the damaged range: stop at it */
            break;
        }
        if (rc != SL_OK)
            return rc;
        if (l >= offset)
            break;
        prev = pos;
        pos += sz;
    }
    *pos_out = pos;
    return SL_OK;
}
