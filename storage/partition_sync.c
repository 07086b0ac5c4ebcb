/*
 * partition_sync.c - making a partition durable: sl_part_sync (the
 * flusher's fdatasyncs of dirty segment files) and a partition's side of
 * the shared journal (copy into it, publish once it is synced, checkpoint).
 *
 * Threads: see partition.c. These run on the flusher (or checkpoint)
 * thread; they hold p->mu only to snapshot and to publish, never across an
 * fdatasync.
 */
#include "storage/partition_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"

typedef struct sync_snap {
    int64_t base;
    uint64_t size;
    int idx;                 /* index files to sync too (rolled) */
    int fd, idx_fd, tidx_fd; /* dups, -1 if not to sync */
    int borrowed;            /* fd is the segment's own (SYNC_LOOP) */
    int by_name;             /* .log was closed (fdcache.c): open it */
    int gone;                /* ... and retention deleted it meanwhile */
} sync_snap;

sl_err sl_part__sync(sl_part *p, uint64_t *nsyncs)
{
    return sl_part__sync_files(p, 0, nsyncs);
}

sl_err sl_part__sync_loop(sl_part *p, uint64_t *nsyncs)
{
    return sl_part__sync_files(p, SL_PART_SYNC_LOOP, nsyncs);
}

sl_err sl_part__sync_files(sl_part *p, int flags, uint64_t *nsyncs)
{
    int files = (flags & SL_PART_SYNC_FILES) != 0;
    int on_loop = (flags & SL_PART_SYNC_LOOP) != 0;
    sync_snap *v = NULL;
    size_t n = 0;
    int dfd = -1;
    int64_t target;
    uint64_t syncs = 0, names = 0, tgen;
    sl_err rc = SL_OK;

    if (atomic_load(&p->failed))
        return SL_ERR_STORAGE;

    /* 1. Snapshot under the lock: dups keep the files alive even if
     * retention deletes a segment while we sync it. On the loop thread
     * (an inline round) nothing can close them meanwhile: no dup (a
     * fcntl and a close per round saved). */
    pthread_mutex_lock(&p->mu);
    /* The tail into the file first (partition.c, THE TAIL): what we
     * fdatasync below must hold every byte we publish. A checkpoint also
     * gives its buffer back (the partition may stay idle now). */
    if (sl_part__tail_write(p) != SL_OK) {
        pthread_mutex_unlock(&p->mu);
        return SL_ERR_STORAGE;
    }
    if (files)
        sl_part__tail_release(p, 1);
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
        v[n].borrowed = on_loop && s->fd >= 0;
        v[n].fd = s->fd < 0       ? -1
                  : v[n].borrowed ? s->fd
                                  : sl_part__dupfd(s->fd);
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
                v[i].gone = sl_part__seg_index(p, v[i].base) < 0;
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

    /* 2. fdatasync without the lock; appends continue meanwhile. First
     * the partition's line in partitions.touched (partition_startup.c): once
     * per partition and run, usually a no-op. */
    if (n > 0 || names)
        rc = sl_part__touched_sync(p);
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
            ssize_t k = sl_part__seg_index(p, v[i].base);
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
        if (v[i].fd >= 0 && !v[i].borrowed)
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
    if (sl_part__touched_sync(p) != SL_OK)
        return SL_PART_J_CLASSIC; /* whose sync fails the partition */
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
     * mutex (it may write the buffer out), copy under it (the segment,
     * its fd and the tail stay while we hold it; no dup; a memcpy from
     * the tail, or one pread per range). */
    for (size_t i = 0; i < n && r == SL_PART_J_ADDED; i++) {
        size_t len = (size_t)(pend->size[i] - from[i]);
        uint8_t *d = sl_journal__entry(j, p->dir, pend->base[i], ino[i],
                                       igen[i], from[i], len);
        if (!d) {
            r = SL_PART_J_CLASSIC;
            break;
        }
        pthread_mutex_lock(&p->mu);
        ssize_t k = sl_part__seg_index(p, pend->base[i]);
        sl_err rc = SL_ERR_NOT_FOUND;
        /* from the tail where it holds them (partition.c), else the file */
        if (k >= 0)
            rc = sl_part__tail_copy(p, p->segs[k], from[i], len, d);
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
    sl_err rc = sl_part__sync_files(p, SL_PART_SYNC_FILES, NULL);
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
        ssize_t k = sl_part__seg_index(p, pend->base[i]);
        if (k >= 0 && p->segs[k]->synced_size < pend->size[i])
            p->segs[k]->synced_size = pend->size[i];
    }
    int64_t cur = atomic_load(&p->durable);
    while (cur < pend->target &&
           !atomic_compare_exchange_weak(&p->durable, &cur, pend->target))
        ;
    pthread_mutex_unlock(&p->mu);
}
