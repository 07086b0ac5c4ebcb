/*
 * fuzz_meta_cmd.c - the metadata state machine (cluster/meta_apply.c,
 * meta_auth.c) on fuzzed commands: what a CLUSTER_FORWARD carries to the
 * metadata leader and what every node then applies from the Raft log.
 *
 * The input is a sequence of commands, each a 2-byte little-endian length
 * and that many bytes (a short tail is one last command). They are
 * applied in order, at increasing Raft indexes, to an image that already
 * holds three nodes, a topic of two partitions at RF 3 and a user with a
 * rule, so that changes to existing entries are reached, not only
 * creations. After every command, accepted or refused:
 *   - the image keeps its invariants (sl_meta_check: a non-empty in-sync
 *     set inside the replicas, a leader inside the in-sync set),
 *   - a refused command changed nothing but the applied index (the
 *     snapshot is the one before, index aside), as meta.h promises,
 * and at the end the snapshot restores into an image whose snapshot is
 * the same bytes (what a node that installs a snapshot ends up with).
 * At most 64 commands per input keeps the work bounded.
 */
#include "tests/fuzz/fuzz_common.h"

#include "cluster/meta.h"

static void base_image(sl_meta *m)
{
    static const int32_t reps[] = {1, 2, 3, 2, 3, 1};
    static const char *const keys[] = {"retention-ms"};
    static const char *const vals[] = {"3600000"};
    sl_mi_user u;
    sl_wb wb;
    uint64_t ix = 0;
    int32_t id;

    sl_wb_init(&wb, 512);
    for (id = 1; id <= 3; id++) {
        char raft[32], addr[32], stomp[32];
        snprintf(raft, sizeof(raft), "127.0.0.1:%d", 7000 + id);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9000 + id);
        snprintf(stomp, sizeof(stomp), "127.0.0.1:%d", 6000 + id);
        sl_meta_enc_register(&wb, id, raft, addr, stomp);
        if (sl_meta_apply(m, ++ix, wb.p, wb.len) != SL_OK)
            abort();
        sl_wb_reset(&wb);
    }
    sl_meta_enc_create_topic(&wb, "t", 2, 3, keys, vals, 1, reps);
    if (sl_meta_apply(m, ++ix, wb.p, wb.len) != SL_OK)
        abort();
    sl_wb_reset(&wb);
    memset(&u, 0, sizeof(u));
    u.name = "alice";
    u.saltlen = 16;
    u.iter = 4096;
    u.admin = 1;
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    if (sl_meta_apply(m, ++ix, wb.p, wb.len) != SL_OK)
        abort();
    sl_wb_reset(&wb);
    sl_meta_enc_acl_change(&wb, "alice", 1, "t", 0, 3, 0);
    if (sl_meta_apply(m, ++ix, wb.p, wb.len) != SL_OK)
        abort();
    sl_wb_fini(&wb);
}

static void snap(const sl_meta *m, sl_wb *wb)
{
    sl_wb_reset(wb);
    sl_meta_snapshot(m, wb);
}

/* Two snapshots equal but for the applied index (bytes 1-8, after the
 * version byte). */
static int same_but_index(const sl_wb *a, const sl_wb *b)
{
    return a->len == b->len && a->len >= 9 && a->p[0] == b->p[0] &&
           memcmp(a->p + 9, b->p + 9, a->len - 9) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_meta m, r;
    sl_wb before, after;
    char err[256];
    uint64_t ix = 100;
    size_t off = 0;
    int n = 0;

    sl_meta_init(&m);
    base_image(&m);
    sl_wb_init(&before, 1024);
    sl_wb_init(&after, 1024);
    while (off < size && n++ < 64) {
        size_t len;
        if (size - off < 2) {
            len = size - off;
        } else {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
            if (len > size - off)
                len = size - off;
        }
        snap(&m, &before);
        if (sl_meta_apply(&m, ++ix, data + off, len) != SL_OK) {
            snap(&m, &after);
            if (!same_but_index(&before, &after))
                abort(); /* a refused command changed the image */
        }
        if (m.applied != ix)
            abort();
        if (sl_meta_check(&m, err, sizeof(err)) != 0) {
            fprintf(stderr, "invariant: %s\n", err);
            abort();
        }
        off += len;
    }
    snap(&m, &before);
    sl_meta_init(&r);
    if (sl_meta_restore(&r, before.p, before.len) != SL_OK)
        abort();
    snap(&r, &after);
    if (before.len != after.len || memcmp(before.p, after.p, before.len))
        abort();
    sl_meta_fini(&r);
    sl_meta_fini(&m);
    sl_wb_fini(&before);
    sl_wb_fini(&after);
    return 0;
}
