/*
 * partition_read.c - reading a partition: sl_part_read (zero-copy ranges),
 * sl_part_read_buf, the record iterator, damaged batches met while
 * reading, the time index lookup, and a cluster follower's tail
 * (sl_part_batch_header, sl_part_truncate).
 *
 * Threads: the loop only (see partition.c).
 */
#include "storage/partition_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- cluster: a follower's tail (broker/replica.c) -------------------- */

static sl_err locate(sl_part *p, int64_t offset, size_t *si, uint64_t *pos);

sl_err sl_part_batch_header(sl_part *p, int64_t offset, uint8_t *hdr,
                            int64_t *base)
{
    sl_walker w;
    size_t si;
    uint64_t q;
    int64_t b, l;
    uint32_t sz;
    uint8_t *scratch;
    sl_err rc;

    if (offset < sl_part_start_offset(p) || offset >= p->next_offset)
        return SL_ERR_OFFSET_OUT_OF_RANGE;
    rc = sl_part__load(p);
    if (rc != SL_OK)
        return rc;
    rc = locate(p, offset, &si, &q);
    if (rc != SL_OK)
        return rc;
    if (!(scratch = sl_part__scratch()))
        return SL_ERR_NOMEM;
    sl_walker_init(&w, p->segs[si], scratch, SL_SCRATCH_SIZE);
    rc = sl_walker_hdr(&w, q, &b, &sz, &l);
    if (rc != SL_OK)
        return rc;
    if (b > offset || l < offset || sz < SL_BATCH_HDR_SIZE)
        return SL_ERR_CORRUPT;
    rc = sl_fs_pread_all(p->segs[si]->fd, hdr, SL_BATCH_HDR_SIZE, (off_t)q,
                         NULL);
    if (rc == SL_OK)
        *base = b;
    return rc;
}

/*
 * Cut the log back to `offset`, a batch boundary inside the active
 * segment. Like compaction (compact.c), the kept bytes go to a new file
 * installed with the durable recipe: a new inode, so journal entries of
 * the old file are void at replay, and no preallocated space keeps the cut
 * batches for recovery to find. A flusher round taken before the cut
 * publishes nothing (trunc_gen).
 */
sl_err sl_part_truncate(sl_part *p, int64_t offset)
{
    sl_seg *s;
    char path[PATH_MAX], tmp[PATH_MAX], ipath[PATH_MAX], tpath[PATH_MAX];
    uint64_t q = 0, done = 0;
    int fd = -1, idx_fd, tidx_fd;
    uint8_t *scratch = sl_part__scratch();
    sl_err rc = SL_OK;

    if (offset >= p->next_offset)
        return SL_OK;
    rc = sl_part__load(p);
    if (rc == SL_OK)
        rc = sl_part__tail_flush(p); /* the kept bytes are copied */
    if (rc == SL_OK)
        rc = sl_part__touch(p, 1);
    if (rc != SL_OK)
        return rc;
    if (!scratch)
        return SL_ERR_NOMEM;
    s = p->segs[p->nsegs - 1];
    if (offset < s->base || offset < sl_part_start_offset(p))
        return SL_ERR_INVALID_ARG; /* only the active segment */
    if (offset > s->base) {
        size_t si;
        sl_walker w;
        int64_t b, l;
        uint32_t sz;
        rc = locate(p, offset, &si, &q);
        if (rc != SL_OK)
            return rc;
        if (si + 1 != p->nsegs)
            return SL_ERR_INVALID_ARG;
        sl_walker_init(&w, s, scratch, SL_SCRATCH_SIZE);
        rc = sl_walker_hdr(&w, q, &b, &sz, &l);
        if (rc != SL_OK)
            return rc;
        if (b != offset)
            return SL_ERR_INVALID_ARG; /* not a batch boundary */
    }
    sl_seg_path(p->dir, s->base, ".log", path, sizeof(path));
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.truncated", path) >= sizeof(tmp))
        return SL_ESYS(ENAMETOOLONG);
    fd = sl_fs->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return SL_ESYS(errno);
    while (done < q && rc == SL_OK) {
        size_t n =
            q - done > SL_SCRATCH_SIZE ? SL_SCRATCH_SIZE : (size_t)(q - done);
        rc = sl_fs_pread_all(sl_seg_fd(s), scratch, n, (off_t)done, NULL);
        if (rc == SL_OK)
            rc = sl_fs_pwrite_all(fd, scratch, n, (off_t)done);
        done += n;
    }
    sl_seg_path(p->dir, s->base, ".index", ipath, sizeof(ipath));
    sl_seg_path(p->dir, s->base, ".timeindex", tpath, sizeof(tpath));
    if (rc == SL_OK) {
        unlink(ipath);
        unlink(tpath);
        rc = sl_fs_commit_durable(fd, tmp, path);
    }
    if (rc != SL_OK) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    idx_fd = sl_fs->open(ipath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    tidx_fd = sl_fs->open(tpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pthread_mutex_lock(&p->mu);
    close(s->fd);
    s->fd = fd;
    s->size = s->synced_size = s->file_synced = q;
    s->alloc_end = q;
    sl_seg_ident(s);
    s->idx_dirty = 0;
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    if (s->tidx_fd >= 0)
        close(s->tidx_fd);
    s->idx_fd = idx_fd;
    s->tidx_fd = tidx_fd;
    p->next_offset = offset;
    atomic_store(&p->end_a, offset);
    if (atomic_load(&p->durable) > offset)
        atomic_store(&p->durable, offset);
    p->trunc_gen++;
    pthread_mutex_unlock(&p->mu);
    p->gen++;
    sl_part__idem_cut(p, offset); /* rebuilt from the kept log when needed */
    {
        size_t k = 0; /* damaged ranges that were cut away are gone */
        for (size_t i = 0; i < p->nbad; i++)
            if (p->bad[i].first < offset)
                p->bad[k++] = p->bad[i];
        p->nbad = k;
    }
    if (idx_fd < 0 || tidx_fd < 0)
        return SL_ESYS(errno);
    rc = sl_seg_reindex(s, p->cfg.index_interval_bytes);
    sl_seg_idx_close(s);
    sl_log(SL_WARN, "storage", "%s: truncated to offset %lld (%llu bytes)",
           p->dir, (long long)offset, (unsigned long long)q);
    return rc;
}

/*
 * Like retention for every segment, the active one too, then a new empty
 * segment at offset 0 (sl_part_reset_at: at offset). Its file is a new inode,
 * so journal entries of the old files are void at replay; a flusher round
 * snapshotted before publishes nothing (trunc_gen) and syncs only its dups of
 * the old files.
 */
sl_err sl_part_reset(sl_part *p, uint64_t *bytes)
{
    return sl_part_reset_at(p, 0, bytes);
}

sl_err sl_part_reset_at(sl_part *p, int64_t offset, uint64_t *bytes)
{
    sl_seg *s, **old;
    size_t n;
    uint64_t total = 0;
    sl_err rc = sl_part__load(p);

    if (bytes)
        *bytes = 0;
    if (offset < 0)
        return SL_ERR_INVALID_ARG;
    if (rc == SL_OK)
        rc = sl_part__tail_flush(p); /* (then the files go) */
    if (rc == SL_OK)
        rc = sl_part__touch(p, 1);
    if (rc != SL_OK)
        return rc;
    if (p->next_offset == offset && p->nsegs == 1 && p->segs[0]->size == 0 &&
        p->segs[0]->base == offset)
        return SL_OK; /* empty already */
    if (!(old = malloc(p->nsegs * sizeof(*old))))
        return SL_ERR_NOMEM;
    n = p->nsegs;
    memcpy(old, p->segs, n * sizeof(*old));
    /* the files first: the new segment takes the first one's name */
    for (size_t i = 0; i < n; i++) {
        total += old[i]->size;
        sl_seg_unlink(p->dir, old[i]->base);
    }
    rc = sl_seg_create(p->dir, offset, -1, &s);
    if (rc != SL_OK) {
        /* the old segments serve until a restart finds the directory
         * empty: nothing is lost that was meant to stay */
        free(old);
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    p->segs[0] = s;
    p->nsegs = 1;
    p->next_offset = offset;
    atomic_store(&p->end_a, offset);
    atomic_store(&p->durable, offset);
    p->trunc_gen++;
    p->names++; /* the new file name must be synced too */
    pthread_mutex_unlock(&p->mu);
    p->gen++;
    sl_part__idem_cut(p, 0);
    p->nbad = 0;
    for (size_t i = 0; i < n; i++)
        sl_seg_free(old[i]);
    free(old);
    if (bytes)
        *bytes = total;
    sl_log(SL_INFO, "storage",
           "%s: every record dropped (%llu bytes), the log starts at %lld",
           p->dir, (unsigned long long)total, (long long)offset);
    return SL_OK;
}

/* ---- read ------------------------------------------------------------ */

/*
 * Find the first batch with last offset >= offset, starting in the segment
 * holding offset and moving on over segments whose tail was compacted
 * away. *si = segment, *pos = position (== size of the last segment when
 * nothing is there yet).
 */
static sl_err locate(sl_part *p, int64_t offset, size_t *si, uint64_t *pos)
{
    size_t i = sl_part__seg_for(p, offset);
    uint8_t *scratch = sl_part__scratch();
    sl_err frc = sl_part__tail_flush(p); /* readers see the file */
    if (frc != SL_OK)
        return frc;
    if (!scratch)
        return SL_ERR_NOMEM;
    for (;;) {
        uint64_t q;
        sl_err rc = sl_seg_find(p->segs[i], offset, scratch, &q);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "storage",
                   "%s: segment %020lld: corrupt batch header near offset "
                   "%lld",
                   p->dir, (long long)p->segs[i]->base, (long long)offset);
            return rc;
        }
        if (q < p->segs[i]->size || i + 1 == p->nsegs) {
            *si = i;
            *pos = q;
            return SL_OK;
        }
        i++;
    }
}

static sl_err check_range(const sl_part *p, int64_t offset)
{
    if (offset < sl_part_start_offset(p) || offset > p->next_offset)
        return SL_ERR_OFFSET_OUT_OF_RANGE;
    return SL_OK;
}

/*
 * Where a read at offset starts: clamps *upto to the end of the log, and
 * gives the segment and position of the first batch to return; *seg = NULL
 * when there is nothing to read (offset >= upto, or nothing written yet
 * at the tail). Out-params written only on SL_OK.
 */
static sl_err read_start(sl_part *p, int64_t offset, int64_t *upto,
                         sl_seg **seg, uint64_t *pos)
{
    int64_t end = *upto > p->next_offset ? p->next_offset : *upto;
    sl_seg *s = NULL;
    uint64_t q = 0;
    size_t si;
    sl_err rc = check_range(p, offset);

    if (rc != SL_OK)
        return rc;
    if (offset < end) {
        rc = sl_part__load(p);
        if (rc != SL_OK)
            return rc;
        rc = locate(p, offset, &si, &q);
        if (rc != SL_OK)
            return rc;
        if (q < p->segs[si]->size)
            s = p->segs[si];
    }
    *upto = end;
    *seg = s;
    *pos = q;
    return SL_OK;
}

sl_err sl_part_read(sl_part *p, int64_t offset, size_t max_bytes, int64_t upto,
                    sl_part_slice *out)
{
    sl_part_slice r = {-1, 0, 0, offset, offset};
    sl_walker w;
    uint8_t *scratch;
    sl_seg *s;
    uint64_t pos, q;
    int64_t b, l;
    uint32_t sz;
    sl_err rc = read_start(p, offset, &upto, &s, &pos);

    if (rc != SL_OK)
        return rc;
    if (!s)
        goto done;
    if (!(scratch = sl_part__scratch()))
        return SL_ERR_NOMEM;
    sl_walker_init(&w, s, scratch, SL_SCRATCH_SIZE);
    rc = sl_walker_hdr(&w, pos, &b, &sz, &l);
    if (rc != SL_OK)
        return rc;
    if (l >= upto)
        goto done;
    r.file_pos = pos;
    r.len = sz;
    r.first_offset = b;
    r.next_offset = l + 1;
    for (q = pos + sz; q < s->size; q += sz) {
        rc = sl_walker_hdr(&w, q, &b, &sz, &l);
        if (rc == SL_ERR_CORRUPT)
            break; /* damaged: the next read starts there and says so */
        if (rc != SL_OK)
            return rc;
        if (l >= upto || r.len + sz > max_bytes)
            break;
        r.len += sz;
        r.next_offset = l + 1;
    }
    r.fd = sl_part__dupfd(sl_seg_fd(s));
    if (r.fd < 0)
        return SL_ESYS(errno);
    p->rd_bytes += r.len;
    p->rd_records +=
        (uint64_t)(r.next_offset -
                   (offset > r.first_offset ? offset : r.first_offset));
done:
    *out = r;
    return SL_OK;
}

void sl_part_read_stats(const sl_part *p, uint64_t *records, uint64_t *bytes)
{
    *records = p->rd_records;
    *bytes = p->rd_bytes;
}

sl_err sl_part_read_buf(sl_part *p, int64_t offset, size_t max_bytes,
                        int64_t upto, sl_wb *out, int64_t *next_offset)
{
    size_t n, got = 0, off = 0;
    uint64_t pos;
    int64_t next = offset;
    uint8_t *d;
    sl_seg *s;
    sl_err rc = read_start(p, offset, &upto, &s, &pos);

    if (rc != SL_OK)
        return rc;
    if (!s)
        goto done;
    /* One pread of up to max_bytes straight into the caller's buffer, then
     * trim to whole batches below upto. */
    n = max_bytes;
    if (n < SL_BATCH_HDR_SIZE)
        n = SL_BATCH_HDR_SIZE;
    if (n > s->size - pos)
        n = (size_t)(s->size - pos);
    for (;;) {
        d = sl_wb_reserve(out, n);
        if (!d)
            return SL_ERR_NOMEM;
        rc = sl_fs_pread_all(sl_seg_fd(s), d, n, (off_t)pos, &got);
        if (rc != SL_OK && rc != SL_ERR_MALFORMED)
            return rc;
        if (got < 12)
            return SL_ERR_CORRUPT;
        size_t first = 12 + (size_t)sl_get_u32(d + SL_BATCH_LEN_OFF);
        if (first <= got || first > s->size - pos)
            break;
        n = first; /* the first batch alone is larger than max_bytes */
    }
    while (off + SL_WALK_HDR <= got) {
        const uint8_t *h = d + off;
        size_t sz = 12 + (size_t)sl_get_u32(h + SL_BATCH_LEN_OFF);
        int64_t first, last;
        if (h[16] != SL_BATCH_MAGIC || sz < SL_BATCH_HDR_SIZE ||
            !sl_batch_raw_offsets(h, &first, &last)) {
            if (off == 0)
                return SL_ERR_CORRUPT;
            break;
        }
        if (sz > got - off && off == 0)
            return SL_ERR_CORRUPT; /* runs past the end of the segment */
        if (sz > got - off || last >= upto || (off > 0 && off + sz > max_bytes))
            break;
        off += sz;
        next = last + 1;
    }
    out->len += off;
done:
    *next_offset = next;
    return SL_OK;
}

/* ---- iterator -------------------------------------------------------- */

/* Read-ahead of an iterator (grows to the largest batch when needed). */
#define SL_ITER_WINDOW (64u * 1024)

struct sl_part_iter {
    sl_part *p;
    int64_t want;   /* next record offset to yield */
    int positioned; /* seg_base/pos valid for gen */
    uint64_t gen;
    int64_t seg_base;
    uint64_t pos; /* next batch to load in that segment */
    uint8_t *buf; /* read-ahead window of the segment file */
    size_t cap;
    uint64_t wpos;
    size_t wlen;
    int in_batch;
    sl_batch_iter bi;
    int64_t cur_last;
};

sl_err sl_part_iter_new(sl_part *p, int64_t start, sl_part_iter **out)
{
    sl_part_iter *it;
    if (start > p->next_offset)
        return SL_ERR_OFFSET_OUT_OF_RANGE;
    it = calloc(1, sizeof(*it));
    if (!it)
        return SL_ERR_NOMEM;
    it->p = p;
    it->want = start;
    *out = it;
    return SL_OK;
}

void sl_part_iter_free(sl_part_iter *it)
{
    if (!it)
        return;
    if (it->in_batch)
        sl_batch_iter_fini(&it->bi);
    free(it->buf);
    free(it);
}

sl_err sl_part_iter_seek(sl_part_iter *it, int64_t offset)
{
    if (offset > it->p->next_offset)
        return SL_ERR_OFFSET_OUT_OF_RANGE;
    if (it->in_batch)
        sl_batch_iter_fini(&it->bi);
    it->in_batch = 0;
    it->want = offset;
    it->positioned = 0;
    return SL_OK;
}

static sl_err iter_position(sl_part_iter *it)
{
    sl_part *p = it->p;
    size_t si;
    uint64_t pos;
    sl_err rc;
    if (it->want < sl_part_start_offset(p))
        it->want = sl_part_start_offset(p); /* deleted by retention */
    rc = locate(p, it->want, &si, &pos);
    if (rc != SL_OK)
        return rc;
    it->seg_base = p->segs[si]->base;
    it->pos = pos;
    it->gen = p->gen;
    it->wlen = 0;
    it->positioned = 1;
    return SL_OK;
}

/* Make [pos, pos+n) of segment s available in the window; NULL on error. */
static const uint8_t *iter_window(sl_part_iter *it, sl_seg *s, uint64_t pos,
                                  size_t n, sl_err *rc)
{
    if (pos >= it->wpos && pos + n <= it->wpos + it->wlen)
        return it->buf + (pos - it->wpos);
    size_t want = n > SL_ITER_WINDOW ? n : SL_ITER_WINDOW;
    if (want > s->size - pos)
        want = (size_t)(s->size - pos);
    if (want < n) {
        *rc = SL_ERR_CORRUPT;
        return NULL;
    }
    if (want > it->cap) {
        uint8_t *b = realloc(it->buf, want);
        if (!b) {
            *rc = SL_ERR_NOMEM;
            return NULL;
        }
        it->buf = b;
        it->cap = want;
    }
    size_t got = 0;
    sl_part__used(it->p); /* (idle unloading) */
    /* just appended: a copy is in memory (partition.c, recent appends) */
    got = sl_part__recent_get(it->p, s, pos, n, it->buf, want);
    if (got >= n) {
        it->wpos = pos;
        it->wlen = got;
        *rc = SL_OK;
        return it->buf;
    }
    got = 0;
    *rc = sl_part__tail_flush(it->p); /* (appended since the iterator
                                          positioned) */
    if (*rc != SL_OK)
        return NULL;
    *rc = sl_fs_pread_all(sl_seg_fd(s), it->buf, want, (off_t)pos, &got);
    it->wpos = pos;
    it->wlen = got;
    if (got < n) {
        if (*rc == SL_OK || *rc == SL_ERR_MALFORMED)
            *rc = SL_ERR_CORRUPT;
        return NULL;
    }
    *rc = SL_OK;
    return it->buf;
}

/* ---- damaged batches ---------------------------------------------------- */

int sl_part__note_bad(sl_part *p, int64_t first, int64_t last, const char *why)
{
    for (size_t i = 0; i < p->nbad; i++)
        if (p->bad[i].first == first)
            return 0;
    atomic_fetch_add(&p->bad_total, 1);
    if (!p->bad)
        p->bad = calloc(SL_PART_BAD_MAX, sizeof(*p->bad));
    if (p->bad && p->nbad < SL_PART_BAD_MAX) {
        sl_part_bad *b = &p->bad[p->nbad++];
        b->first = first;
        b->last = last;
        snprintf(b->why, sizeof(b->why), "%s", why);
    }
    return 1;
}

size_t sl_part_bad_ranges(const sl_part *p, sl_part_bad *out, size_t max,
                          uint64_t *total)
{
    size_t n = p->nbad < max ? p->nbad : max;
    if (n)
        memcpy(out, p->bad, n * sizeof(*out));
    if (total)
        *total = atomic_load(&((sl_part *)p)->bad_total);
    return n;
}

/*
 * The batch at it->pos of segment si is damaged (a CRC mismatch, a header
 * that does not decode or runs past the file, records that do not parse or
 * lie about their offsets): move the iterator to the next intact batch and
 * say so, once per damaged range and partition at WARN. Offsets of the
 * damaged range are never yielded (queue groups count them as done, as
 * compaction gaps). hdr: its header when it decoded, else NULL.
 */
static void iter_skip_bad(sl_part_iter *it, size_t si, const sl_batch_hdr *hdr,
                          sl_err why)
{
    sl_part *p = it->p;
    sl_seg *s = p->segs[si];
    int64_t nb, first, last;
    /* A damaged header may lie about its offsets too: trust them only
     * inside this segment's range (else a header claiming offset 2^40
     * would make the iterator skip everything after it). */
    if (hdr && (hdr->base_offset < s->base ||
                sl_batch_last_offset(hdr) >= sl_part__seg_end(p, si)))
        hdr = NULL;
    /* Even inside the segment's range the damaged header does not decide
     * what is skipped: the CRC covers neither base_offset nor the length,
     * so a header may claim the offsets of records appended later (the
     * fuzz input regress-iter-claims-later-offsets: an append at the log
     * end was then never read) or a length that ends on a later batch or
     * at the file's end (regress-length-to-end). The range ends where the
     * next intact batch at or after the wanted offset starts; the header
     * only names the batch in the log line when it agrees. */
    int64_t next_base = si + 1 < p->nsegs ? p->segs[si + 1]->base : INT64_MAX;
    uint64_t np = sl_seg_next_good(s, it->pos, it->want, next_base, &nb);
    int64_t next = nb >= 0 ? nb : sl_part__seg_end(p, si);
    first = it->want;
    last = next - 1;
    if (hdr && hdr->base_offset <= first && sl_batch_last_offset(hdr) < next)
        first = hdr->base_offset;
    if (hdr && hdr->base_offset == first && sl_batch_last_offset(hdr) < last &&
        sl_batch_last_offset(hdr) >= it->want)
        last = sl_batch_last_offset(hdr);
    if (last < it->want) {
        /* The damage holds no offsets (the next intact batch starts at
         * the one wanted): move past the bytes, skip no record. */
        it->pos = np;
        it->wlen = 0;
        return;
    }
    char why_s[64];
    snprintf(why_s, sizeof(why_s), "%s", sl_strerror(why));
    sl_log(sl_part__note_bad(p, first, last, why_s) ? SL_WARN : SL_DEBUG,
           "storage",
           "%s: segment %020lld position %llu: skipping a bad batch, offsets "
           "%lld..%lld (%s)",
           p->dir, (long long)s->base, (unsigned long long)it->pos,
           (long long)first, (long long)last, why_s);
    it->pos = np;
    it->wlen = 0;
    if (it->want < next)
        it->want = next;
}

/* Errors that mean damaged data (skipped), not a failed read. */
static int data_error(sl_err e)
{
    return e == SL_ERR_CORRUPT || e == SL_ERR_MALFORMED ||
           e == SL_ERR_COMPRESSION || e == SL_ERR_TOO_LARGE;
}

int sl_part_iter_next(sl_part_iter *it, sl_record *rec, sl_err *err)
{
    sl_part *p = it->p;
    sl_err rc = SL_OK;

    if (err)
        *err = SL_OK;
    for (;;) {
        if (it->in_batch) {
            sl_err e = SL_OK;
            int r = sl_batch_iter_next(&it->bi, rec, &e);
            if (r == 1) {
                if (rec->offset < it->want)
                    continue;
                it->want = rec->offset + 1;
                return 1;
            }
            sl_batch_hdr bh = it->bi.hdr;
            sl_batch_iter_fini(&it->bi);
            it->in_batch = 0;
            if (e != SL_OK) {
                /* the rest of this batch is unreadable; it->pos is past it
                 * already */
                int64_t first =
                    it->want > bh.base_offset ? it->want : bh.base_offset;
                sl_log(sl_part__note_bad(p, bh.base_offset, it->cur_last,
                                         "records do not parse")
                           ? SL_WARN
                           : SL_DEBUG,
                       "storage",
                       "%s: skipping a bad batch, offsets %lld..%lld: records "
                       "from %lld do not parse (%s)",
                       p->dir, (long long)bh.base_offset,
                       (long long)it->cur_last, (long long)first,
                       sl_strerror(e));
            }
            if (it->want <= it->cur_last)
                it->want = it->cur_last + 1;
            continue;
        }
        if (!p->loaded) {
            if (it->want >= p->next_offset)
                return 0; /* caught up: no need to open the segments */
            rc = sl_part__load(p);
            if (rc != SL_OK)
                goto fail;
        }
        if (!it->positioned || it->gen != p->gen) {
            rc = iter_position(it);
            if (rc != SL_OK)
                goto fail;
        }
        ssize_t si = sl_part__seg_index(p, it->seg_base);
        if (si < 0) {
            it->positioned = 0;
            continue;
        }
        sl_seg *s = p->segs[si];
        if (it->pos >= s->size) {
            if ((size_t)si + 1 == p->nsegs) {
                /* End for now; resumes after more appends. An idle
                 * (caught-up) iterator holds no buffer. */
                free(it->buf);
                it->buf = NULL;
                it->cap = 0;
                it->wlen = 0;
                return 0;
            }
            it->seg_base = p->segs[si + 1]->base;
            it->pos = 0;
            it->wlen = 0;
            continue;
        }
        const uint8_t *b = iter_window(it, s, it->pos, 12, &rc);
        if (!b) {
            if (!data_error(rc))
                goto fail;
            iter_skip_bad(it, (size_t)si, NULL, rc);
            continue;
        }
        size_t sz = 12 + (size_t)sl_get_u32(b + SL_BATCH_LEN_OFF);
        if (sz > SL_BATCH_MAX_SIZE || sz < SL_BATCH_HDR_SIZE) {
            iter_skip_bad(it, (size_t)si, NULL, SL_ERR_CORRUPT);
            continue;
        }
        b = iter_window(it, s, it->pos, sz, &rc);
        if (!b) {
            if (!data_error(rc))
                goto fail;
            iter_skip_bad(it, (size_t)si, NULL, rc);
            continue;
        }
        sl_batch_hdr h;
        rc = sl_batch_verify(b, sz, &h);
        if (rc != SL_OK) {
            sl_batch_hdr hh;
            int hok = sl_batch_hdr_decode(b, sz, &hh) == SL_OK;
            iter_skip_bad(it, (size_t)si, hok ? &hh : NULL, rc);
            continue;
        }
        /* A whole batch with a right CRC whose offsets lie outside its
         * segment is not part of the log: recovery kept it as a damaged
         * range (its base was out of sequence). Skip it like a bad one;
         * never hand out offsets from its header. */
        if (h.base_offset < s->base ||
            sl_batch_last_offset(&h) >= sl_part__seg_end(p, (size_t)si)) {
            iter_skip_bad(it, (size_t)si, NULL, SL_ERR_CORRUPT);
            continue;
        }
        if (sl_batch_last_offset(&h) < it->want) {
            it->pos += sz;
            continue;
        }
        if (h.base_offset >= p->read_cap)
            return 0; /* above the high-water mark: resumes here later */
        rc = sl_batch_iter_init(&it->bi, b, sz);
        if (rc != SL_OK) {
            sl_batch_iter_fini(&it->bi);
            iter_skip_bad(it, (size_t)si, &h, rc);
            continue;
        }
        it->pos += sz;
        it->in_batch = 1;
        it->cur_last = sl_batch_last_offset(&h);
    }
fail:
    if (err)
        *err = rc;
    return 0;
}

/* ---- time lookup ----------------------------------------------------- */

sl_err sl_part_offset_for_time(sl_part *p, int64_t ts_ms, int64_t *out)
{
    int64_t start = -1;
    sl_err lrc = sl_part__load(p);
    if (lrc != SL_OK)
        return lrc;
    for (size_t i = 0; i < p->nsegs; i++) {
        sl_seg *s = p->segs[i];
        if (s->max_ts == INT64_MIN || s->max_ts < ts_ms)
            continue;
        start = s->base;
        /* last time entry with ts < ts_ms: every batch up to it is older */
        for (size_t lo = 0, hi = s->ntidx; lo < hi;) {
            size_t mid = (lo + hi) / 2;
            if (s->tidx[mid].ts < ts_ms) {
                start = s->base + s->tidx[mid].rel;
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        break;
    }
    if (start < 0) {
        *out = p->next_offset;
        return SL_OK;
    }
    sl_part_iter *it;
    sl_record rec;
    sl_err rc = sl_part_iter_new(p, start, &it);
    if (rc != SL_OK)
        return rc;
    int64_t found = p->next_offset;
    while (sl_part_iter_next(it, &rec, &rc)) {
        if (rec.timestamp >= ts_ms) {
            found = rec.offset;
            break;
        }
    }
    sl_part_iter_free(it);
    if (rc != SL_OK)
        return rc;
    *out = found;
    return SL_OK;
}
