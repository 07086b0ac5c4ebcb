/*
 * compact.c - log compaction: keep the latest record per key.
 *
 * Rules (Kafka's, adapted):
 *  - Only closed segments are rewritten; the active segment is read (its
 *    records shadow older ones) but never changed.
 *  - A record with a key is kept iff it is the latest record with that key
 *    in the whole log. A kept tombstone (null value) is removed once
 *    now - its timestamp > delete_retention_ms, so consumers that were
 *    behind had that long to see the delete.
 *  - Records without a key are always kept.
 *  - Offsets never change. A batch whose records are all kept is copied
 *    byte for byte. Otherwise each run of consecutive kept records becomes
 *    one new batch (same codec; base offset = the run's first offset),
 *    because a batch's records must have consecutive offsets. Producer
 *    id/epoch/sequence of rewritten batches are reset to -1.
 *  - The new segment is written to NNNN.log.cleaned and installed with the
 *    durable recipe (fsync, rename over NNNN.log, fsync the directory). Its
 *    index files are deleted before the rename and rebuilt after it, so a
 *    crash in between leaves missing indexes (rebuilt on open), never
 *    stale ones.
 * Memory: one copy of every distinct key (the offset map), plus one batch.
 * @thread loop (it blocks on disk I/O: call it from maintenance, rarely)
 */
#include "storage/partition_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/hash.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- key -> latest offset map (open addressing) ---------------------- */

typedef struct km_ent {
    uint64_t h;
    uint8_t *key; /* NULL = empty slot */
    uint32_t klen;
    int64_t off;
} km_ent;

typedef struct keymap {
    km_ent *v;
    size_t cap, n;
} keymap;

static uint64_t hash(const uint8_t *p, size_t n)
{
    uint64_t h = sl_fnv1a64(p, n);
    return h ? h : 1;
}

static km_ent *km_slot(km_ent *v, size_t cap, uint64_t h, const uint8_t *k,
                       uint32_t kl)
{
    size_t i = h & (cap - 1);
    for (;;) {
        km_ent *e = &v[i];
        if (!e->key ||
            (e->h == h && e->klen == kl && memcmp(e->key, k, kl) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

static sl_err km_put(keymap *m, const uint8_t *k, uint32_t kl, int64_t off)
{
    uint64_t h = hash(k, kl);
    if ((m->n + 1) * 10 > m->cap * 7) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        km_ent *nv = calloc(nc, sizeof(*nv));
        if (!nv)
            return SL_ERR_NOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->v[i].key)
                *km_slot(nv, nc, m->v[i].h, m->v[i].key, m->v[i].klen) =
                    m->v[i];
        free(m->v);
        m->v = nv;
        m->cap = nc;
    }
    km_ent *e = km_slot(m->v, m->cap, h, k, kl);
    if (!e->key) {
        e->key = malloc(kl ? kl : 1);
        if (!e->key)
            return SL_ERR_NOMEM;
        memcpy(e->key, k, kl);
        e->h = h;
        e->klen = kl;
        m->n++;
    }
    e->off = off;
    return SL_OK;
}

static int64_t km_get(const keymap *m, const uint8_t *k, uint32_t kl)
{
    if (!m->cap)
        return -1;
    km_ent *e = km_slot(m->v, m->cap, hash(k, kl), k, kl);
    return e->key ? e->off : -1;
}

static void km_free(keymap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].key);
    free(m->v);
}

/* ---- one segment ----------------------------------------------------- */

static int keep(const keymap *m, const sl_record *r, int64_t now_ms,
                int64_t delete_retention_ms)
{
    if (!r->key)
        return 1;
    if (km_get(m, r->key, (uint32_t)r->key_len) != r->offset)
        return 0;
    if (!r->value && now_ms - r->timestamp > delete_retention_ms)
        return 0;
    return 1;
}

typedef struct cstate {
    int fd;
    uint64_t out_pos;
    sl_batch_builder bb;
    int bb_codec;
    int64_t run_base;
    sl_header *hv;
    size_t hcap;
} cstate;

static sl_err flush_run(cstate *c)
{
    const uint8_t *b;
    size_t len;
    sl_err rc;
    if (c->bb.count == 0)
        return SL_OK;
    rc = sl_bb_finish(&c->bb, &b, &len);
    if (rc != SL_OK)
        return rc;
    sl_batch_set_base_offset((uint8_t *)b, c->run_base);
    rc = sl_fs_pwrite_all(c->fd, b, len, (off_t)c->out_pos);
    if (rc != SL_OK)
        return rc;
    c->out_pos += len;
    sl_bb_reset(&c->bb);
    return SL_OK;
}

static sl_err add_rec(cstate *c, const sl_record *r)
{
    if (r->header_count > c->hcap) {
        sl_header *n = realloc(c->hv, r->header_count * sizeof(*n));
        if (!n)
            return SL_ERR_NOMEM;
        c->hv = n;
        c->hcap = r->header_count;
    }
    for (uint32_t i = 0; i < r->header_count; i++) {
        sl_err rc = sl_record_header(r, i, &c->hv[i]);
        if (rc != SL_OK)
            return rc;
    }
    if (c->bb.count == 0)
        c->run_base = r->offset;
    return sl_bb_add(&c->bb, r->timestamp, r->key, r->key ? r->key_len : 0,
                     r->value, r->value ? (size_t)r->value_len : 0, c->hv,
                     r->header_count);
}

/* Rewrite the records of one batch (b, sz) into c; *dropped += count. */
static sl_err compact_batch(cstate *c, const keymap *m, const uint8_t *b,
                            size_t sz, const sl_batch_hdr *h, int64_t now_ms,
                            int64_t dret, uint64_t *dropped)
{
    sl_batch_iter it;
    sl_record r;
    sl_err rc, e = SL_OK;
    uint32_t kept = 0;

    rc = sl_batch_iter_init(&it, b, sz);
    if (rc != SL_OK)
        goto out;
    while (sl_batch_iter_next(&it, &r, &e))
        kept += (uint32_t)keep(m, &r, now_ms, dret);
    sl_batch_iter_fini(&it);
    if (e != SL_OK) {
        rc = e;
        goto out;
    }
    if (kept == h->record_count) {
        rc = sl_fs_pwrite_all(c->fd, b, sz, (off_t)c->out_pos);
        if (rc == SL_OK)
            c->out_pos += sz;
        return rc;
    }
    *dropped += h->record_count - kept;
    if (kept == 0)
        return SL_OK;
    int codec = h->attributes & SL_BATCH_ATTR_CODEC_MASK;
    if (codec != c->bb_codec) {
        sl_bb_fini(&c->bb);
        sl_bb_init(&c->bb, codec);
        c->bb_codec = codec;
    }
    rc = sl_batch_iter_init(&it, b, sz);
    if (rc != SL_OK)
        goto out;
    while (rc == SL_OK && sl_batch_iter_next(&it, &r, &e)) {
        if (keep(m, &r, now_ms, dret))
            rc = add_rec(c, &r);
        else
            rc = flush_run(c); /* a dropped record ends the run */
    }
    if (rc == SL_OK)
        rc = e != SL_OK ? e : flush_run(c);
out:
    sl_batch_iter_fini(&it);
    return rc;
}

static sl_err compact_seg(sl_part *p, sl_seg *s, const keymap *m,
                          int64_t now_ms, uint64_t *dropped_out)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    cstate c;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t pos = 0, dropped = 0;
    int idx_fd = -1, tidx_fd = -1;
    sl_err rc;

    memset(&c, 0, sizeof(c));
    c.fd = -1;
    sl_bb_init(&c.bb, SL_CODEC_NONE);
    sl_seg_path(p->dir, s->base, ".log", path, sizeof(path));
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.cleaned", path) >= sizeof(tmp)) {
        rc = SL_ESYS(ENAMETOOLONG);
        goto out;
    }
    c.fd = sl_fs->open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (c.fd < 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    while (pos < s->size) {
        uint8_t hb[12];
        sl_batch_hdr h;
        rc = sl_fs_pread_all(sl_seg_fd(s), hb, sizeof(hb), (off_t)pos, NULL);
        if (rc != SL_OK)
            goto out;
        size_t sz = 12 + (size_t)sl_get_u32(hb + SL_BATCH_LEN_OFF);
        if (sz > s->size - pos || sz > SL_BATCH_MAX_SIZE) {
            rc = SL_ERR_CORRUPT;
            goto out;
        }
        if (sz > cap) {
            uint8_t *n = realloc(buf, sz);
            if (!n) {
                rc = SL_ERR_NOMEM;
                goto out;
            }
            buf = n;
            cap = sz;
        }
        rc = sl_fs_pread_all(sl_seg_fd(s), buf, sz, (off_t)pos, NULL);
        if (rc == SL_OK)
            rc = sl_batch_verify(buf, sz, &h);
        if (rc == SL_OK)
            rc = compact_batch(&c, m, buf, sz, &h, now_ms,
                               p->cfg.delete_retention_ms, &dropped);
        if (rc != SL_OK)
            goto out;
        pos += sz;
    }
    if (dropped == 0) {
        rc = SL_OK;
        goto out; /* nothing to gain; the .cleaned file is removed below */
    }

    /* Install: indexes away first (see the rules above), then the log. */
    char ipath[PATH_MAX], tpath[PATH_MAX];
    sl_seg_path(p->dir, s->base, ".index", ipath, sizeof(ipath));
    sl_seg_path(p->dir, s->base, ".timeindex", tpath, sizeof(tpath));
    unlink(ipath);
    unlink(tpath);
    rc = sl_fs_commit_durable(c.fd, tmp, path);
    if (rc != SL_OK)
        goto out;
    idx_fd = sl_fs->open(ipath, O_RDWR | O_CREAT | O_TRUNC, 0644);
    tidx_fd = sl_fs->open(tpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
    pthread_mutex_lock(&p->mu);
    sl_seg__fd_replace(s, c.fd); /* closes the old file's fd */
    c.fd = -1;
    s->size = s->synced_size = s->file_synced = c.out_pos;
    sl_seg_ident(s); /* a new file: journal entries of the old one are void */
    s->idx_dirty = 0;
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    if (s->tidx_fd >= 0)
        close(s->tidx_fd);
    s->idx_fd = idx_fd;
    s->tidx_fd = tidx_fd;
    pthread_mutex_unlock(&p->mu);
    p->gen++;
    if (idx_fd < 0 || tidx_fd < 0) {
        rc = SL_ESYS(errno);
        goto out;
    }
    rc = sl_seg_reindex(s, p->cfg.index_interval_bytes);
    sl_seg_idx_close(s); /* opened again when written */
    sl_log(SL_INFO, "storage",
           "%s: compacted segment %020lld: %llu record(s) removed, %llu -> "
           "%llu bytes",
           p->dir, (long long)s->base, (unsigned long long)dropped,
           (unsigned long long)pos, (unsigned long long)c.out_pos);
    *dropped_out += dropped;
out:
    if (c.fd >= 0) {
        close(c.fd);
        unlink(tmp);
    }
    sl_bb_fini(&c.bb);
    free(c.hv);
    free(buf);
    if (rc != SL_OK)
        sl_log(SL_ERROR, "storage", "%s: compaction of segment %020lld: %s",
               p->dir, (long long)s->base, sl_strerror(rc));
    return rc;
}

sl_err sl_part_compact(sl_part *p, int64_t now_ms)
{
    keymap m = {0};
    sl_part_iter *it = NULL;
    sl_record r;
    uint64_t dropped = 0;
    sl_err rc = sl_part__load(p);

    if (rc != SL_OK || p->nsegs < 2)
        return rc;
    /* 1. latest offset of every key, over the whole log */
    rc = sl_part_iter_new(p, sl_part_start_offset(p), &it);
    if (rc != SL_OK)
        goto out;
    while (sl_part_iter_next(it, &r, &rc)) {
        if (r.key) {
            rc = km_put(&m, r.key, (uint32_t)r.key_len, r.offset);
            if (rc != SL_OK)
                goto out;
        }
    }
    if (rc != SL_OK)
        goto out;
    /* 2. rewrite closed segments */
    rc = sl_part__touch(p, 1);
    if (rc != SL_OK)
        goto out;
    for (size_t i = 0; i + 1 < p->nsegs; i++) {
        rc = compact_seg(p, p->segs[i], &m, now_ms, &dropped);
        if (rc != SL_OK)
            goto out;
    }
out:
    sl_part_iter_free(it);
    km_free(&m);
    return rc;
}
