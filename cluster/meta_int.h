/*
 * meta_int.h - what meta.c shares with meta_apply.c, meta_cmd.c and
 * meta_auth.c (the users and rules of the image): allocation that aborts
 * (apply must not diverge), lookups, the string codec, the command header
 * (meta_cmd.c), and the auth part's apply, snapshot section and restore.
 * @thread any (an sl_meta is owned by one thread)
 */
#ifndef SL_CLUSTER_META_INT_H
#define SL_CLUSTER_META_INT_H

#include "cluster/meta.h"

void *sl_meta_xcalloc(size_t n, size_t sz);
char *sl_meta_xstrndup(const char *s, size_t n);
char *sl_meta_rd_strdup(sl_rd *rd);
void sl_meta_topic_free(sl_mi_topic *t);
/* Where id (name) is, or would be inserted, in the sorted nodes (topics);
 * *found says whether it is there. */
size_t sl_meta_node_pos(const sl_meta *m, int32_t id, int *found);
size_t sl_meta_topic_pos(const sl_meta *m, const char *name, int *found);
int sl_meta_in_set(const int32_t *s, int32_t n, int32_t id);
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
