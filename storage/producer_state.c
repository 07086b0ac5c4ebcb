/*
 * producer_state.c - the idempotent producer's state of a partition
 * (producer_state.h, docs/cluster.md section 4), and the partition's side
 * of it: when it is built, checked, recorded, snapshotted and thrown away.
 *
 * WHY LAZY. Most partitions are never written by an idempotent producer
 * (STOMP, the DLQ and non-idempotent clients stamp producer_id -1), and
 * the broker opens thousands of them at start. So sl_part_open builds
 * nothing: the state is built the first time it is needed, from the newest
 * snapshot and the batches after it:
 *   - the first append of a batch with producer_id >= 0 (a leader checks
 *     it, a follower records it);
 *   - a segment roll, which writes the snapshot: the log end it covers is
 *     the new segment's base, so a later build scans the active segment
 *     at most;
 * and a batch with producer_id -1 costs one comparison. The first
 * idempotent batch a partition ever gets writes a snapshot too (the state
 * below it): the files' presence tells a roll whether there is anything
 * to snapshot, so a roll of a partition that never had an idempotent
 * producer (and was not built since open) reads nothing. (If a crash
 * loses that first, unsynced snapshot and no idempotent batch arrives
 * again before the next roll, the producers of the rolled segment are
 * forgotten: their next batches get SL_ERR_UNKNOWN_PRODUCER_ID and the
 * clients move to their next epoch.)
 *
 * SNAPSHOT FILES. DIR/NNNNNNNNNNNNNNNNNNNN.producers holds the state of
 * every batch below offset NNNN (the log end when it was written). It is
 * valid while the log below NNNN is unchanged, and the log below its end
 * changes only by cutting the tail: recovery of a torn tail (sl_part_open;
 * the snapshots above the recovered end are deleted before the first
 * append or roll of the run, sl_part__idem_open, so opening a partition
 * costs nothing more) and a follower's truncation (sl_part_truncate,
 * at once). So a snapshot at or below the log end is always true. A build
 * uses the newest snapshot that reads back with a good CRC, else none.
 * The newest two are kept (the older one is the fall-back when the newer
 * reads back damaged).
 *
 * DURABILITY. The snapshot written at a segment roll uses the durable
 * recipe (fsutil.h: fsync the .tmp, rename, fsync the directory). It is
 * derived data, but the only copy of it once the segments it describes
 * are not scanned any more: if a power loss took it, a build would scan
 * the active segment only, and a producer whose last batch lies in an
 * older segment would be forgotten, so its resend of that batch would be
 * stored twice. Cost: two fsyncs of a small file per segment roll. The
 * marker written at a partition's first idempotent batch is not
 * fsynced: until the next roll every idempotent batch is in the active
 * segment, which a build scans anyway, and that roll writes a durable
 * snapshot.
 *
 * With no usable snapshot the build scans only the active segment
 * (batches in older segments were written before this code, or their
 * snapshot was lost): a producer whose last batch lies there is then
 * unknown, and its next batch (not at sequence 0) is answered
 * SL_ERR_UNKNOWN_PRODUCER_ID: the client moves to its next epoch (KIP-360).
 *
 * Format (little-endian), then a CRC-32C of everything before it:
 *   u32 magic "SLPS"  u32 version 1  i64 offset  u32 producers
 *   producers x { i64 id, i16 epoch, i32 first_seq_known, i32 last_seq,
 *                 i64 last_ms, u8 n, n x { i32 first, i32 last, i64 base } }
 * (n <= SL_PSTATE_WINDOW, oldest batch first).
 */
#include "storage/producer_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/crc32c.h"
#include "protocol/log.h"
#include "protocol/rd.h"
#include "storage/fsutil.h"
#include "storage/offset_files.h"
#include "storage/partition_int.h"

#define PS_MAGIC 0x53504c53u /* "SLPS" */
#define PS_VERSION 1
#define PS_BUCKETS_MIN 16

typedef struct pbatch {
    int32_t first, last;
    int64_t base;
} pbatch;

typedef struct pentry {
    struct pentry *next; /* bucket chain */
    int64_t id;
    int16_t epoch;
    int32_t first_known; /* first sequence seen in this epoch */
    int32_t last_seq;
    int64_t last_ms;
    uint8_t n, head; /* ring of n batches; head = oldest */
    pbatch b[SL_PSTATE_WINDOW];
} pentry;

struct sl_pstate {
    pentry **bk;
    size_t nbk, count;
};

/* ---- the table ------------------------------------------------------- */

static size_t slot(const sl_pstate *ps, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & (ps->nbk - 1);
}

sl_pstate *sl_pstate_new(void)
{
    sl_pstate *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->nbk = PS_BUCKETS_MIN;
    ps->bk = calloc(ps->nbk, sizeof(*ps->bk));
    if (!ps->bk) {
        free(ps);
        return NULL;
    }
    return ps;
}

static void clear(sl_pstate *ps)
{
    for (size_t i = 0; i < ps->nbk; i++) {
        pentry *e = ps->bk[i], *n;
        for (; e; e = n) {
            n = e->next;
            free(e);
        }
        ps->bk[i] = NULL;
    }
    ps->count = 0;
}

void sl_pstate_free(sl_pstate *ps)
{
    if (!ps)
        return;
    clear(ps);
    free(ps->bk);
    free(ps);
}

size_t sl_pstate_count(const sl_pstate *ps)
{
    return ps->count;
}

static pentry *find(const sl_pstate *ps, int64_t id)
{
    pentry *e = ps->bk[slot(ps, id)];
    while (e && e->id != id)
        e = e->next;
    return e;
}

static void unlink_entry(sl_pstate *ps, pentry *e)
{
    pentry **pp = &ps->bk[slot(ps, e->id)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    ps->count--;
    free(e);
}

static void grow(sl_pstate *ps)
{
    size_t nn = ps->nbk * 2;
    pentry **nb = calloc(nn, sizeof(*nb));
    pentry **old = ps->bk;
    size_t on = ps->nbk;
    if (!nb)
        return; /* longer chains, still correct */
    ps->bk = nb;
    ps->nbk = nn;
    for (size_t i = 0; i < on; i++) {
        pentry *e = old[i], *n;
        for (; e; e = n) {
            n = e->next;
            size_t s = slot(ps, e->id);
            e->next = nb[s];
            nb[s] = e;
        }
    }
    free(old);
}

/* Forget the producer idle the longest (the table is full). */
static void evict_oldest(sl_pstate *ps)
{
    pentry *victim = NULL;
    for (size_t i = 0; i < ps->nbk; i++)
        for (pentry *e = ps->bk[i]; e; e = e->next)
            if (!victim || e->last_ms < victim->last_ms)
                victim = e;
    if (victim)
        unlink_entry(ps, victim);
}

static pentry *insert(sl_pstate *ps, int64_t id)
{
    pentry *e;
    size_t s;
    if (ps->count >= SL_PSTATE_MAX_PRODUCERS)
        evict_oldest(ps);
    if (ps->count + 1 > ps->nbk)
        grow(ps);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->id = id;
    s = slot(ps, id);
    e->next = ps->bk[s];
    ps->bk[s] = e;
    ps->count++;
    return e;
}

static const pbatch *window_at(const pentry *e, unsigned i)
{
    return &e->b[(e->head + i) % SL_PSTATE_WINDOW];
}

/* ---- check and record ------------------------------------------------ */

static int32_t last_seq_of(const sl_batch_hdr *h)
{
    return sl_seq_add(h->base_sequence, (int64_t)h->record_count - 1);
}

sl_err sl_pstate_check(const sl_pstate *ps, const sl_batch_hdr *h, int *dup,
                       int64_t *base, int64_t *next)
{
    const pentry *e;
    int32_t first = h->base_sequence, last;

    *dup = 0;
    if (h->producer_epoch < 0 || h->base_sequence < 0)
        return SL_ERR_MALFORMED;
    e = find(ps, h->producer_id);
    if (!e) /* a new producer starts at 0; else its state was lost */
        return first == 0 ? SL_OK : SL_ERR_UNKNOWN_PRODUCER_ID;
    if (h->producer_epoch < e->epoch)
        return SL_ERR_PRODUCER_FENCED;
    if (h->producer_epoch > e->epoch)
        return first == 0 ? SL_OK : SL_ERR_OUT_OF_ORDER_SEQUENCE;
    /* The common case first: the next batch in sequence. Every batch of
     * the window lies at or below last_seq, so it is no retry (one
     * compare instead of a walk of the window per batch: a producer
     * spread over 10,000 partitions checks one batch per partition). */
    if (first == sl_seq_add(e->last_seq, 1))
        return SL_OK;
    last = last_seq_of(h);
    for (unsigned i = 0; i < e->n; i++) {
        const pbatch *b = window_at(e, i);
        if (b->first == first && b->last == last) {
            *dup = 1;
            *base = b->base;
            *next = b->base + (int64_t)h->record_count;
            return SL_OK;
        }
    }
    /* Below the window, but this producer wrote it in this epoch (every
     * sequence from first_known to last_seq was appended in order). No
     * wrap-around inside one state is considered: 2^31 batches. */
    if (e->n > 0 && first >= e->first_known && first <= last &&
        last < window_at(e, 0)->first && e->first_known <= e->last_seq) {
        *next = window_at(e, 0)->base;
        return SL_ERR_DUPLICATE_SEQUENCE;
    }
    return SL_ERR_OUT_OF_ORDER_SEQUENCE;
}

void sl_pstate_expect(sl_pstate *ps, const sl_batch_hdr *h, int64_t now_ms)
{
    pentry *e;
    if (h->producer_id < 0 || h->producer_epoch < 0 || h->base_sequence < 0 ||
        find(ps, h->producer_id))
        return;
    e = insert(ps, h->producer_id);
    if (!e)
        return;
    /* nothing of it is stored: no window, and first_known > last_seq so
     * no older sequence is ever taken for a stored one */
    e->epoch = h->producer_epoch;
    e->first_known = h->base_sequence;
    e->last_seq = sl_seq_add(h->base_sequence, -1);
    e->last_ms = now_ms;
}

void sl_pstate_record(sl_pstate *ps, const sl_batch_hdr *h, int64_t now_ms)
{
    pentry *e = find(ps, h->producer_id);
    pbatch *b;
    if (!e) {
        e = insert(ps, h->producer_id);
        if (!e)
            return;
        e->epoch = h->producer_epoch;
        e->first_known = h->base_sequence;
    } else if (e->epoch != h->producer_epoch) {
        e->epoch = h->producer_epoch;
        e->first_known = h->base_sequence;
        e->n = e->head = 0;
    }
    if (e->n < SL_PSTATE_WINDOW) {
        b = &e->b[(e->head + e->n) % SL_PSTATE_WINDOW];
        e->n++;
    } else {
        b = &e->b[e->head];
        e->head = (uint8_t)((e->head + 1) % SL_PSTATE_WINDOW);
    }
    b->first = h->base_sequence;
    b->last = last_seq_of(h);
    b->base = h->base_offset;
    e->last_seq = b->last;
    e->last_ms = now_ms;
}

sl_err sl_pstate_get(const sl_pstate *ps, int64_t pid, int16_t *epoch,
                     int32_t *last_seq)
{
    const pentry *e = find(ps, pid);
    if (!e)
        return SL_ERR_NOT_FOUND;
    *epoch = e->epoch;
    *last_seq = e->last_seq;
    return SL_OK;
}

/* ---- snapshot files -------------------------------------------------- */

static void snap_path(const char *dir, int64_t offset, char *buf, size_t n)
{
    sl_seg_path(dir, offset, SL_PSTATE_EXT, buf, n);
}

sl_err sl_pstate_write(sl_pstate *ps, const char *dir, int64_t offset,
                       int64_t now_ms, int durable)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    sl_wb wb;
    sl_err rc;
    int fd;

    for (size_t i = 0; i < ps->nbk; i++) {
        pentry *e = ps->bk[i], *n;
        for (; e; e = n) {
            n = e->next;
            if (now_ms - e->last_ms > SL_PSTATE_EXPIRE_MS)
                unlink_entry(ps, e);
        }
    }
    sl_wb_init(&wb, 64 + ps->count * 64);
    sl_wb_u32(&wb, PS_MAGIC);
    sl_wb_u32(&wb, PS_VERSION);
    sl_wb_u64(&wb, (uint64_t)offset);
    sl_wb_u32(&wb, (uint32_t)ps->count);
    for (size_t i = 0; i < ps->nbk; i++) {
        for (const pentry *e = ps->bk[i]; e; e = e->next) {
            sl_wb_u64(&wb, (uint64_t)e->id);
            sl_wb_u16(&wb, (uint16_t)e->epoch);
            sl_wb_u32(&wb, (uint32_t)e->first_known);
            sl_wb_u32(&wb, (uint32_t)e->last_seq);
            sl_wb_u64(&wb, (uint64_t)e->last_ms);
            sl_wb_u8(&wb, e->n);
            for (unsigned j = 0; j < e->n; j++) {
                const pbatch *b = window_at(e, j);
                sl_wb_u32(&wb, (uint32_t)b->first);
                sl_wb_u32(&wb, (uint32_t)b->last);
                sl_wb_u64(&wb, (uint64_t)b->base);
            }
        }
    }
    sl_wb_u32(&wb, sl_crc32c(0, wb.p, wb.len));
    if (wb.err) {
        sl_wb_fini(&wb);
        return SL_ERR_NOMEM;
    }
    snap_path(dir, offset, path, sizeof(path));
    if (durable) {
        rc = sl_fs_write_durable(path, wb.p, wb.len);
        sl_wb_fini(&wb);
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = sl_fs->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = SL_ESYS(errno);
    } else {
        rc = sl_fs_pwrite_all(fd, wb.p, wb.len, 0);
        close(fd);
        if (rc == SL_OK && rename(tmp, path) != 0)
            rc = SL_ESYS(errno);
        if (rc != SL_OK)
            unlink(tmp);
    }
    sl_wb_fini(&wb);
    return rc;
}

sl_err sl_pstate_read(sl_pstate *ps, const char *dir, int64_t offset)
{
    char path[PATH_MAX];
    struct stat st;
    uint8_t *buf = NULL;
    sl_rd rd;
    sl_err rc = SL_ERR_CORRUPT;
    uint32_t n;
    int fd;

    clear(ps);
    snap_path(dir, offset, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SL_ESYS(errno);
    if (fstat(fd, &st) != 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    if (st.st_size < 24 || st.st_size > 256ll * 1024 * 1024)
        goto out;
    buf = malloc((size_t)st.st_size);
    if (!buf) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    if (sl_fs_pread_all(fd, buf, (size_t)st.st_size, 0, NULL) != SL_OK)
        goto out;
    if (sl_crc32c(0, buf, (size_t)st.st_size - 4) !=
        sl_get_u32(buf + st.st_size - 4))
        goto out;
    sl_rd_init(&rd, buf, (size_t)st.st_size - 4);
    if (sl_rd_u32(&rd) != PS_MAGIC || sl_rd_u32(&rd) != PS_VERSION ||
        sl_rd_i64(&rd) != offset)
        goto out;
    n = sl_rd_u32(&rd);
    for (uint32_t i = 0; i < n && !rd.err; i++) {
        int64_t id = sl_rd_i64(&rd);
        pentry *e;
        if (id < 0 || find(ps, id))
            goto out;
        e = insert(ps, id);
        if (!e) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
        e->epoch = sl_rd_i16(&rd);
        e->first_known = sl_rd_i32(&rd);
        e->last_seq = sl_rd_i32(&rd);
        e->last_ms = sl_rd_i64(&rd);
        e->n = sl_rd_u8(&rd);
        if (e->n > SL_PSTATE_WINDOW)
            goto out;
        for (unsigned j = 0; j < e->n; j++) {
            e->b[j].first = sl_rd_i32(&rd);
            e->b[j].last = sl_rd_i32(&rd);
            e->b[j].base = sl_rd_i64(&rd);
        }
    }
    if (rd.err || rd.off != rd.len)
        goto out;
    rc = SL_OK;
out:
    if (rc != SL_OK)
        clear(ps);
    free(buf);
    close(fd);
    return rc;
}

/* Snapshot offsets in dir, sorted ascending (*out malloc'ed). */
static sl_err list_snaps(const char *dir, int64_t **out, size_t *nout)
{
    return sl_offset_files(dir, SL_PSTATE_EXT, NULL, NULL, out, nout);
}

/* ---- the partition's side (partition_int.h) -------------------------- */

/* Apply the producer fields of every batch in [from, p->next_offset). */
static void scan_log(sl_part *p, int64_t from, int64_t now_ms)
{
    sl_wb wb;
    int64_t off = from, end = p->next_offset;

    sl_wb_init(&wb, 0);
    while (off < end) {
        int64_t next = off;
        size_t pos = 0;
        sl_err rc;
        sl_wb_reset(&wb);
        rc = sl_part_read_buf(p, off, 1u << 20, end, &wb, &next);
        if (rc != SL_OK || next <= off) {
            /* a damaged batch (kept by recovery) in the active segment:
             * producers seen after it are still learnt on append */
            sl_log(SL_WARN, "storage",
                   "%s: producer state built up to offset %lld only: %s",
                   p->dir, (long long)off, sl_strerror(rc));
            break;
        }
        while (pos + SL_BATCH_HDR_SIZE <= wb.len) {
            sl_batch_hdr h;
            if (sl_batch_hdr_decode(wb.p + pos, wb.len - pos, &h) != SL_OK)
                break;
            if (h.producer_id >= 0 && h.producer_epoch >= 0 &&
                h.base_sequence >= 0)
                sl_pstate_record(p->ps, &h, now_ms);
            pos += sl_batch_size(&h);
        }
        off = next;
    }
    sl_wb_fini(&wb);
}

static void snapshot(sl_part *p, int64_t now_ms, int durable);

/* Build p->ps if it is not built: loads a lazily opened partition first
 * (the scan starts at its last segment). SL_ERR_NOMEM, or why the
 * partition cannot be loaded. */
static sl_err ensure(sl_part *p, int64_t now_ms)
{
    int64_t *snaps = NULL, from;
    size_t n = 0;
    sl_err lrc;

    if (p->ps)
        return SL_OK;
    lrc = sl_part__load(p);
    if (lrc != SL_OK)
        return lrc;
    from = p->segs[p->nsegs - 1]->base;
    p->ps = sl_pstate_new();
    if (!p->ps)
        return SL_ERR_NOMEM;
    if (list_snaps(p->dir, &snaps, &n) == SL_OK) {
        for (size_t i = n; i-- > 0;) {
            sl_err rc;
            if (snaps[i] > p->next_offset)
                continue; /* sl_part__idem_cut removes these */
            rc = sl_pstate_read(p->ps, p->dir, snaps[i]);
            if (rc == SL_OK) {
                from = snaps[i];
                break;
            }
            sl_log(SL_WARN, "storage",
                   "%s: producer snapshot %020lld unusable (%s); trying an "
                   "older one",
                   p->dir, (long long)snaps[i], sl_strerror(rc));
        }
    }
    free(snaps);
    if (from < sl_part_start_offset(p))
        from = sl_part_start_offset(p);
    scan_log(p, from, now_ms);
    sl_log(SL_DEBUG, "storage",
           "%s: producer state built from offset %lld: %zu producer(s)", p->dir,
           (long long)from, sl_pstate_count(p->ps));
    return SL_OK;
}

sl_err sl_part__idem_check(sl_part *p, const sl_batch_hdr *h, unsigned flags,
                           int64_t now_ms, int *dup, int64_t *base,
                           int64_t *next)
{
    sl_err rc = ensure(p, now_ms);
    *dup = 0;
    if (rc != SL_OK)
        return rc;
    if (!p->ps_files)
        /* the marker: this partition has producers (not fsynced: losing
         * it loses nothing, see SNAPSHOT FILES) */
        snapshot(p, now_ms, 0);
    if (flags & SL_PART_APPEND_REPLICA) {
        /* the leader checked it; a copy must match the leader's log */
        if (h->producer_epoch < 0 || h->base_sequence < 0)
            return SL_ERR_MALFORMED;
        return SL_OK;
    }
    return sl_pstate_check(p->ps, h, dup, base, next);
}

void sl_part__idem_record(sl_part *p, const sl_batch_hdr *h, int64_t now_ms)
{
    if (p->ps)
        sl_pstate_record(p->ps, h, now_ms);
}

/* Write the snapshot of the state at the log end; keep the newest two. */
static void snapshot(sl_part *p, int64_t now_ms, int durable)
{
    int64_t *snaps = NULL;
    size_t n = 0;
    sl_err rc = sl_pstate_write(p->ps, p->dir, p->next_offset, now_ms, durable);
    if (rc != SL_OK) {
        sl_log(SL_WARN, "storage", "%s: writing producer snapshot: %s", p->dir,
               sl_strerror(rc));
        return;
    }
    p->ps_files = 1;
    /* keep the newest two */
    if (list_snaps(p->dir, &snaps, &n) == SL_OK) {
        char path[PATH_MAX];
        for (size_t i = 0; i + 2 < n; i++) {
            snap_path(p->dir, snaps[i], path, sizeof(path));
            unlink(path);
        }
    }
    free(snaps);
}

void sl_part__idem_roll(sl_part *p, int64_t now_ms)
{
    /* No snapshot file and nothing built since open: no idempotent batch
     * was ever appended here (the first one writes a snapshot), so a
     * STOMP-only partition does not read its segment at every roll. */
    if (!p->ps_opened)
        sl_part__idem_open(p);
    if (!p->ps && !p->ps_files)
        return;
    if (ensure(p, now_ms) != SL_OK)
        return;
    if (sl_pstate_count(p->ps) == 0 && !p->ps_files)
        return;
    snapshot(p, now_ms, 1);
}

void sl_part__idem_open(sl_part *p)
{
    sl_part__idem_cut(p, p->next_offset);
}

void sl_part__idem_cut(sl_part *p, int64_t end)
{
    int64_t *snaps = NULL;
    size_t n = 0;
    char path[PATH_MAX];

    sl_pstate_free(p->ps);
    p->ps = NULL;
    p->ps_opened = 1;
    p->ps_files = 0;
    if (list_snaps(p->dir, &snaps, &n) != SL_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (snaps[i] <= end) {
            p->ps_files = 1;
            continue;
        }
        snap_path(p->dir, snaps[i], path, sizeof(path));
        if (unlink(path) != 0)
            sl_log(SL_WARN, "storage", "%s: cannot remove %s: %s", p->dir, path,
                   strerror(errno));
    }
    free(snaps);
}

void sl_part__idem_free(sl_part *p)
{
    sl_pstate_free(p->ps);
    p->ps = NULL;
}

void sl_part_idem_refused(sl_part *p, const sl_batch_hdr *h)
{
    int64_t now = sl_fs_now_ms();
    if (h->producer_id < 0)
        return;
    if (!p->ps_opened)
        sl_part__idem_open(p); /* as the first append would: before ensure */
    if (ensure(p, now) != SL_OK)
        return;
    sl_pstate_expect(p->ps, h, now);
}

sl_err sl_part_producer(sl_part *p, int64_t pid, int16_t *epoch,
                        int32_t *last_seq)
{
    sl_err rc = ensure(p, sl_fs_now_ms());
    if (rc != SL_OK)
        return rc;
    return sl_pstate_get(p->ps, pid, epoch, last_seq);
}
