/*
 * partition.c - the partition log: append, read, iterate, sync, retention.
 *
 * The file formats, the fsync ordering and the recovery rule are described
 * at the top of segment.c (and in docs/storage.md).
 *
 * Threads. The loop thread owns the partition. The flusher calls only
 * sl_part_sync (sl_part__sync) and the atomic getters. What they share is
 * guarded by p->mu: the segment array (the flusher walks it to snapshot
 * fds), each segment's fd (the open-file cache, fdcache.c, opens and
 * closes it on the loop thread under p->mu), size/synced_size/idx_dirty
 * and p->names. The
 * loop reads its own data without the lock (it is the only writer) and
 * takes it only to publish a change; the flusher holds it only to take a
 * snapshot and to record the result, never across an fdatasync.
 */
#include "storage/storage_int.h"

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
#include "storage/producer_state.h"

/* Segments modified this recently are fdatasynced on open. */
#define SL_RECENT_MS (120 * 1000)

/* Start-up state (sl_part_startup_begin/end): 0 = none (every open
 * fdatasyncs what it recovered, as a storage test expects), 1 = the
 * broker is opening its partitions (one syncfs at the end instead). */
static _Atomic int startup_deferred;
static int startup_clean; /* the marker was there: nothing to syncfs */

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

/* ---- segment array --------------------------------------------------- */

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

/* Exact lookup by base; -1 if gone. Caller holds mu or is the loop. */
static ssize_t seg_index(const sl_part *p, int64_t base)
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

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parse "NNNNNNNNNNNNNNNNNNNN<ext>" exactly; -1 if not that shape. */
static int64_t parse_name(const char *name, const char *ext)
{
    size_t el = strlen(ext);
    int64_t v = 0;
    if (strlen(name) != SL_SEG_NAME_DIGITS + el ||
        strcmp(name + SL_SEG_NAME_DIGITS, ext) != 0)
        return -1;
    for (int i = 0; i < SL_SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* List segment bases (sorted) and clean up leftovers. */
static sl_err list_segments(const char *dir, int64_t **out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int64_t *v = NULL;
    size_t n = 0, c = 0;
    char path[PATH_MAX];

    if (!d)
        return SL_ESYS(errno);
    while ((e = readdir(d)) != NULL) {
        int64_t b = parse_name(e->d_name, ".log");
        if (has_suffix(e->d_name, ".tmp") ||
            has_suffix(e->d_name, ".cleaned")) {
            /* An interrupted durable write or compaction: never renamed,
             * so nothing refers to it. */
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
            continue;
        }
        if (b < 0) {
            int64_t ib = parse_name(e->d_name, ".index");
            if (ib < 0)
                ib = parse_name(e->d_name, ".timeindex");
            if (ib >= 0) {
                /* Index without a log (the log was deleted first). */
                struct stat st;
                sl_seg_path(dir, ib, ".log", path, sizeof(path));
                if (stat(path, &st) != 0 && errno == ENOENT) {
                    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                    unlink(path);
                }
            }
            continue;
        }
        if (n == c) {
            size_t nc = c ? c * 2 : 16;
            int64_t *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                free(v);
                closedir(d);
                return SL_ERR_NOMEM;
            }
            v = nv;
            c = nc;
        }
        v[n++] = b;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_i64);
    *out = v;
    *n_out = n;
    return SL_OK;
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
    if (!lazy && !atomic_load(&startup_deferred)) {
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

sl_err sl_part__load(sl_part *p)
{
    if (p->loaded)
        return SL_OK;
    if (p->load_err != SL_OK)
        return p->load_err;
    sl_err rc = part_load(p);
    if (rc != SL_OK) {
        p->load_err = rc;
        sl_log(SL_ERROR, "storage", "%s: cannot open the partition: %s",
               p->dir, sl_strerror(rc));
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

/* ---- start-up and clean stop ----------------------------------------- */

static sl_err syncfs_dir(const char *data_dir)
{
    sl_err rc = SL_OK;
    int fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return SL_ESYS(errno);
    if (sl_fs->syncfs(fd) != 0)
        rc = SL_ESYS(errno);
    close(fd);
    return rc;
}

/* The marker's first line; a note follows on the second. */
#define SL_MARK_NOTE_MAX 200

/* The note of the marker the last sl_part_startup_begin removed. */
static char startup_note[SL_MARK_NOTE_MAX + 1];

const char *sl_part_startup_note(void)
{
    return startup_note;
}

/* Read the marker's note (its second line) into startup_note. */
static void read_note(const char *path)
{
    char buf[128 + SL_MARK_NOTE_MAX];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    startup_note[0] = 0;
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (!nl)
        return;
    char *end = strchr(nl + 1, '\n');
    if (end)
        *end = 0;
    snprintf(startup_note, sizeof(startup_note), "%s", nl + 1);
}

sl_err sl_part_startup_begin(const char *data_dir, int *clean)
{
    char path[PATH_MAX];
    sl_err rc = SL_OK;
    *clean = 0;
    snprintf(path, sizeof(path), "%s/%s", data_dir, SL_PART_CLEAN_MARKER);
    read_note(path);
    if (unlink(path) == 0) {
        /* Durably gone before anything is appended: a crash of this run
         * must not find a marker that vouches for data it left only in
         * the page cache. */
        rc = sl_fs_fsync_dir(data_dir, 1);
        if (rc != SL_OK)
            return rc;
        *clean = 1;
    } else if (errno != ENOENT) {
        return SL_ESYS(errno);
    } else {
        startup_note[0] = 0;
    }
    startup_clean = *clean;
    atomic_store(&startup_deferred, 1);
    return SL_OK;
}

sl_err sl_part_startup_end(const char *data_dir)
{
    atomic_store(&startup_deferred, 0);
    return startup_clean ? SL_OK : syncfs_dir(data_dir);
}

sl_err sl_part_shutdown_mark(const char *data_dir)
{
    return sl_part_shutdown_mark_note(data_dir, "");
}

sl_err sl_part_shutdown_mark_note(const char *data_dir, const char *note)
{
    char path[PATH_MAX], text[96 + SL_MARK_NOTE_MAX];
    int n;
    sl_err rc = syncfs_dir(data_dir);
    if (rc != SL_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", data_dir, SL_PART_CLEAN_MARKER);
    n = snprintf(text, sizeof(text), "sluiced clean stop, pid %ld, %lld ms\n%.*s\n",
                 (long)getpid(), sl_fs_now_ms(), SL_MARK_NOTE_MAX, note);
    return sl_fs_write_durable(path, text, (size_t)n);
}

void sl_part_free(sl_part *p)
{
    if (!p)
        return;
    sl_part__idem_free(p);
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
    sl_err rc;
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

sl_err sl_part_append(sl_part *p, uint8_t *batch, size_t len, int64_t now_ms,
                      int64_t *base_out)
{
    return sl_part_append_ex(p, batch, len, now_ms, 0, base_out, NULL, NULL);
}

sl_err sl_part_append_ex(sl_part *p, uint8_t *batch, size_t len,
                         int64_t now_ms, unsigned flags, int64_t *base_out,
                         int64_t *next_out, int *dup)
{
    sl_batch_hdr h;
    sl_seg *s;
    int fatal = 0, isdup = 0;
    sl_err rc;

    if (dup)
        *dup = 0;
    if (atomic_load(&p->failed))
        return SL_ERR_STORAGE;
    rc = sl_batch_verify(batch, len, &h);
    if (rc != SL_OK)
        return rc;
    rc = sl_part__load(p);
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
            uint64_t step = s->prealloc_step ? s->prealloc_step * 2
                                             : SL_PREALLOC_FIRST;
            if (step > p->cfg.preallocate_bytes)
                step = p->cfg.preallocate_bytes;
            s->prealloc_step = step;
            sl_seg_prealloc(s, s->size + len, step, p->cfg.segment_bytes);
        }
    }
    rc = sl_seg_append(s, batch, len, &h, p->cfg.index_interval_bytes, &fatal);
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

/* ---- sync ------------------------------------------------------------ */

typedef struct sync_snap {
    int64_t base;
    uint64_t size;
    int idx;                 /* index files to sync too (rolled) */
    int fd, idx_fd, tidx_fd; /* dups, -1 if not to sync */
    int by_name;             /* .log was closed (fdcache.c): open it */
    int gone;                /* ... and retention deleted it meanwhile */
} sync_snap;

static int dupfd(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

sl_err sl_part__sync(sl_part *p, uint64_t *nsyncs)
{
    return sl_part__sync_files(p, 0, nsyncs);
}

sl_err sl_part__sync_files(sl_part *p, int files, uint64_t *nsyncs)
{
    sync_snap *v = NULL;
    size_t n = 0;
    int dfd = -1;
    int64_t target;
    uint64_t syncs = 0, names = 0, tgen;
    sl_err rc = SL_OK;

    if (atomic_load(&p->failed))
        return SL_ERR_STORAGE;

    /* 1. Snapshot under the lock: dups keep the files alive even if
     * retention deletes a segment while we sync it. */
    pthread_mutex_lock(&p->mu);
    target = p->next_offset;
    tgen = p->trunc_gen;
    for (size_t i = 0; i < p->nsegs; i++) {
        sl_seg *s = p->segs[i];
        if ((files ? s->file_synced : s->synced_size) >= s->size &&
            !s->idx_dirty)
            continue;
        if (!v) {
            v = calloc(p->nsegs - i, sizeof(*v));
            if (!v) {
                rc = SL_ERR_NOMEM;
                break;
            }
        }
        v[n].base = s->base;
        v[n].size = s->size;
        v[n].idx = s->idx_dirty;
        /* A segment the open-file cache closed is opened by name below
         * (fdcache.c): the fdatasync of any descriptor of the file
         * writes its dirty pages. */
        v[n].fd = s->fd >= 0 ? dupfd(s->fd) : -1;
        v[n].by_name = s->fd < 0;
        v[n].idx_fd = v[n].tidx_fd = -1; /* opened below, by name */
        n++;
    }
    if (p->names_synced < p->names)
        names = p->names;
    pthread_mutex_unlock(&p->mu);
    /* The index files and the directory are not kept open (one
     * descriptor per partition); a rolled segment's index files that
     * retention deleted meanwhile need no sync. */
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char path[PATH_MAX];
        if (v[i].by_name) {
            sl_seg_path(p->dir, v[i].base, ".log", path, sizeof(path));
            v[i].fd = sl_fs->open(path, O_RDWR | O_CLOEXEC, 0);
            if (v[i].fd < 0 && errno == ENOENT) {
                /* Deleted by retention since the snapshot (it left the
                 * array first): nothing to sync. Still there: an error. */
                pthread_mutex_lock(&p->mu);
                v[i].gone = seg_index(p, v[i].base) < 0;
                pthread_mutex_unlock(&p->mu);
                if (!v[i].gone)
                    rc = SL_ESYS(ENOENT);
            } else if (v[i].fd < 0) {
                rc = SL_ESYS(errno);
            }
        }
        if (!v[i].idx)
            continue;
        sl_seg_path(p->dir, v[i].base, ".index", path, sizeof(path));
        v[i].idx_fd = open(path, O_RDWR | O_CLOEXEC);
        sl_seg_path(p->dir, v[i].base, ".timeindex", path, sizeof(path));
        v[i].tidx_fd = open(path, O_RDWR | O_CLOEXEC);
        if ((v[i].idx_fd < 0 || v[i].tidx_fd < 0) && errno != ENOENT)
            rc = SL_ESYS(errno);
        if (v[i].idx_fd < 0 || v[i].tidx_fd < 0)
            v[i].idx = 0; /* gone: nothing to sync, or an error */
    }
    if (names && rc == SL_OK) {
        dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            rc = SL_ESYS(errno);
    }
    /* Out of fds (EMFILE) is not a failed fsync: nothing was synced and
     * nothing is lost; give up this round and let a later one retry. */
    for (size_t i = 0; i < n && rc == SL_OK; i++)
        if (v[i].fd < 0 && !v[i].gone)
            rc = SL_ESYS(EMFILE);
    if (rc != SL_OK) {
        sl_log(SL_WARN, "storage", "%s: cannot start a sync: %s", p->dir,
               sl_strerror(rc));
        goto cleanup;
    }

    /* 2. fdatasync without the lock; appends continue meanwhile. */
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        int fds[3] = {v[i].fd, v[i].idx ? v[i].idx_fd : -1,
                      v[i].idx ? v[i].tidx_fd : -1};
        if (v[i].gone)
            continue;
        for (int k = 0; k < 3 && rc == SL_OK; k++) {
            if (k > 0 && fds[k] < 0)
                continue;
            syncs++;
            if (sl_fs->fdatasync(fds[k]) != 0)
                rc = SL_ESYS(errno);
        }
    }
    if (rc == SL_OK && dfd >= 0) {
        syncs++;
        if (sl_fs->fsync(dfd) != 0)
            rc = SL_ESYS(errno);
    }

    /* 3. Record and publish. */
    if (rc != SL_OK) {
        /* Never retried: the kernel may have dropped the dirty pages. */
        atomic_store(&p->failed, 1);
        sl_log(SL_ERROR, "storage",
               "%s: fdatasync failed: %s; partition failed, refusing "
               "appends (durable offset stays %lld)",
               p->dir, sl_strerror(rc), (long long)atomic_load(&p->durable));
    } else {
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < n && p->trunc_gen == tgen; i++) {
            ssize_t k = seg_index(p, v[i].base);
            if (k < 0)
                continue;
            sl_seg *s = p->segs[k];
            if (s->synced_size < v[i].size)
                s->synced_size = v[i].size;
            if (s->file_synced < v[i].size)
                s->file_synced = v[i].size;
            if (v[i].idx)
                s->idx_dirty = 0;
        }
        if (dfd >= 0 && p->names_synced < names)
            p->names_synced = names;
        int64_t cur = atomic_load(&p->durable);
        while (p->trunc_gen == tgen && cur < target &&
               !atomic_compare_exchange_weak(&p->durable, &cur, target))
            ;
        pthread_mutex_unlock(&p->mu);
    }
cleanup:
    for (size_t i = 0; i < n; i++) {
        if (v[i].fd >= 0)
            close(v[i].fd);
        if (v[i].idx_fd >= 0)
            close(v[i].idx_fd);
        if (v[i].tidx_fd >= 0)
            close(v[i].tidx_fd);
    }
    if (dfd >= 0)
        close(dfd);
    free(v);
    if (nsyncs)
        *nsyncs = syncs;
    return rc;
}

sl_err sl_part_sync(sl_part *p)
{
    return sl_part__sync(p, NULL);
}

int sl_part__journal(sl_part *p, sl_journal *j, sl_part_jpend *pend)
{
    uint64_t from[SL_JP_SEGS], ino[SL_JP_SEGS], igen[SL_JP_SEGS];
    size_t n = 0;
    int r = SL_PART_J_ADDED;

    if (atomic_load(&p->failed))
        return SL_PART_J_NOTHING;
    pthread_mutex_lock(&p->mu);
    pend->target = p->next_offset;
    pend->trunc_gen = p->trunc_gen;
    for (size_t i = 0; i < p->nsegs; i++) {
        sl_seg *s = p->segs[i];
        if (s->synced_size >= s->size)
            continue;
        if (n == SL_JP_SEGS || s->size - s->synced_size > SL_JP_MAX_COPY) {
            r = SL_PART_J_CLASSIC; /* many rolls, or a lot to copy */
            break;
        }
        pend->base[n] = s->base;
        pend->size[n] = s->size;
        from[n] = s->synced_size;
        ino[n] = s->ino;
        igen[n] = s->igen;
        n++;
    }
    pthread_mutex_unlock(&p->mu);
    if (r != SL_PART_J_ADDED)
        return r;
    if (n == 0)
        return SL_PART_J_NOTHING; /* (a new name alone: the checkpoint's) */
    /* Copy each range into the journal's buffer: reserve outside the
     * mutex (it may write the buffer out), read under it (the segment and
     * its fd stay while we hold it; no dup, one pread per range). */
    for (size_t i = 0; i < n && r == SL_PART_J_ADDED; i++) {
        size_t len = (size_t)(pend->size[i] - from[i]), got = 0;
        uint8_t *d = sl_journal__entry(j, p->dir, pend->base[i], ino[i],
                                       igen[i], from[i], len);
        if (!d) {
            r = SL_PART_J_CLASSIC;
            break;
        }
        pthread_mutex_lock(&p->mu);
        ssize_t k = seg_index(p, pend->base[i]);
        sl_err rc = SL_ERR_NOT_FOUND;
        if (k >= 0) {
            /* Closed by the open-file cache: read it by name (the fd
             * only changes under this mutex, fdcache.c). */
            int fd = p->segs[k]->fd, own = -1;
            if (fd < 0) {
                char path[PATH_MAX];
                sl_seg_path(p->dir, pend->base[i], ".log", path, sizeof(path));
                fd = own = sl_fs->open(path, O_RDONLY | O_CLOEXEC, 0);
            }
            rc = fd < 0 ? SL_ESYS(errno)
                        : sl_fs_pread_all(fd, d, len, (off_t)from[i], &got);
            if (own >= 0)
                close(own);
        }
        pthread_mutex_unlock(&p->mu);
        if (rc != SL_OK) {
            sl_journal__abort(j);
            r = SL_PART_J_CLASSIC; /* deleted meanwhile, or a read error */
            break;
        }
        sl_journal__seal(j);
    }
    /* On CLASSIC after some ranges were sealed: they are valid bytes of
     * their segments, harmless to journal (replay compares first). */
    pend->p = p;
    pend->nsegs = n;
    return r;
}

sl_err sl_part__checkpoint(sl_part *p)
{
    sl_err rc = sl_part__sync_files(p, 1, NULL);
    /* A failed fdatasync marked p failed; its bytes are still in the
     * journal, which is kept (journal.c rule 3). */
    return rc;
}

void sl_part__journal_done(const sl_part_jpend *pend)
{
    sl_part *p = pend->p;
    pthread_mutex_lock(&p->mu);
    if (p->trunc_gen != pend->trunc_gen) { /* truncated meanwhile */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    for (size_t i = 0; i < pend->nsegs; i++) {
        ssize_t k = seg_index(p, pend->base[i]);
        if (k >= 0 && p->segs[k]->synced_size < pend->size[i])
            p->segs[k]->synced_size = pend->size[i];
    }
    int64_t cur = atomic_load(&p->durable);
    while (cur < pend->target &&
           !atomic_compare_exchange_weak(&p->durable, &cur, pend->target))
        ;
    pthread_mutex_unlock(&p->mu);
}

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
    if (rc != SL_OK)
        return rc;
    if (!scratch)
        return SL_ERR_NOMEM;
    s = active(p);
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
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.truncated", path) >=
        sizeof(tmp))
        return SL_ESYS(ENAMETOOLONG);
    fd = sl_fs->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return SL_ESYS(errno);
    while (done < q && rc == SL_OK) {
        size_t n = q - done > SL_SCRATCH_SIZE ? SL_SCRATCH_SIZE
                                              : (size_t)(q - done);
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
    r.fd = dupfd(sl_seg_fd(s));
    if (r.fd < 0)
        return SL_ESYS(errno);
    p->rd_bytes += r.len;
    p->rd_records += (uint64_t)(r.next_offset - (offset > r.first_offset
                                                     ? offset
                                                     : r.first_offset));
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
        int32_t lod;
        memcpy(&lod, h + 19, 4);
        int64_t last = (int64_t)sl_get_u64(h) + lod;
        if (h[16] != SL_BATCH_MAGIC || sz < SL_BATCH_HDR_SIZE) {
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
static const uint8_t *iter_window(sl_part_iter *it, sl_seg *s,
                                  uint64_t pos, size_t n, sl_err *rc)
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
     * what is skipped: the CRC does not cover base_offset, so a header
     * may claim the offsets of records appended later (the fuzz input
     * regress-iter-claims-later-offsets: an append at the log end was
     * then never read). The range ends where the next intact batch at or
     * after the wanted offset starts; the header only names the batch in
     * the log line when it agrees. */
    uint64_t hint = hdr ? it->pos + sl_batch_size(hdr) : 0;
    int64_t next_base = si + 1 < p->nsegs ? p->segs[si + 1]->base : INT64_MAX;
    uint64_t np =
        sl_seg_next_good(s, it->pos, hint, it->want, next_base, &nb);
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
                int64_t first = it->want > bh.base_offset ? it->want
                                                          : bh.base_offset;
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
        ssize_t si = seg_index(p, it->seg_base);
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

sl_err sl_part_maintain(sl_part *p, int64_t now_ms, int *deleted)
{
    sl_seg *a;
    uint64_t total = 0;
    int n = 0;
    sl_err rc = SL_OK;

    if (deleted)
        *deleted = 0;
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
        pthread_mutex_lock(&p->mu);
        memmove(p->segs, p->segs + 1, (p->nsegs - 1) * sizeof(*p->segs));
        p->nsegs--;
        pthread_mutex_unlock(&p->mu);
        p->gen++;
        total -= s->size;
        sl_log(SL_INFO, "storage",
               "%s: retention deleted segment %020lld (offsets %lld..%lld, "
               "%llu bytes, by %s)",
               p->dir, (long long)s->base, (long long)s->base,
               (long long)s_end - 1, (unsigned long long)s->size,
               by_time ? "time" : "size");
        sl_seg_unlink(p->dir, s->base);
        sl_seg_free(s);
        n++;
    }
    if (p->cfg.compact)
        rc = sl_part_compact(p, now_ms);
out:
    if (deleted)
        *deleted = n;
    return rc;
}
