/*
 * meta_int.h - what meta.c shares with meta_auth.c (the users and rules
 * of the image): allocation that aborts (apply must not diverge), the
 * string codec, the command header, and the auth part's apply, snapshot
 * section and restore.
 * @thread any (an sl_meta is owned by one thread)
 */
#ifndef SL_CLUSTER_META_INT_H
#define SL_CLUSTER_META_INT_H

#include "cluster/meta.h"

void *sl_meta_xcalloc(size_t n, size_t sz);
char *sl_meta_rd_strdup(sl_rd *rd);
void sl_meta_wb_str(sl_wb *wb, const char *s);
void sl_meta_enc_head(sl_wb *wb, int type);

/* meta_auth.c */
sl_err sl_meta_auth_apply(sl_meta *m, uint64_t index, int type, sl_rd *rd);
void sl_meta_auth_fini(sl_meta *m);
/* The section after the topics: u8 tag (1) | u64 auth_index | u32 nusers x
 * user | u32 nacls x rule. A snapshot without it has no users. */
void sl_meta_auth_snapshot(const sl_meta *m, sl_wb *wb);
sl_err sl_meta_auth_restore(sl_meta *m, sl_rd *rd);

#endif
