/*
 * fsm.c - the metadata image as a libraft state machine (see fsm.h).
 */
#include "cluster/fsm.h"

#include <stdint.h>
#include <string.h>

sl_err sl_meta_fsm_wrap(const void *cmd, size_t len, struct raft_buffer *out)
{
    size_t padded = (4 + len + 7) / 8 * 8;
    uint8_t *p = raft_malloc(padded);
    if (!p)
        return SL_ERR_NOMEM;
    sl_put_u32(p, (uint32_t)len);
    memcpy(p + 4, cmd, len);
    memset(p + 4 + len, 0, padded - 4 - len);
    out->base = p;
    out->len = padded;
    return SL_OK;
}

sl_err sl_meta_fsm_unwrap(const struct raft_buffer *b, const uint8_t **cmd,
                          size_t *len)
{
    uint32_t n;
    if (b->len < 4)
        return SL_ERR_MALFORMED;
    n = sl_get_u32(b->base);
    if (n > b->len - 4)
        return SL_ERR_MALFORMED;
    *cmd = (const uint8_t *)b->base + 4;
    *len = n;
    return SL_OK;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    sl_meta_fsm *f = fsm->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    const uint8_t *cmd = NULL;
    size_t len = 0;
    sl_err rc = sl_meta_fsm_unwrap(buf, &cmd, &len);

    if (rc == SL_OK)
        rc = sl_meta_apply(&f->meta, index, cmd, len);
    else
        f->meta.applied = index; /* changes nothing, as a bad command */
    if (f->on_apply && cmd)
        f->on_apply(f->arg, index, cmd, len, rc);
    *result = (void *)(intptr_t)rc;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    sl_meta_fsm *f = fsm->data;
    sl_wb wb;
    struct raft_buffer *b;

    sl_wb_init(&wb, 4096);
    sl_meta_snapshot(&f->meta, &wb);
    if (wb.err) {
        sl_wb_fini(&wb);
        return RAFT_NOMEM;
    }
    b = raft_malloc(sizeof(*b));
    if (!b) {
        sl_wb_fini(&wb);
        return RAFT_NOMEM;
    }
    if (sl_meta_fsm_wrap(wb.p, wb.len, b) != SL_OK) {
        raft_free(b);
        sl_wb_fini(&wb);
        return RAFT_NOMEM;
    }
    sl_wb_fini(&wb);
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++)
            raft_free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    sl_meta_fsm *f = fsm->data;
    const uint8_t *snap;
    size_t len;
    sl_err rc = sl_meta_fsm_unwrap(buf, &snap, &len);

    if (rc == SL_OK)
        rc = sl_meta_restore(&f->meta, snap, len);
    if (rc != SL_OK)
        return RAFT_CORRUPT; /* libraft keeps its buffer then */
    if (f->on_restore)
        f->on_restore(f->arg, snap, len);
    raft_free(buf->base);
    return 0;
}

void sl_meta_fsm_init(sl_meta_fsm *f)
{
    memset(f, 0, sizeof(*f));
    sl_meta_init(&f->meta);
    f->fsm.version = 2;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.snapshot_finalize = fsm_snapshot_finalize;
    f->fsm.restore = fsm_restore;
}

void sl_meta_fsm_fini(sl_meta_fsm *f)
{
    sl_meta_fini(&f->meta);
}
