/*
 * partition.c - the partition log: open (lazily), unload, append,
 * retention.
 *
 * Split by concern: partition_sync.c has sl_part_sync and the shared
 * journal's side of a partition, partition_read.c reading, iterating,
 * damaged batches, time lookup and a follower's tail (truncate),
 * partition_startup.c the start-up and clean stop of a data directory
 * and the list of partitions a run changed (crash starts).
 *
 * The file formats, the fsync ordering and the recovery rule are described
 * at the top of segment.c (and in docs/storage.md).
 *
 * Threads. The loop thread owns the partition. The flusher calls only
 * sl_part_sync (sl_part__sync) and the atomic getters. What they share is
 * guarded by p->mu: the segment array (the flusher (partition_sync.c) walks it
 * to snapshot fds), each segment's fd (the open-file cache, fdcache.c, opens
 * and closes it on the loop thread under p->mu), size/synced_size/idx_dirty,
 * p->names and the tail (THE TAIL below: the flusher copies from it and
 * writes it out under p->mu). The loop reads its own data without the lock (it
 * is the only writer) and takes it only to publish a change; the flusher holds
 * it only to take a snapshot and to record the result, never across an
 * fdatasync.
 */
#include "storage/partition_int.h"

#include <dirent.h>
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
#include "storage/offset_files.h"

/* Segments modified this recently are fdatasynced on open. */
#define SL_RECENT_MS (120 * 1000)

void sl_part_cfg_defaults(sl_part_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->segment_bytes = 1024ull * 1024 * 1024;
    cfg->segment_ms = 7ll * 24 * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->retention_ms = 7ll * 24 * 3600 * 1000;
    cfg->index_interval_bytes = 4096;
    cfg->flush = SL_FLUSH_ALWAYS;
    cfg->flush_interval_ms = 1000;
    cfg->compact = 0;
    cfg->delete_retention_ms = 24ll * 3600 * 1000;
    cfg->preallocate_bytes = 0;
}

static void fix_cfg(sl_part_cfg *c)
{
    /* Index positions and relative offsets are u32 (segment.c). */
    if (c->segment_bytes == 0 || c->segment_bytes > UINT32_MAX)
        c->segment_bytes = UINT32_MAX;
    if (c->index_interval_bytes == 0)
        c->index_interval_bytes = 4096;
}

void sl_part_set_cfg(sl_part *p, const sl_part_cfg *cfg)
{
    p->cfg = *cfg;
    fix_cfg(&p->cfg);
}

const sl_part_cfg *sl_part_get_cfg(const sl_part *p)
{
    return &p->cfg;
}

/* ---- the recent appends ---------------------------------------------------
 *
 * A consumer that waits for each message (issue 20, a window of one) gets
 * it from the queue group's iterator right after the append, which used
 * to pread the bytes just written (a system call and a page-cache lookup
 * per message). The first thread that appends (the loop; no other thread
 * of the broker does) keeps a copy of its last RECENT_N appends of at most
 * RECENT_MAX bytes each (64 KiB in all, whatever the number of
 * partitions), keyed by the partition's uid (never reused, unlike its
 * address), its generation (bumped when segments are deleted, truncated
 * or rewritten) and the segment's base and position; the iterator
 * (partition_read.c) copies from it what it holds. Larger appends (binary
 * batches) are not copied: their readers read ahead in large windows
 * anyway. Any other thread reads the file as before.
 */
#define RECENT_N 16
#define RECENT_MAX 4096

typedef struct recent_ent {
    uint64_t uid, gen, pos;
    int64_t seg_base;
    size_t len;
    uint8_t data[RECENT_MAX];
} recent_ent;

static recent_ent recents[RECENT_N]; /* the owner's only */
static unsigned recent_next;
static atomic_int recent_taken;
static _Thread_local int recent_mine; /* this thread is the owner */
static atomic_uint_fast64_t part_uids;

void sl_part__recent_put(sl_part *p, const sl_seg *s, uint64_t pos,
                         const uint8_t *batch, size_t len)
{
    recent_ent *e;
    if (len > RECENT_MAX)
        return;
    if (!recent_mine) {
        int no = 0;
        if (!atomic_compare_exchange_strong(&recent_taken, &no, 1))
            return;
        recent_mine = 1;
    }
    e = &recents[recent_next++ % RECENT_N];
    e->uid = p->uid;
    e->gen = p->gen;
    e->seg_base = s->base;
    e->pos = pos;
    e->len = len;
    memcpy(e->data, batch, len);
}

size_t sl_part__recent_get(const sl_part *p, const sl_seg *s, uint64_t pos,
                           size_t need, uint8_t *dst, size_t max)
{
    if (!recent_mine)
        return 0;
    for (unsigned i = 0; i < RECENT_N; i++) {
        const recent_ent *e = &recents[i];
        size_t n;
        if (e->len == 0 || e->uid != p->uid || e->gen != p->gen ||
            e->seg_base != s->base || pos < e->pos ||
            pos + need > e->pos + e->len)
            continue;
        n = (size_t)(e->pos + e->len - pos);
        if (n > max)
            n = max;
        memcpy(dst, e->data + (pos - e->pos), n);
        return n;
    }
    return 0;
}

/* ---- segment array --------------------------------------------------- */

/* ---- THE TAIL ---------------------------------------------------------
 *
 * A durable produce spread over many partitions (issue 20: 10,000
 * partitions, one record per partition per batch) used to pwrite every
 * small batch into its segment file at once, then have the flusher pread
 * it back to copy it into the shared journal (journal.c). On ext4 each
 * of those is a system call that also dirties the inode (mtime on the
 * write, atime on the read after it): measured with perf, 56% of the
 * broker's CPU in that workload. So a small append (at most
 * SL_TAIL_APPEND_MAX bytes) that a durability round will follow
 * (SL_PART_APPEND_DEFER) stays in the partition's tail: a buffer of the
 * active segment's last bytes, [tail_pos, s->size). The flusher's
 * journal copy takes them from there (sl_part__tail_copy); they reach the
 * file in one pwrite per partition when
 *  - a reader needs the file (partition_read.c and compact.c flush
 *    first: zero-copy reads and the walkers see the whole log),
 *  - the tail is full (SL_TAIL_CAP; all tails together hold at most
 *    SL_TAIL_BUDGET bytes, past that appends write through; a
 *    checkpoint gives back the buffer of a partition that took no
 *    append since the one before),
 *  - an append that is not deferred follows (file order is log order),
 *  - index entries are about to be written (they never point past the
 *    file), the segment rolls, is cut or trimmed,
 *  - the flusher syncs the partition's own files (a classic round, the
 *    journal's checkpoint: sl_part__sync_files writes the tail first, so
 *    "file_synced" still means "in the file and fdatasynced"),
 *  - the partition is unloaded or closed.
 * Acked still means in the journal or in the fdatasynced file (journal.c
 * rule 1): a kill -9 loses only tail bytes no round covered yet, which no
 * producer was told are durable; replay writes the journaled ones back.
 * The loop appends; any thread that holds p->mu may write the tail out.
 */
#define SL_TAIL_APPEND_MAX 4096u
#define SL_TAIL_CAP 4096u /* one size: no realloc, no copy as it fills */
#define SL_TAIL_BUDGET (64u * 1024u * 1024u)

static atomic_size_t tail_total; /* bytes of every tail buffer */

/* s's .log descriptor for a thread that holds p->mu (the fd only changes
 * under it, fdcache.c): its own, or, when the open-file cache closed it,
 * one opened by name (oflags) and also put in *own for the caller to
 * close. -1 with errno on failure. */
static int seg_fd_mu(const sl_part *p, const sl_seg *s, int oflags, int *own)
{
    char path[PATH_MAX];
    *own = -1;
    if (s->fd >= 0)
        return s->fd;
    sl_seg_path(p->dir, s->base, ".log", path, sizeof(path));
    *own = sl_fs->open(path, oflags | O_CLOEXEC, 0);
    return *own;
}

sl_err sl_part__tail_write(sl_part *p)
{
    int fd, own;
    sl_err rc;
    if (p->tail_len == 0)
        return SL_OK;
    /* the tail is the active segment's */
    fd = seg_fd_mu(p, p->segs[p->nsegs - 1], O_WRONLY, &own);
    rc = fd < 0
             ? SL_ESYS(errno)
             : sl_fs_pwrite_all(fd, p->tail, p->tail_len, (off_t)p->tail_pos);
    if (own >= 0)
        close(own);
    if (rc != SL_OK) {
        /* What the journal covers comes back at the next start (replay);
         * the rest was never acked. Like a failed fdatasync: refuse. */
        atomic_store(&p->failed, 1);
        sl_log(SL_ERROR, "storage",
               "%s: writing %zu appended bytes at %llu failed: %s; "
               "partition failed, refusing appends",
               p->dir, p->tail_len, (unsigned long long)p->tail_pos,
               sl_strerror(rc));
        return rc;
    }
    p->tail_len = 0;
    atomic_store_explicit(&p->tail_n, 0, memory_order_relaxed);
    return SL_OK;
}

sl_err sl_part__tail_flush(sl_part *p)
{
    sl_err rc;
    if (atomic_load_explicit(&p->tail_n, memory_order_relaxed) == 0)
        return SL_OK;
    pthread_mutex_lock(&p->mu);
    rc = sl_part__tail_write(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void sl_part__tail_release(sl_part *p, int unused_only)
{
    int used = p->tail_used;
    p->tail_used = 0;
    if (!p->tail || p->tail_len || (unused_only && used))
        return;
    atomic_fetch_sub(&tail_total, p->tail_cap);
    free(p->tail);
    p->tail = NULL;
    p->tail_cap = 0;
}

sl_err sl_part__tail_copy(sl_part *p, const sl_seg *s, uint64_t pos, size_t n,
                          uint8_t *dst)
{
    size_t infile = n, got = 0;
    sl_err rc = SL_OK;
    if (p->tail_len > 0 && s == p->segs[p->nsegs - 1] &&
        pos + n > p->tail_pos) {
        infile = pos >= p->tail_pos ? 0 : (size_t)(p->tail_pos - pos);
        memcpy(dst + infile, p->tail + (pos + infile - p->tail_pos),
               n - infile);
    }
    if (infile > 0) {
        int own, fd = seg_fd_mu(p, s, O_RDONLY, &own);
        rc = fd < 0 ? SL_ESYS(errno)
                    : sl_fs_pread_all(fd, dst, infile, (off_t)pos, &got);
        if (rc == SL_OK && got < infile)
            rc = SL_ERR_CORRUPT;
        if (own >= 0)
            close(own);
    }
    return rc;
}

/* Put batch (len bytes, header h) at the end of the active segment s
 * through the tail. Returns 0 when taken, 1 when the caller is to write
 * it through (too large for the tail, over the budget), < 0 on a failed
 * write of the tail (p failed). Holds p->mu. @thread loop */
static int tail_put(sl_part *p, sl_seg *s, const uint8_t *batch, size_t len)
{
    if (!p->tail) {
        if (atomic_load(&tail_total) + SL_TAIL_CAP > SL_TAIL_BUDGET ||
            !(p->tail = malloc(SL_TAIL_CAP)))
            return 1; /* over the budget: through */
        atomic_fetch_add(&tail_total, SL_TAIL_CAP);
        p->tail_cap = SL_TAIL_CAP;
    }
    if (p->tail_len + len > p->tail_cap) {
        /* Full: out with what it holds, then this one into the emptied
         * buffer (it fits: len <= SL_TAIL_APPEND_MAX). */
        if (sl_part__tail_write(p) != SL_OK)
            return -1;
    }
    p->tail_used = 1;
    if (p->tail_len == 0)
        p->tail_pos = s->size;
    memcpy(p->tail + p->tail_len, batch, len);
    p->tail_len += len;
    atomic_store_explicit(&p->tail_n, p->tail_len, memory_order_relaxed);
    return 0;
}

size_t sl_part__seg_for(const sl_part *p, int64_t offset)
{
    size_t lo = 0, hi = p->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

int64_t sl_part__seg_end(const sl_part *p, size_t i)
{
    return i + 1 < p->nsegs ? p->segs[i + 1]->base : p->next_offset;
}

int sl_part__dupfd(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

ssize_t sl_part__seg_index(const sl_part *p, int64_t base)
{
    size_t i = sl_part__seg_for(p, base);
    if (i < p->nsegs && p->segs[i]->base == base)
        return (ssize_t)i;
    return -1;
}

/* Append s to the array (under mu: the flusher walks it). */
static sl_err segs_push(sl_part *p, sl_seg *s)
{
    sl_err rc = SL_OK;
    pthread_mutex_lock(&p->mu);
    if (p->nsegs == p->csegs) {
        size_t c = p->csegs ? p->csegs * 2 : 8;
        sl_seg **n = realloc(p->segs, c * sizeof(*n));
        if (!n) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
        p->segs = n;
        p->csegs = c;
    }
    p->segs[p->nsegs++] = s;
    s->pmu = &p->mu; /* fdcache.c changes s->fd under it from now on */
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static sl_seg *active(const sl_part *p)
{
    return p->segs[p->nsegs - 1];
}

/* ---- open / free ----------------------------------------------------- */

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The entries of a partition directory that are not segments: leftovers
 * are removed in the listing's pass. */
static void clean_leftover(const char *dir, const char *name, void *arg)
{
    char path[PATH_MAX];
    int64_t ib;
    (void)arg;
    if (has_suffix(name, ".tmp") || has_suffix(name, ".cleaned")) {
        /* An interrupted durable write or compaction: never renamed,
         * so nothing refers to it. */
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        unlink(path);
        return;
    }
    ib = sl_offset_name(name, ".index");
    if (ib < 0)
        ib = sl_offset_name(name, ".timeindex");
    if (ib >= 0) {
        /* Index without a log (the log was deleted first). */
        struct stat st;
        sl_seg_path(dir, ib, ".log", path, sizeof(path));
        if (stat(path, &st) != 0 && errno == ENOENT) {
            snprintf(path, sizeof(path), "%s/%s", dir, name);
            unlink(path);
        }
    }
}

/* List segment bases (sorted) and clean up leftovers. */
static sl_err list_segments(const char *dir, int64_t **out, size_t *n_out)
{
    return sl_offset_files(dir, ".log", clean_leftover, NULL, out, n_out);
}

/* Does segment `base` of dir start with an intact batch (header, size,
 * CRC)? Then a bad batch at the end of the segment before it is not a torn
 * write (recovery rule, segment.c). */
static int first_batch_intact(const char *dir, int64_t base)
{
    char path[PATH_MAX];
    uint8_t hb[SL_BATCH_HDR_SIZE];
    sl_batch_hdr h;
    uint8_t *b = NULL;
    int ok = 0, fd;
    sl_seg_path(dir, base, ".log", path, sizeof(path));
    fd = sl_fs->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    if (sl_fs_pread_all(fd, hb, sizeof(hb), 0, NULL) == SL_OK &&
        sl_batch_hdr_decode(hb, sizeof(hb), &h) == SL_OK &&
        h.base_offset == base && (b = malloc(sl_batch_size(&h))) != NULL &&
        sl_fs_pread_all(fd, b, sl_batch_size(&h), 0, NULL) == SL_OK &&
        sl_batch_verify(b, sl_batch_size(&h), NULL) == SL_OK)
        ok = 1;
    free(b);
    close(fd);
    return ok;
}

/* The partition object alone: no directory access. */
static sl_err part_new(const char *dir, const sl_part_cfg *cfg, sl_part **out)
{
    sl_part *p = calloc(1, sizeof(*p));
    if (!p)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->uid = atomic_fetch_add(&part_uids, 1) + 1;
    p->low_water = -1;
    p->read_cap = INT64_MAX;
    p->cfg = *cfg;
    fix_cfg(&p->cfg);
    p->dir = strdup(dir);
    if (!p->dir) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return SL_ERR_NOMEM;
    }
    *out = p;
    return SL_OK;
}

/* Create dir (and fsync its name in the parent) when it is missing. */
static sl_err part_mkdir(sl_part *p)
{
    struct stat dst;
    sl_err rc = SL_OK;
    if (stat(p->dir, &dst) == 0) /* (not at every start: 12 mkdirs) */
        return SL_OK;
    rc = sl_fs_mkdirs(p->dir, 0755);
    /* A new flush=never partition (e.g. a STOMP temp queue) is left to the
     * OS like its data: its creation is not fsynced either. */
    if (rc == SL_OK && p->cfg.flush != SL_FLUSH_NEVER)
        rc = sl_fs_fsync_dir(p->dir, 0); /* the new name in its parent */
    if (rc != SL_OK)
        sl_log(SL_ERROR, "storage", "cannot create partition directory %s: %s",
               p->dir, sl_strerror(rc));
    return rc;
}

/*
 * LAZY PARTITIONS. Opening a partition (list the directory, open every
 * segment, load its indexes, scan its tail) costs about 140 µs of CPU and
 * keeps a descriptor, index arrays and a segment structure per segment:
 * 100,000 partitions took 17-20 s of CPU to start and 1 GiB of RSS (issue
 * 20). A partition opened with sl_part_open_lazy knows only its summary
 * (offsets, size, what retention looks at: partition.h) until a call
 * needs its bytes; part_load then does what sl_part_open always did. The
 * getters (start, end, durable offset, size) answer from the summary, a
 * read at the log end and an iterator that is caught up need nothing, so
 * metadata requests, listings, /metrics and idle consumers never load a
 * partition. Only the loop thread loads (it owns the partition); the
 * flusher and the checkpoint thread find no segment in an unloaded
 * partition's array (nsegs = 0) and have nothing to sync, since an
 * unloaded partition was never appended to in this run.
 */
static sl_err part_load(sl_part *p)
{
    int64_t *bases = NULL;
    size_t n = 0;
    int dir_changed = 0;
    /* A new flush=never partition is not fsynced on creation. */
    int lazy = p->cfg.flush == SL_FLUSH_NEVER;
    const char *dir = p->dir;
    sl_err rc = part_mkdir(p);

    if (rc != SL_OK)
        goto out;
    rc = list_segments(dir, &bases, &n);
    if (rc != SL_OK)
        goto out;
    if (n > 0)
        lazy = 0; /* an existing partition: recover as always */
    /* After a clean stop everything was synced (sl_part_shutdown_mark): a
     * partition opened from its summary has nothing to fdatasync. */
    if (p->from_summary)
        lazy = 1;

    for (size_t i = 0; i < n; i++) {
        sl_seg *s;
        int torn = 0, last = i + 1 == n;
        rc = sl_seg_open(dir, bases[i], last, last ? INT64_MAX : bases[i + 1],
                         p->cfg.index_interval_bytes,
                         !last && first_batch_intact(dir, bases[i + 1]), &s,
                         &torn);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "storage",
                   "%s: cannot recover segment %020lld: %s", dir,
                   (long long)bases[i], sl_strerror(rc));
            goto out;
        }
        rc = segs_push(p, s);
        if (rc != SL_OK) {
            sl_seg_free(s);
            goto out;
        }
        for (size_t h = 0; h < s->nholes && h < SL_SEG_HOLES_MAX; h++)
            sl_part__note_bad(p, s->holes[h].first, s->holes[h].last,
                              "corrupt batch kept by recovery");
        if (torn && !last) {
            /* See the recovery rule in segment.c: nothing after a torn
             * segment was ever acknowledged. */
            sl_log(SL_WARN, "storage",
                   "%s: segment %020lld had a torn tail; deleting %zu later "
                   "segment(s) (never acknowledged)",
                   dir, (long long)bases[i], n - i - 1);
            for (size_t j = i + 1; j < n; j++)
                sl_seg_unlink(dir, bases[j]);
            dir_changed = 1;
            /* Keep it closed: it may have compaction gaps, which the
             * strict checks of an active segment would reject on the next
             * open. Appends go to a fresh segment. */
            sl_seg *ns;
            int64_t nb = s->end;
            sl_seg_unlink(dir, nb); /* only if a later segment had it */
            rc = sl_seg_create(dir, nb, -1, &ns);
            if (rc != SL_OK)
                goto out;
            rc = segs_push(p, ns);
            if (rc != SL_OK) {
                sl_seg_free(ns);
                goto out;
            }
            break;
        }
    }
    if (p->nsegs == 0) {
        sl_seg *s;
        rc = sl_seg_create(dir, 0, -1, &s);
        if (rc != SL_OK)
            goto out;
        rc = segs_push(p, s);
        if (rc != SL_OK) {
            sl_seg_free(s);
            goto out;
        }
        /* An empty partition: nothing to fdatasync, and the new file's
         * name only has to be durable before something in it is acked,
         * which the first sync round does (names). Opening a
         * partition whose empty segment vanished creates it again. Saves
         * two of three fsyncs per partition of a new topic. */
        pthread_mutex_lock(&p->mu);
        p->names += p->cfg.flush != SL_FLUSH_NEVER;
        pthread_mutex_unlock(&p->mu);
        lazy = 1;
    }
    /* Whatever survived may still be only in the page cache (a kill -9
     * without a machine crash): make it durable before calling it so.
     * Only recently modified segments can still hold dirty pages (the
     * kernel writes them back within dirty_expire_centisecs, 30 s by
     * default), and the fdatasync of the active one flushes the device
     * cache for the rest; an fdatasync costs a device flush even on a
     * clean file, so the old segments are skipped (newest first, stop at
     * the first old one). During the broker's start-up one syncfs after
     * every partition was opened does this for all of them
     * (sl_part_startup_end): 10,000 fdatasyncs took 45-73 s. */
    if (!lazy && !sl_part__startup_deferred()) {
        long long recent = sl_fs_now_ms() - SL_RECENT_MS;
        for (size_t i = p->nsegs; i-- > 0;) {
            struct stat st;
            if (i + 1 < p->nsegs && fstat(sl_seg_fd(p->segs[i]), &st) == 0 &&
                (long long)st.st_mtim.tv_sec * 1000 +
                        st.st_mtim.tv_nsec / 1000000 <
                    recent)
                break;
            if (sl_fs->fdatasync(sl_seg_fd(p->segs[i])) != 0) {
                rc = SL_ESYS(errno);
                sl_log(SL_ERROR, "storage", "%s: fdatasync failed: %s", dir,
                       strerror(errno));
                goto out;
            }
        }
    }
    if (dir_changed && (!lazy || p->from_summary)) {
        rc = sl_fs_fsync_dir(p->dir, 1);
        if (rc != SL_OK)
            goto out;
    }
    if (p->from_summary &&
        (active(p)->end != p->sum.end || p->segs[0]->base != p->sum.start))
        sl_log(SL_WARN, "storage",
               "%s: holds offsets %lld..%lld, its summary of the last clean "
               "stop said %lld..%lld (changed while sluiced was stopped?)",
               dir, (long long)p->segs[0]->base, (long long)active(p)->end,
               (long long)p->sum.start, (long long)p->sum.end);
    pthread_mutex_lock(&p->mu);
    p->next_offset = active(p)->end;
    atomic_store(&p->end_a, p->next_offset);
    atomic_store(&p->durable, p->next_offset);
    p->loaded = 1;
    pthread_mutex_unlock(&p->mu);
    sl_log(SL_DEBUG, "storage",
           "%s: opened, %zu segment(s), offsets %lld..%lld", dir, p->nsegs,
           (long long)p->segs[0]->base, (long long)p->next_offset);
out:
    if (rc != SL_OK) {
        /* Back to nothing loaded: the segments opened so far go. */
        pthread_mutex_lock(&p->mu);
        size_t ns = p->nsegs;
        p->nsegs = 0;
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < ns; i++)
            sl_seg_free(p->segs[i]);
    }
    free(bases);
    return rc;
}

/* Idle unloading (sl_part_set_idle_unload_ms): the maintenance clock
 * (sl_part_maintain's now) stamps each use, so a use costs no clock read. */
static int64_t idle_unload_ms;
static int64_t coarse_now_ms;
static _Atomic uint64_t unloads;

void sl_part_set_idle_unload_ms(int64_t idle_ms)
{
    idle_unload_ms = idle_ms > 0 ? idle_ms : 0;
}

uint64_t sl_part_unloads(void)
{
    return atomic_load(&unloads);
}

void sl_part__used(sl_part *p)
{
    p->used_ms = coarse_now_ms;
}

int sl_part_unload(sl_part *p, int64_t now_ms)
{
    sl_seg **segs;
    size_t n;
    int ok = p->loaded && !atomic_load(&p->failed) && p->nbad == 0 &&
             atomic_load(&p->tail_n) == 0;

    /* Only what its own files hold durably: a byte only the journal
     * covers waits for the journal's checkpoint (file_synced), a rolled
     * segment for its index sync, a new name for the directory's. */
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; ok && i < p->nsegs; i++) {
        const sl_seg *s = p->segs[i];
        ok = s->synced_size >= s->size && s->file_synced >= s->size &&
             !s->idx_dirty;
    }
    ok = ok && p->names_synced >= p->names &&
         atomic_load(&p->durable) >= p->next_offset;
    pthread_mutex_unlock(&p->mu);
    if (!ok)
        return 0;
    /* The producer state goes to a snapshot at the log end (as at a
     * roll): the next build reads it and scans nothing. */
    if (p->ps)
        sl_part__idem_roll(p, now_ms);
    sl_part__idem_free(p);
    sl_part_summary_get(p, &p->sum);
    pthread_mutex_lock(&p->mu);
    segs = p->segs;
    n = p->nsegs;
    p->segs = NULL;
    p->nsegs = p->csegs = 0;
    p->loaded = 0;
    p->from_summary = 1; /* everything is synced: a load syncs nothing */
    sl_part__tail_release(p, 0);
    pthread_mutex_unlock(&p->mu);
    p->gen++; /* iterators position again (after a load) */
    for (size_t i = 0; i < n; i++) {
        /* Pending index entries and the preallocated tail, as at a clean
         * stop; a crash before they reach the disk costs a longer scan
         * at recovery, nothing else. */
        (void)sl_seg_write_index(segs[i], 1);
        (void)sl_seg_trim(segs[i]);
        sl_seg_free(segs[i]);
    }
    free(segs);
    atomic_fetch_add(&unloads, 1);
    sl_log(SL_DEBUG, "storage", "%s: idle, unloaded (offsets %lld..%lld)",
           p->dir, (long long)p->sum.start, (long long)p->sum.end);
    return 1;
}

sl_err sl_part__load(sl_part *p)
{
    p->used_ms = coarse_now_ms;
    if (p->loaded)
        return SL_OK;
    if (p->load_err != SL_OK)
        return p->load_err;
    sl_err rc = part_load(p);
    if (rc != SL_OK) {
        p->load_err = rc;
        sl_log(SL_ERROR, "storage", "%s: cannot open the partition: %s", p->dir,
               sl_strerror(rc));
    }
    return rc;
}

int sl_part_loaded(const sl_part *p)
{
    return p->loaded;
}

sl_err sl_part_open(const char *dir, const sl_part_cfg *cfg, sl_part **out)
{
    sl_part *p;
    sl_err rc = part_new(dir, cfg, &p);
    if (rc != SL_OK)
        return rc;
    rc = part_load(p);
    if (rc != SL_OK) {
        sl_part_free(p);
        return rc;
    }
    *out = p;
    return SL_OK;
}

void sl_part_summary_empty(sl_part_summary *sum)
{
    memset(sum, 0, sizeof(*sum));
    sum->first_max_ts = INT64_MIN;
}

sl_err sl_part_open_lazy(const char *dir, const sl_part_cfg *cfg,
                         const sl_part_summary *sum, sl_part **out)
{
    sl_part *p;
    sl_err rc = part_new(dir, cfg, &p);
    if (rc != SL_OK)
        return rc;
    /* A new one's directory now; one with data must exist (a missing one
     * shows when it loads: it starts empty, with a warning). */
    rc = sum->nsegs == 0 ? part_mkdir(p) : SL_OK;
    if (rc != SL_OK) {
        sl_part_free(p);
        return rc;
    }
    p->sum = *sum;
    p->from_summary = sum->nsegs > 0; /* else new and empty */
    p->next_offset = sum->end;
    atomic_store(&p->end_a, sum->end);
    atomic_store(&p->durable, sum->end);
    *out = p;
    return SL_OK;
}

void sl_part_summary_get(const sl_part *p, sl_part_summary *out)
{
    if (!p->loaded) {
        *out = p->sum;
        return;
    }
    sl_part_summary_empty(out);
    out->start = p->segs[0]->base;
    out->end = p->next_offset;
    out->nsegs = (uint32_t)p->nsegs;
    for (size_t i = 0; i < p->nsegs; i++)
        out->bytes += p->segs[i]->size;
    out->first_max_ts = p->segs[0]->max_ts;
    out->first_bytes = p->segs[0]->size;
    out->second_base = sl_part__seg_end(p, 0);
}

/* The loop thread's scratch buffer (one per thread that reads). */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
    (void)pthread_key_create(&scratch_key, free);
}

uint8_t *sl_part__scratch(void)
{
    uint8_t *b;
    pthread_once(&scratch_once, scratch_key_init);
    b = pthread_getspecific(scratch_key);
    if (!b) {
        b = malloc(SL_SCRATCH_SIZE);
        if (b && pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            b = NULL;
        }
    }
    return b;
}

void sl_part_free(sl_part *p)
{
    if (!p)
        return;
    sl_part__idem_free(p);
    (void)sl_part__tail_flush(p); /* (a failure was logged) */
    p->tail_len = 0;              /* (what a failure left goes too) */
    sl_part__tail_release(p, 0);
    for (size_t i = 0; i < p->nsegs; i++) {
        if (sl_seg_write_index(p->segs[i], 1) != SL_OK)
            sl_log(SL_WARN, "storage", "%s: writing index entries: %s", p->dir,
                   strerror(errno));
        if (sl_seg_trim(p->segs[i]) != SL_OK)
            sl_log(SL_WARN, "storage", "%s: cutting preallocated space: %s",
                   p->dir, strerror(errno));
        sl_seg_free(p->segs[i]);
    }
    free(p->segs);
    pthread_mutex_destroy(&p->mu);
    free(p->bad);
    free(p->dir);
    free(p);
}

sl_err sl_part_destroy(sl_part *p)
{
    char *dir;
    DIR *d;
    struct dirent *e;
    char path[PATH_MAX];
    sl_err rc = SL_OK;

    if (!p)
        return SL_OK;
    rc = sl_part__touch(p, 1); /* a topic made again under its name */
    if (rc != SL_OK)
        return rc;
    dir = strdup(p->dir);
    sl_part_free(p);
    if (!dir)
        return SL_ERR_NOMEM;
    d = opendir(dir);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) != 0)
                rc = SL_ESYS(errno);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0 && rc == SL_OK)
        rc = SL_ESYS(errno);
    if (rc == SL_OK)
        rc = sl_fs_fsync_dir(dir, 0);
    free(dir);
    return rc;
}

/* ---- append ---------------------------------------------------------- */

static sl_err roll(sl_part *p, int64_t now_ms)
{
    sl_seg *s, *old = active(p);
    sl_err rc = sl_part__tail_flush(p); /* the tail is the active one's */
    if (rc == SL_OK)
        rc = sl_part__touch(p, 0); /* (a new empty file: no harm) */
    if (rc != SL_OK)
        return rc;
    sl_part__idem_roll(p, now_ms); /* snapshot at the new segment's base */
    /* created_ms starts at the first append (sl_part_append), so an idle
     * partition does not roll empty segments. */
    rc = sl_seg_create(p->dir, p->next_offset, -1, &s);
    if (rc != SL_OK)
        return rc;
    rc = segs_push(p, s);
    if (rc != SL_OK) {
        sl_seg_free(s);
        sl_seg_unlink(p->dir, p->next_offset);
        return rc;
    }
    /* The old segment is final: write its pending index entries and cut
     * its preallocated tail (the round that syncs its indexes makes both
     * durable). A failure only means a longer scan at recovery. */
    if (sl_seg_write_index(old, 1) != SL_OK)
        sl_log(SL_WARN, "storage", "%s: writing index entries: %s", p->dir,
               strerror(errno));
    if (sl_seg_trim(old) != SL_OK)
        sl_log(SL_WARN, "storage", "%s: cutting preallocated space: %s", p->dir,
               strerror(errno));
    pthread_mutex_lock(&p->mu);
    old->idx_dirty = 1; /* its indexes are final: one sync covers them */
    p->names++;         /* the new file names must be synced too */
    pthread_mutex_unlock(&p->mu);
    sl_log(SL_DEBUG, "storage", "%s: rolled to segment %020lld", p->dir,
           (long long)p->next_offset);
    return SL_OK;
}

sl_err sl_part_skip_to(sl_part *p, int64_t offset, int64_t now_ms)
{
    sl_err rc;
    if (offset <= p->next_offset)
        return SL_OK;
    rc = sl_part__load(p);
    if (rc == SL_OK)
        rc = sl_part__touch(p, 0);
    if (rc != SL_OK)
        return rc;
    pthread_mutex_lock(&p->mu);
    p->next_offset = offset;
    atomic_store(&p->end_a, offset);
    pthread_mutex_unlock(&p->mu);
    return roll(p, now_ms); /* the new segment starts at offset */
}

sl_err sl_part_append(sl_part *p, uint8_t *batch, size_t len, int64_t now_ms,
                      int64_t *base_out)
{
    return sl_part_append_ex(p, batch, len, now_ms, 0, base_out, NULL, NULL);
}

sl_err sl_part_append_ex(sl_part *p, uint8_t *batch, size_t len, int64_t now_ms,
                         unsigned flags, int64_t *base_out, int64_t *next_out,
                         int *dup)
{
    sl_batch_hdr h;
    sl_seg *s;
    int fatal = 0, isdup = 0;
    sl_err rc;

    if (dup)
        *dup = 0;
    if (atomic_load(&p->failed))
        return SL_ERR_STORAGE;
    if (flags & SL_PART_APPEND_VERIFIED) {
        rc = sl_batch_hdr_decode(batch, len, &h);
        if (rc == SL_OK && sl_batch_size(&h) != len)
            rc = SL_ERR_MALFORMED;
    } else
        rc = sl_batch_verify(batch, len, &h);
    if (rc != SL_OK)
        return rc;
    rc = sl_part__load(p);
    if (rc == SL_OK)
        rc = sl_part__touch(p, 0); /* (an append is synced before acked) */
    if (rc != SL_OK)
        return rc;
    s = active(p);
    if (!p->ps_opened) /* first append since open: producer_state.c */
        sl_part__idem_open(p);
    if (h.producer_id >= 0) { /* idempotent producer: producer_state.c */
        int64_t nx = -1;
        rc = sl_part__idem_check(p, &h, flags, now_ms, &isdup, base_out, &nx);
        if (next_out && (isdup || rc == SL_ERR_DUPLICATE_SEQUENCE))
            *next_out = nx;
        if (dup)
            *dup = isdup;
        if (rc != SL_OK || isdup)
            return rc;
    }
    if (s->size > 0 &&
        (s->size + len > p->cfg.segment_bytes ||
         (p->cfg.segment_ms >= 0 && s->created_ms >= 0 &&
          now_ms - s->created_ms >= p->cfg.segment_ms) ||
         p->next_offset + h.record_count - s->base > (int64_t)UINT32_MAX)) {
        rc = roll(p, now_ms);
        if (rc != SL_OK)
            return rc;
        s = active(p);
    }
    h.base_offset = p->next_offset;
    sl_batch_set_base_offset(batch, h.base_offset);
    if (p->cfg.preallocate_bytes > 0 && s->size + len > s->alloc_end) {
        /* Only while rounds are small: writing into preallocated
         * (unwritten) blocks makes the kernel zero the partial blocks of
         * each write, which costs more than the file-size update it saves
         * once a round covers many KiB (see sl_seg_prealloc). */
        uint64_t unsynced;
        int classic;
        pthread_mutex_lock(&p->mu);
        unsynced = s->size - s->synced_size;
        /* Only a segment that already holds synced bytes and whose last
         * round fdatasynced the file itself: the journal's rounds
         * (many partitions) never fdatasync it, so they do not pay for
         * the file size, and a partition written once (a topic spread
         * over 100,000 partitions) keeps no preallocated space for the
         * clean stop to cut off again (one ftruncate per partition). */
        classic = s->file_synced > 0 && s->file_synced == s->synced_size;
        pthread_mutex_unlock(&p->mu);
        if (classic && unsynced + len <= SL_PREALLOC_MAX_ROUND) {
            /* Sized to the partition's rate: 64 KiB ahead at first,
             * twice as far at each extension, up to preallocate_bytes.
             * A partition written once holds 64 KiB of unused space,
             * not 4 MiB (4,900 partitions took 20 GB for 0.44 GB). */
            uint64_t step =
                s->prealloc_step ? s->prealloc_step * 2 : SL_PREALLOC_FIRST;
            if (step > p->cfg.preallocate_bytes)
                step = p->cfg.preallocate_bytes;
            s->prealloc_step = step;
            sl_seg_prealloc(s, s->size + len, step, p->cfg.segment_bytes);
        }
    }
    if (s->alloc_end > s->size + len)
        sl_seg_zero_ahead(s, s->size + len);
    {
        uint64_t pos = s->size;
        int through = 1;
        if ((flags & SL_PART_APPEND_DEFER) && len <= SL_TAIL_APPEND_MAX) {
            /* THE TAIL: no write now (taken: s->size grows below) */
            pthread_mutex_lock(&p->mu);
            through = tail_put(p, s, batch, len);
            pthread_mutex_unlock(&p->mu);
            if (through < 0)
                return SL_ERR_STORAGE;
            if (!through) {
                if (sl_seg__index_step(s, pos, &h, p->cfg.index_interval_bytes,
                                       1) &&
                    sl_seg_index_due(s)) {
                    /* index entries go to their files: the log first
                     * (this batch included) */
                    if (sl_part__tail_flush(p) != SL_OK)
                        return SL_ERR_STORAGE;
                    rc = sl_seg_write_index(s, 0);
                    if (rc != SL_OK)
                        sl_log(SL_WARN, "storage",
                               "%s: writing index entries: %s", p->dir,
                               sl_strerror(rc));
                    rc = SL_OK; /* (recovery rebuilds a short index) */
                }
                s->end = sl_batch_last_offset(&h) + 1;
            }
        } else if (atomic_load_explicit(&p->tail_n, memory_order_relaxed) &&
                   sl_part__tail_flush(p) != SL_OK) {
            return SL_ERR_STORAGE; /* file order is log order */
        }
        if (through)
            rc = sl_seg_append(s, batch, len, &h, p->cfg.index_interval_bytes,
                               &fatal);
        if (rc == SL_OK)
            sl_part__recent_put(p, s, pos, batch, len);
    }
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "storage",
               "%s: append of %zu bytes at offset %lld failed: %s", p->dir, len,
               (long long)h.base_offset, sl_strerror(rc));
        if (fatal) {
            sl_log(SL_ERROR, "storage",
                   "%s: cannot cut a failed write back; partition failed",
                   p->dir);
            atomic_store(&p->failed, 1);
        }
        return rc;
    }
    if (s->created_ms < 0)
        s->created_ms = now_ms;
    pthread_mutex_lock(&p->mu);
    s->size += len;
    p->next_offset += h.record_count;
    atomic_store(&p->end_a, p->next_offset);
    pthread_mutex_unlock(&p->mu);
    if (h.producer_id >= 0)
        sl_part__idem_record(p, &h, now_ms);
    *base_out = h.base_offset;
    if (next_out)
        *next_out = p->next_offset;
    return SL_OK;
}

int64_t sl_part_start_offset(const sl_part *p)
{
    return p->loaded ? p->segs[0]->base : p->sum.start;
}

int64_t sl_part_end_offset(const sl_part *p)
{
    return p->next_offset;
}

int64_t sl_part_active_base(sl_part *p)
{
    if (sl_part__load(p) != SL_OK || !p->nsegs)
        return sl_part_start_offset(p);
    return p->segs[p->nsegs - 1]->base;
}

uint64_t sl_part_size_bytes(sl_part *p, size_t *nsegs)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nsegs; i++)
        sum += p->segs[i]->size;
    if (nsegs)
        *nsegs = p->nsegs;
    if (!p->loaded) { /* (p->loaded changes under mu) */
        sum = p->sum.bytes;
        if (nsegs)
            *nsegs = p->sum.nsegs;
    }
    pthread_mutex_unlock(&p->mu);
    return sum;
}

void sl_part_set_read_cap(sl_part *p, int64_t cap)
{
    p->read_cap = cap;
}

int64_t sl_part_read_cap(const sl_part *p)
{
    return p->read_cap;
}

int64_t sl_part_durable_offset(const sl_part *p)
{
    return atomic_load(&((sl_part *)p)->durable);
}

int sl_part_dirty(const sl_part *p)
{
    sl_part *q = (sl_part *)p;
    return atomic_load(&q->end_a) > atomic_load(&q->durable);
}

int sl_part_failed(const sl_part *p)
{
    return atomic_load(&((sl_part *)p)->failed);
}

void sl_part_set_low_water(sl_part *p, int64_t low_water)
{
    p->low_water = low_water;
}

int64_t sl_part_low_water(const sl_part *p)
{
    return p->low_water;
}

/* ---- retention ------------------------------------------------------- */

/* Would sl_part_maintain do anything to a partition not loaded? Only
 * retention can (its active segment's age counts from the load, as after
 * any recovery; compaction runs once it is loaded). */
static int maintain_due(const sl_part *p, int64_t now_ms)
{
    const sl_part_summary *m = &p->sum;
    if (m->nsegs < 2 || (p->low_water >= 0 && m->second_base > p->low_water))
        return 0;
    return (p->cfg.retention_ms >= 0 &&
            (m->first_max_ts == INT64_MIN ||
             now_ms - m->first_max_ts > p->cfg.retention_ms)) ||
           (p->cfg.retention_bytes >= 0 &&
            m->bytes - m->first_bytes >= (uint64_t)p->cfg.retention_bytes);
}

/* Delete the first segment (never the active one), as retention does. */
static sl_err drop_first(sl_part *p, const char *by)
{
    sl_seg *s = p->segs[0];
    int64_t s_end = p->segs[1]->base;
    /* Not synced first: retention's unlinks are not synced either (a
     * power loss may bring a segment back), and 100,000 partitions
     * aging out together would cost the loop 100,000 fdatasyncs. */
    sl_err rc = sl_part__touch(p, 0);
    if (rc != SL_OK)
        return rc;
    pthread_mutex_lock(&p->mu);
    memmove(p->segs, p->segs + 1, (p->nsegs - 1) * sizeof(*p->segs));
    p->nsegs--;
    pthread_mutex_unlock(&p->mu);
    p->gen++;
    sl_log(SL_INFO, "storage",
           "%s: retention deleted segment %020lld (offsets %lld..%lld, "
           "%llu bytes, by %s)",
           p->dir, (long long)s->base, (long long)s->base, (long long)s_end - 1,
           (unsigned long long)s->size, by);
    sl_seg_unlink(p->dir, s->base);
    sl_seg_free(s);
    return SL_OK;
}

sl_err sl_part_trim_below(sl_part *p, int64_t below, uint64_t roll_bytes,
                          int64_t now_ms, int *deleted, uint64_t *bytes)
{
    sl_err rc = sl_part__load(p);
    if (deleted)
        *deleted = 0;
    if (bytes)
        *bytes = 0;
    if (rc != SL_OK)
        return rc;
    if (roll_bytes > 0 && active(p)->size >= roll_bytes) {
        rc = roll(p, now_ms);
        if (rc != SL_OK)
            return rc;
    }
    while (p->nsegs > 1 && p->segs[1]->base <= below) {
        uint64_t size = p->segs[0]->size;
        rc = drop_first(p, "what its groups still need");
        if (rc != SL_OK)
            return rc;
        if (deleted)
            (*deleted)++;
        if (bytes)
            *bytes += size;
    }
    return SL_OK;
}

sl_err sl_part_maintain(sl_part *p, int64_t now_ms, int *deleted)
{
    sl_seg *a;
    uint64_t total = 0;
    int n = 0;
    sl_err rc = SL_OK;

    if (deleted)
        *deleted = 0;
    coarse_now_ms = now_ms;
    if (p->loaded && idle_unload_ms > 0) {
        if (p->used_ms <= 0) /* loaded before the first tick */
            p->used_ms = now_ms;
        else if (now_ms - p->used_ms >= idle_unload_ms &&
                 sl_part_unload(p, now_ms))
            return SL_OK;
    }
    if (!p->loaded) {
        if (!maintain_due(p, now_ms))
            return SL_OK;
        rc = sl_part__load(p);
        if (rc != SL_OK)
            return rc;
    }
    a = active(p);

    if (a->size > 0 && p->cfg.segment_ms >= 0 && a->created_ms >= 0 &&
        now_ms - a->created_ms >= p->cfg.segment_ms) {
        rc = roll(p, now_ms);
        if (rc != SL_OK)
            goto out;
    }
    for (size_t i = 0; i < p->nsegs; i++)
        total += p->segs[i]->size;
    /* Never the active segment; never one holding offsets >= low water. */
    while (p->nsegs > 1) {
        sl_seg *s = p->segs[0];
        int64_t s_end = p->segs[1]->base;
        if (p->low_water >= 0 && s_end > p->low_water)
            break;
        int by_time = p->cfg.retention_ms >= 0 &&
                      (s->max_ts == INT64_MIN ||
                       now_ms - s->max_ts > p->cfg.retention_ms);
        int by_size = p->cfg.retention_bytes >= 0 &&
                      total - s->size >= (uint64_t)p->cfg.retention_bytes;
        if (!by_time && !by_size)
            break;
        total -= s->size;
        rc = drop_first(p, by_time ? "time" : "size");
        if (rc != SL_OK)
            goto out;
        n++;
    }
    if (p->cfg.compact)
        rc = sl_part_compact(p, now_ms);
out:
    if (deleted)
        *deleted = n;
    return rc;
}
