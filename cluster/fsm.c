/*
 * fsm.c - the metadata image as a libraft state machine (see fsm.h).
 */
#include "cluster/fsm.h"

#include <stdint.h>
#include <string.h>

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    sl_meta_fsm *f = fsm->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    sl_err rc = sl_meta_apply(&f->meta, index, buf->base, buf->len);

    if (f->on_apply)
        f->on_apply(f->arg, index, buf->base, buf->len, rc);
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
    b->base = raft_malloc(wb.len);
    if (!b->base) {
        raft_free(b);
        sl_wb_fini(&wb);
        return RAFT_NOMEM;
    }
    memcpy(b->base, wb.p, wb.len);
    b->len = wb.len;
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
    sl_err rc = sl_meta_restore(&f->meta, buf->base, buf->len);

    if (rc != SL_OK)
        return RAFT_CORRUPT; /* libraft keeps its buffer then */
    if (f->on_restore)
        f->on_restore(f->arg, buf->base, buf->len);
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
