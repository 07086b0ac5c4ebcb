/*
 * fsm.h - the metadata image as a libraft state machine (struct raft_fsm).
 *
 * apply(): sl_meta_apply at the entry's index (libraft passes no index: it
 * is raft_last_applied() + 1, because libraft advances last_applied right
 * after the callback, also for barriers and configuration entries, which
 * never reach the FSM). The command's result code is the apply result
 * (void * holding an sl_err), seen by the proposer's raft_apply callback.
 * snapshot()/snapshot_finalize(): one buffer holding sl_meta_snapshot.
 * restore(): sl_meta_restore, then frees the buffer (libraft hands it over).
 *
 * Framing: libraft's disk store (raft_uv, 0.15) lays entries out in
 * 8-byte units; an entry whose length is not a multiple of 8 comes back
 * after a restart at the wrong offset, and so do the ones after it in the
 * same batch (seen in tests/cluster: a restarted node read garbage from
 * its own log; dqlite pads its commands to 8 bytes for the same reason).
 * So every Raft payload (entries and snapshots) is `u32 length | bytes |
 * zero padding to a multiple of 8`: propose through sl_meta_fsm_wrap,
 * never the bare command.
 *
 * Hooks let the owner see what the FSM did: on_apply(arg, index, cmd, len,
 * rc) after every command, on_restore(arg, snap, len) after a restore.
 * cluster/node.c uses them to pass the same bytes to the broker loop.
 *
 * @thread the thread that runs the raft instance
 */
#ifndef SL_CLUSTER_FSM_H
#define SL_CLUSTER_FSM_H

#include <raft.h>

#include "cluster/meta.h"

typedef struct sl_meta_fsm {
    struct raft_fsm fsm; /* first: &fsm is what raft_init gets */
    struct raft *raft;   /* the instance, for the applied index */
    sl_meta meta;
    void (*on_apply)(void *arg, uint64_t index, const void *cmd, size_t len,
                     sl_err rc);
    void (*on_restore)(void *arg, const void *snap, size_t len);
    void *arg;
} sl_meta_fsm;

/* A raft_malloc'ed payload for cmd (see Framing); SL_ERR_NOMEM. */
sl_err sl_meta_fsm_wrap(const void *cmd, size_t len, struct raft_buffer *out);
/* The command inside a payload; SL_ERR_MALFORMED if it does not fit. */
sl_err sl_meta_fsm_unwrap(const struct raft_buffer *b, const uint8_t **cmd,
                          size_t *len);

/* Set up f (image empty); f->raft must be set before the instance starts. */
void sl_meta_fsm_init(sl_meta_fsm *f);
void sl_meta_fsm_fini(sl_meta_fsm *f);

#endif
