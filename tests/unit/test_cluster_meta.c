/* Unit tests: the cluster metadata image (cluster/meta.c): command
 * encoding, apply and its validation, placement, fencing and leader
 * election rules, snapshot/restore. No Raft here (test_cluster_raft.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/meta.h"

static uint64_t g_index;

static sl_err apply_wb(sl_meta *m, sl_wb *wb)
{
    sl_err rc = sl_meta_apply(m, ++g_index, wb->p, wb->len);
    sl_wb_reset(wb);
    return rc;
}

static void check(const sl_meta *m)
{
    char err[256];
    if (sl_meta_check(m, err, sizeof(err)) != 0)
        fail_msg("invariant: %s", err);
}

/* n nodes registered and unfenced */
static void setup_nodes(sl_meta *m, int n)
{
    sl_wb wb;
    sl_wb_init(&wb, 64);
    for (int i = 1; i <= n; i++) {
        char raft[32], addr[32];
        snprintf(raft, sizeof(raft), "127.0.0.1:%d", 7420 + i);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 7410 + i);
        sl_meta_enc_register(&wb, i, raft, addr, "");
        assert_int_equal(apply_wb(m, &wb), SL_OK);
        sl_meta_enc_fence(&wb, i, 0);
        assert_int_equal(apply_wb(m, &wb), SL_OK);
    }
    sl_wb_fini(&wb);
}

static void create(sl_meta *m, const char *name, int32_t np, int32_t rf,
                   const char *k, const char *v, sl_err want)
{
    int32_t rep[64 * SL_META_MAX_RF];
    char err[128];
    sl_wb wb;
    const char *keys[1] = {k}, *vals[1] = {v};
    assert_int_equal(sl_meta_place(m, name, np, rf, rep, err, sizeof(err)),
                     SL_OK);
    sl_wb_init(&wb, 64);
    sl_meta_enc_create_topic(&wb, name, np, rf, keys, vals, k ? 1 : 0, rep);
    assert_int_equal(apply_wb(m, &wb), want);
    sl_wb_fini(&wb);
}

static void test_register_and_addresses(void **state)
{
    sl_meta m;
    sl_wb wb;
    const sl_mi_node *n;
    (void)state;
    sl_meta_init(&m);
    sl_wb_init(&wb, 64);
    sl_meta_enc_register(&wb, 2, "h:2", "", "");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    n = sl_meta_node_find(&m, 2);
    assert_non_null(n);
    assert_int_equal(n->fenced, 1); /* until the controller sees it */
    assert_string_equal(n->raft_addr, "h:2");
    assert_string_equal(n->addr, "");
    /* an empty address keeps the known one; a new one replaces it */
    sl_meta_enc_register(&wb, 2, "", "h:10", "h:11");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    n = sl_meta_node_find(&m, 2);
    assert_string_equal(n->raft_addr, "h:2");
    assert_string_equal(n->addr, "h:10");
    assert_string_equal(n->stomp_addr, "h:11");
    assert_string_equal(n->tls_addr, "");
    /* the TLS address: set when the command carries it (also to ""),
     * kept when it does not */
    sl_meta_enc_register_tls(&wb, 2, "", "", "", "h:12");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_string_equal(sl_meta_node_find(&m, 2)->tls_addr, "h:12");
    assert_string_equal(sl_meta_node_find(&m, 2)->addr, "h:10");
    sl_meta_enc_register(&wb, 2, "", "h:10", "h:11");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_string_equal(sl_meta_node_find(&m, 2)->tls_addr, "h:12");
    {
        /* and snapshots carry it */
        sl_meta r;
        sl_wb snap;
        sl_meta_init(&r);
        sl_wb_init(&snap, 64);
        sl_meta_snapshot(&m, &snap);
        assert_int_equal(sl_meta_restore(&r, snap.p, snap.len), SL_OK);
        assert_string_equal(sl_meta_node_find(&r, 2)->tls_addr, "h:12");
        sl_wb_fini(&snap);
        sl_meta_fini(&r);
    }
    sl_meta_enc_register_tls(&wb, 2, "", "", "", "");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_string_equal(sl_meta_node_find(&m, 2)->tls_addr, "");
    sl_meta_enc_register(&wb, 0, "", "", "");
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    sl_meta_enc_fence(&wb, 9, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    assert_int_equal(m.applied, g_index);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

static void test_malformed_changes_nothing(void **state)
{
    sl_meta m;
    sl_wb wb, s1, s2;
    uint8_t junk[3] = {1, 99, 0};
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "t", 2, 3, NULL, NULL, SL_OK);
    sl_wb_init(&wb, 64);
    sl_wb_init(&s1, 64);
    sl_wb_init(&s2, 64);
    sl_meta_snapshot(&m, &s1);
    assert_int_equal(sl_meta_apply(&m, m.applied, junk, sizeof(junk)),
                     SL_ERR_MALFORMED);
    /* every truncation of a valid command is refused, image unchanged */
    sl_meta_enc_create_topic(&wb, "u", 1, 1, NULL, NULL, 0,
                             (const int32_t[]){1});
    for (size_t n = 0; n < wb.len; n++)
        assert_int_equal(sl_meta_apply(&m, m.applied, wb.p, n),
                         SL_ERR_MALFORMED);
    sl_meta_snapshot(&m, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.p, s2.p, s1.len);
    sl_wb_fini(&wb);
    sl_wb_fini(&s1);
    sl_wb_fini(&s2);
    sl_meta_fini(&m);
}

static void test_create_validation(void **state)
{
    sl_meta m;
    sl_wb wb;
    const sl_mi_topic *t;
    int32_t rep[4];
    char err[128];
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "orders", 6, 3, "flush", "always", SL_OK);
    create(&m, "orders", 1, 1, NULL, NULL, SL_ERR_TOPIC_EXISTS);
    t = sl_meta_topic_find(&m, "orders");
    assert_non_null(t);
    assert_int_equal(t->nparts, 6);
    assert_string_equal(sl_meta_topic_config(t, "flush"), "always");
    for (int p = 0; p < 6; p++) {
        assert_int_equal(t->parts[p].nrep, 3);
        assert_int_equal(t->parts[p].nisr, 3);
        assert_int_equal(t->parts[p].leader, t->parts[p].rep[0]);
        assert_int_equal(t->parts[p].leader_epoch, 0);
    }
    sl_wb_init(&wb, 64);
    /* a bad name, an unknown node, a repeated node */
    sl_meta_enc_create_topic(&wb, "a/b", 1, 1, NULL, NULL, 0,
                             (const int32_t[]){1});
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_TOPIC);
    sl_meta_enc_create_topic(&wb, "x", 1, 1, NULL, NULL, 0,
                             (const int32_t[]){7});
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
    sl_meta_enc_create_topic(&wb, "x", 1, 2, NULL, NULL, 0,
                             (const int32_t[]){1, 1});
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
    assert_null(sl_meta_topic_find(&m, "x"));
    /* placement refuses more replicas than live nodes, naming both */
    assert_int_equal(sl_meta_place(&m, "x", 1, 4, rep, err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "4"));
    assert_non_null(strstr(err, "3 live"));
    sl_meta_enc_delete_topic(&wb, "orders");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_delete_topic(&wb, "orders");
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_UNKNOWN_TOPIC);
    assert_int_equal(m.ntopics, 0);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

static void test_placement_spreads_leaders(void **state)
{
    sl_meta m;
    int leaders[4] = {0}, replicas[4] = {0};
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "a", 30, 3, NULL, NULL, SL_OK);
    create(&m, "b", 30, 2, NULL, NULL, SL_OK);
    for (size_t i = 0; i < m.ntopics; i++) {
        const sl_mi_topic *t = m.topics[i];
        for (int p = 0; p < t->nparts; p++) {
            leaders[t->parts[p].leader]++;
            for (int r = 0; r < t->parts[p].nrep; r++)
                replicas[t->parts[p].rep[r]]++;
        }
    }
    for (int n = 1; n <= 3; n++) {
        assert_int_equal(leaders[n], 20);  /* 60 partitions over 3 */
        assert_int_equal(replicas[n], 50); /* (90 + 60) / 3 */
    }
    check(&m);
    sl_meta_fini(&m);
}

static void test_fence_moves_leaders(void **state)
{
    sl_meta m;
    sl_wb wb;
    const sl_mi_topic *t;
    int32_t old_leader[12], old_epoch[12];
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "t", 12, 3, NULL, NULL, SL_OK);
    t = sl_meta_topic_find(&m, "t");
    for (int p = 0; p < 12; p++) {
        old_leader[p] = t->parts[p].leader;
        old_epoch[p] = t->parts[p].leader_epoch;
    }
    sl_wb_init(&wb, 64);
    sl_meta_enc_fence(&wb, 2, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    t = sl_meta_topic_find(&m, "t");
    for (int p = 0; p < 12; p++) {
        const sl_mi_part *mp = &t->parts[p];
        assert_int_not_equal(mp->leader, 2);
        assert_int_equal(mp->nisr, 2);
        if (old_leader[p] == 2)
            assert_int_equal(mp->leader_epoch, old_epoch[p] + 1);
        else
            assert_int_equal(mp->leader, old_leader[p]);
    }
    check(&m);
    /* node 2 comes back: it does not rejoin ISRs by itself (replication
     * does that) and leaders stay where they are */
    sl_meta_enc_fence(&wb, 2, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    for (int p = 0; p < 12; p++)
        assert_int_equal(t->parts[p].nisr, 2);
    /* fence 1 and 3 too: partitions go offline, the last ISR member
     * stays; unfencing it brings the partition back under it */
    sl_meta_enc_fence(&wb, 1, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_fence(&wb, 3, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    t = sl_meta_topic_find(&m, "t");
    for (int p = 0; p < 12; p++) {
        assert_int_equal(t->parts[p].leader, -1);
        assert_int_equal(t->parts[p].nisr, 1);
        assert_int_not_equal(t->parts[p].isr[0], 2); /* 2 was out of sync */
    }
    check(&m);
    sl_meta_enc_fence(&wb, 2, 0); /* 2 stays fenced? it was unfenced */
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    for (int p = 0; p < 12; p++)
        assert_int_equal(t->parts[p].leader, -1); /* clean: never 2 */
    sl_meta_enc_fence(&wb, 3, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    for (int p = 0; p < 12; p++) {
        const sl_mi_part *mp = &t->parts[p];
        if (mp->isr[0] == 3)
            assert_int_equal(mp->leader, 3);
        else
            assert_int_equal(mp->leader, -1);
    }
    check(&m);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

static void test_unclean_election(void **state)
{
    sl_meta m;
    sl_wb wb;
    const sl_mi_topic *t;
    int32_t isr1[1] = {1};
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 2);
    create(&m, "u", 1, 2, "unclean-leader-election", "yes", SL_OK);
    create(&m, "c", 1, 2, NULL, NULL, SL_OK);
    sl_wb_init(&wb, 64);
    /* both: leader 1, ISR shrinks to {1} (2 fell behind) */
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "c" : "u";
        t = sl_meta_topic_find(&m, name);
        sl_meta_enc_partition_change(&wb, name, 0, t->parts[0].part_epoch, 1,
                                     isr1, 1);
        assert_int_equal(apply_wb(&m, &wb), SL_OK);
    }
    t = sl_meta_topic_find(&m, "u");
    assert_int_equal(t->parts[0].leader, 1);
    sl_meta_enc_fence(&wb, 1, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    t = sl_meta_topic_find(&m, "u");
    assert_int_equal(t->parts[0].leader, 2); /* unclean: allowed */
    assert_int_equal(t->parts[0].nisr, 1);
    assert_int_equal(t->parts[0].isr[0], 2);
    t = sl_meta_topic_find(&m, "c");
    assert_int_equal(t->parts[0].leader, -1); /* clean: offline */
    assert_int_equal(t->parts[0].isr[0], 1);
    check(&m);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

static void test_partition_change_cas(void **state)
{
    sl_meta m;
    sl_wb wb;
    const sl_mi_topic *t;
    int32_t pe, le;
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "t", 1, 3, NULL, NULL, SL_OK);
    t = sl_meta_topic_find(&m, "t");
    pe = t->parts[0].part_epoch;
    le = t->parts[0].leader_epoch;
    sl_wb_init(&wb, 64);
    /* ISR shrink by the leader: leader epoch unchanged */
    sl_meta_enc_partition_change(&wb, "t", 0, pe, t->parts[0].leader,
                                 (const int32_t[]){t->parts[0].leader}, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(t->parts[0].part_epoch, pe + 1);
    assert_int_equal(t->parts[0].leader_epoch, le);
    assert_int_equal(t->parts[0].nisr, 1);
    /* the same change again is stale */
    sl_meta_enc_partition_change(&wb, "t", 0, pe, t->parts[0].leader,
                                 (const int32_t[]){t->parts[0].leader}, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_REBALANCE);
    /* a leader outside the ISR, a non-replica in the ISR, bad partition */
    sl_meta_enc_partition_change(&wb, "t", 0, pe + 1, 9,
                                 (const int32_t[]){t->parts[0].leader}, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    sl_meta_enc_partition_change(&wb, "t", 0, pe + 1, 1,
                                 (const int32_t[]){1, 9}, 2);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    sl_meta_enc_partition_change(&wb, "t", 5, pe + 1, 1, (const int32_t[]){1},
                                 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_UNKNOWN_PARTITION);
    /* ISR grows back, given in any order, kept in replica order */
    sl_meta_enc_partition_change(&wb, "t", 0, pe + 1, t->parts[0].leader,
                                 (const int32_t[]){t->parts[0].rep[2],
                                                   t->parts[0].rep[0],
                                                   t->parts[0].rep[1]},
                                 3);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_memory_equal(t->parts[0].isr, t->parts[0].rep, 3 * sizeof(int32_t));
    check(&m);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

static void test_snapshot_roundtrip(void **state)
{
    sl_meta m, r;
    sl_wb s1, s2;
    (void)state;
    sl_meta_init(&m);
    sl_meta_init(&r);
    setup_nodes(&m, 5);
    create(&m, "a", 7, 3, "retention-ms", "1000", SL_OK);
    create(&m, "b", 1, 5, NULL, NULL, SL_OK);
    sl_wb_init(&s1, 64);
    sl_wb_init(&s2, 64);
    sl_meta_snapshot(&m, &s1);
    assert_int_equal(sl_meta_restore(&r, s1.p, s1.len), SL_OK);
    sl_meta_snapshot(&r, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.p, s2.p, s1.len);
    assert_int_equal(r.applied, m.applied);
    assert_string_equal(
        sl_meta_topic_config(sl_meta_topic_find(&r, "a"), "retention-ms"),
        "1000");
    /* every truncation is refused and leaves the target as it was */
    for (size_t n = 0; n < s1.len; n++)
        assert_int_equal(sl_meta_restore(&r, s1.p, n), SL_ERR_CORRUPT);
    sl_wb_reset(&s2);
    sl_meta_snapshot(&r, &s2);
    assert_memory_equal(s1.p, s2.p, s1.len);
    sl_wb_fini(&s1);
    sl_wb_fini(&s2);
    sl_meta_fini(&m);
    sl_meta_fini(&r);
}

static void test_liveness_cmds(void **state)
{
    sl_meta m;
    sl_wb cmds;
    int32_t ids[3] = {1, 2, 3};
    int alive[3] = {1, 0, 1};
    size_t n, off = 0;
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    sl_wb_init(&cmds, 64);
    n = sl_meta_liveness_cmds(&m, ids, alive, 3, &cmds);
    assert_int_equal(n, 1);
    while (off < cmds.len) {
        uint32_t len = sl_get_u32(cmds.p + off);
        assert_int_equal(sl_meta_cmd_type(cmds.p + off + 4, len),
                         SL_MCMD_FENCE_NODE);
        assert_int_equal(sl_meta_apply(&m, ++g_index, cmds.p + off + 4, len),
                         SL_OK);
        off += 4 + len;
    }
    assert_int_equal(sl_meta_node_find(&m, 2)->fenced, 1);
    sl_wb_reset(&cmds);
    assert_int_equal(sl_meta_liveness_cmds(&m, ids, alive, 3, &cmds), 0);
    alive[1] = 1;
    assert_int_equal(sl_meta_liveness_cmds(&m, ids, alive, 3, &cmds), 1);
    sl_wb_fini(&cmds);
    sl_meta_fini(&m);
}

static void user_of(sl_mi_user *u, const char *name, uint8_t fill, int admin)
{
    memset(u, 0, sizeof(*u));
    u->name = (char *)name;
    u->saltlen = 16;
    memset(u->salt, fill, 16);
    u->iter = 4096;
    memset(u->stored_key, fill + 1, SL_META_KEY_LEN);
    memset(u->server_key, fill + 2, SL_META_KEY_LEN);
    u->admin = (uint8_t)admin;
    u->created_ms = 1000 + fill;
}

/* Users and rules (meta_auth.c): what apply decides from the state, and
 * that snapshots carry them. */
static void test_users_and_rules(void **state)
{
    sl_meta m, r;
    sl_mi_user u;
    sl_wb wb, s1, s2;
    (void)state;
    sl_meta_init(&m);
    sl_meta_init(&r);
    sl_wb_init(&wb, 64);
    /* two nodes seed the same administrator: the first one's wins */
    user_of(&u, "admin", 1, 1);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(m.auth_index, g_index);
    user_of(&u, "admin", 9, 1);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    assert_int_equal(sl_meta_user_find(&m, "admin")->salt[0], 1);
    /* add refuses an existing user; passwd needs one; keep admin */
    user_of(&u, "bob", 2, 0);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_EXISTING);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    assert_int_not_equal(apply_wb(&m, &wb), SL_OK);
    user_of(&u, "alice", 3, 0);
    sl_meta_enc_user_upsert(&wb, &u, SL_META_USER_NEW);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(m.nusers, 3);
    assert_string_equal(m.users[0].name, "admin"); /* sorted */
    assert_string_equal(m.users[1].name, "alice");
    user_of(&u, "admin", 5, 0);
    sl_meta_enc_user_upsert(&wb, &u,
                            SL_META_USER_EXISTING | SL_META_USER_KEEP_ADMIN);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_user_find(&m, "admin")->admin, 1);
    assert_int_equal(sl_meta_user_find(&m, "admin")->salt[0], 5);
    assert_int_equal(sl_meta_user_find(&m, "admin")->created_ms, 1001);
    /* rules: grant needs the user; grants add up; revokes remove bits */
    sl_meta_enc_acl_change(&wb, "carol", 1, "orders", 0, 1, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    sl_meta_enc_acl_change(&wb, "bob", 1, "orders", 0, 1, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_acl_change(&wb, "bob", 1, "orders", 0, 2, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_acl_change(&wb, "bob", 2, "g", 1, 0x40, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    sl_meta_enc_acl_change(&wb, "alice", 3, "ignored", 1, 0x20, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_non_null(sl_meta_acl_find(&m, "alice", 3, "", 0));
    assert_int_equal(sl_meta_acl_find(&m, "bob", 1, "orders", 0)->ops, 3);
    sl_meta_enc_acl_change(&wb, "bob", 1, "orders", 0, 0, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_acl_find(&m, "bob", 1, "orders", 0)->ops, 2);
    sl_meta_enc_acl_change(&wb, "bob", 1, "nothing", 0, 0, 0x1ff);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    /* snapshot and restore carry users, rules and auth_index */
    sl_wb_init(&s1, 64);
    sl_wb_init(&s2, 64);
    sl_meta_snapshot(&m, &s1);
    assert_int_equal(sl_meta_restore(&r, s1.p, s1.len), SL_OK);
    sl_meta_snapshot(&r, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.p, s2.p, s1.len);
    assert_int_equal(r.auth_index, m.auth_index);
    assert_int_equal(r.nusers, 3);
    assert_int_equal(sl_meta_acl_find(&r, "bob", 2, "g", 1)->ops, 0x40);
    for (size_t n = 0; n < s1.len; n++)
        assert_int_equal(sl_meta_restore(&r, s1.p, n), SL_ERR_CORRUPT);
    /* deleting a user deletes its rules */
    sl_meta_enc_user_delete(&wb, "bob");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_null(sl_meta_user_find(&m, "bob"));
    assert_null(sl_meta_acl_find(&m, "bob", 2, "g", 1));
    assert_int_equal(m.nacls, 1);
    sl_meta_enc_user_delete(&wb, "bob");
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    /* a bad name changes nothing */
    user_of(&u, "no spaces", 4, 0);
    sl_meta_enc_user_upsert(&wb, &u, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_MALFORMED);
    assert_int_equal(m.nusers, 2);
    sl_wb_fini(&s1);
    sl_wb_fini(&s2);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
    sl_meta_fini(&r);
}

/* Controlled shutdown: the node's own fence moves its leadership and ISR
 * membership like any fence, the controller does not unfence it while it
 * is still heard from, and its registration when it is back lets the
 * controller unfence it. */
static void test_controlled_shutdown_fence(void **state)
{
    sl_meta m, r;
    sl_wb wb, cmds, snap;
    int32_t ids[3] = {1, 2, 3};
    int alive[3] = {1, 1, 1};
    const sl_mi_part *p;
    (void)state;
    sl_meta_init(&m);
    sl_meta_init(&r);
    setup_nodes(&m, 3);
    create(&m, "t", 3, 3, NULL, NULL, SL_OK);
    sl_wb_init(&wb, 64);
    sl_wb_init(&cmds, 64);
    sl_wb_init(&snap, 256);
    sl_meta_enc_fence(&wb, 2, SL_MI_STOPPED);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    check(&m);
    assert_int_equal(sl_meta_node_find(&m, 2)->fenced, SL_MI_STOPPED);
    for (int32_t i = 0; i < 3; i++) {
        p = &sl_meta_topic_find(&m, "t")->parts[i];
        assert_true(p->leader != 2 && p->leader > 0);
        assert_int_equal(p->nisr, 2);
        for (int32_t k = 0; k < p->nisr; k++)
            assert_true(p->isr[k] != 2);
    }
    /* alive (still stopping): no UNFENCE for it */
    assert_int_equal(sl_meta_liveness_cmds(&m, ids, alive, 3, &cmds), 0);
    /* the mark survives a snapshot */
    sl_meta_snapshot(&m, &snap);
    assert_int_equal(sl_meta_restore(&r, snap.p, snap.len), SL_OK);
    assert_int_equal(sl_meta_node_find(&r, 2)->fenced, SL_MI_STOPPED);
    /* a plain fence of a stopped node changes nothing else */
    sl_meta_enc_fence(&wb, 2, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_node_find(&m, 2)->fenced, 1);
    sl_meta_enc_fence(&wb, 2, SL_MI_STOPPED);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    /* back: it registers, then the controller unfences it */
    sl_meta_enc_register(&wb, 2, "", "h:2", "");
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_node_find(&m, 2)->fenced, 1);
    assert_int_equal(sl_meta_liveness_cmds(&m, ids, alive, 3, &cmds), 1);
    sl_wb_fini(&wb);
    sl_wb_fini(&cmds);
    sl_wb_fini(&snap);
    sl_meta_fini(&m);
    sl_meta_fini(&r);
}

static void apply_cmds(sl_meta *m, sl_wb *cmds)
{
    size_t off = 0;
    while (off + 4 <= cmds->len) {
        uint32_t len = sl_get_u32(cmds->p + off);
        assert_int_equal(sl_meta_apply(m, ++g_index, cmds->p + off + 4, len),
                         SL_OK);
        off += 4 + len;
    }
    sl_wb_reset(cmds);
}

/* Reassignment: the new replicas are added first, the controller
 * completes it once they are in the ISR, the old ones go, the first
 * target leads. */
static void test_reassign(void **state)
{
    sl_meta m, r;
    sl_wb wb, cmds, snap;
    sl_mi_part *p;
    int32_t tgt[3], old[3], isr[4], epoch;
    (void)state;
    sl_meta_init(&m);
    sl_meta_init(&r);
    setup_nodes(&m, 4);
    create(&m, "t", 1, 3, NULL, NULL, SL_OK);
    sl_wb_init(&wb, 64);
    sl_wb_init(&cmds, 64);
    sl_wb_init(&snap, 256);
    p = &((sl_mi_topic *)sl_meta_topic_find(&m, "t"))->parts[0];
    memcpy(old, p->rep, sizeof(old));
    epoch = p->leader_epoch;
    /* the node not holding it replaces the current leader */
    for (int32_t i = 1; i <= 4; i++)
        if (i != old[0] && i != old[1] && i != old[2])
            tgt[0] = i;
    tgt[1] = old[1];
    tgt[2] = old[2];
    /* unknown or repeated nodes are refused */
    {
        int32_t bad[2] = {tgt[1], tgt[1]}, unk[1] = {99};
        sl_meta_enc_reassign(&wb, "t", 0, bad, 2);
        assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
        sl_meta_enc_reassign(&wb, "t", 0, unk, 1);
        assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
        sl_meta_enc_reassign(&wb, "t", 1, tgt, 3);
        assert_int_equal(apply_wb(&m, &wb), SL_ERR_UNKNOWN_PARTITION);
    }
    sl_meta_enc_reassign(&wb, "t", 0, tgt, 3);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    check(&m);
    assert_int_equal(p->nrep, 4); /* old ones, then the new one */
    assert_int_equal(p->rep[3], tgt[0]);
    assert_int_equal(p->nisr, 3);
    assert_int_equal(p->ntarget, 3);
    /* the replica being added counts once the move is done: until then
     * the partition keeps its durability rule, and the topic its rf */
    assert_int_equal(sl_meta_part_rf(p), 3);
    assert_int_equal(sl_meta_topic_find(&m, "t")->rf, 3);
    /* in progress: survives a snapshot */
    sl_meta_snapshot(&m, &snap);
    assert_int_equal(sl_meta_restore(&r, snap.p, snap.len), SL_OK);
    assert_int_equal(sl_meta_topic_find(&r, "t")->parts[0].ntarget, 3);
    /* not complete while the new replica is out of the ISR */
    assert_int_equal(sl_meta_reassign_cmds(&m, &cmds), 0);
    sl_meta_enc_reassign_done(&wb, "t", 0, p->part_epoch);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_REBALANCE);
    /* the leader sees it caught up: it joins the ISR */
    memcpy(isr, p->rep, sizeof(int32_t) * 4);
    sl_meta_enc_partition_change(&wb, "t", 0, p->part_epoch, p->leader, isr, 4);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_reassign_cmds(&m, &cmds), 1);
    apply_cmds(&m, &cmds);
    check(&m);
    assert_int_equal(p->ntarget, 0);
    assert_int_equal(p->nrep, 3);
    assert_memory_equal(p->rep, tgt, sizeof(tgt));
    assert_int_equal(p->nisr, 3);
    assert_int_equal(p->leader, tgt[0]);
    assert_int_equal(p->leader_epoch, epoch + 1);
    assert_int_equal(sl_meta_topic_find(&m, "t")->rf, 3);
    assert_int_equal(sl_meta_reassign_cmds(&m, &cmds), 0);
    /* a reassignment to the same replicas in another order moves only
     * the leader (a preferred-leader election) */
    tgt[0] = p->rep[1];
    tgt[1] = p->rep[0];
    tgt[2] = p->rep[2];
    sl_meta_enc_reassign(&wb, "t", 0, tgt, 3);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(sl_meta_reassign_cmds(&m, &cmds), 1);
    apply_cmds(&m, &cmds);
    check(&m);
    assert_int_equal(p->leader, tgt[0]);
    assert_memory_equal(p->rep, tgt, sizeof(tgt));
    sl_wb_fini(&wb);
    sl_wb_fini(&cmds);
    sl_wb_fini(&snap);
    sl_meta_fini(&m);
    sl_meta_fini(&r);
}

/* Topic changes through the log: configs merged (an empty value removes
 * one), partitions added with their placement; both checked. */
static void test_topic_changes(void **state)
{
    sl_meta m, r;
    sl_wb wb, snap;
    const sl_mi_topic *t;
    const char *k1[2] = {"retention-ms", "flush"}, *v1[2] = {"1000", "never"};
    const char *k2[1] = {"flush"}, *v2[1] = {""};
    int32_t rep[2 * 3], bad[3] = {1, 1, 2};
    char err[128];
    (void)state;
    sl_meta_init(&m);
    sl_meta_init(&r);
    setup_nodes(&m, 3);
    create(&m, "t", 2, 3, "retention-ms", "5", SL_OK);
    sl_wb_init(&wb, 64);
    sl_wb_init(&snap, 256);
    sl_meta_enc_alter_topic(&wb, "t", k1, v1, 2);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    t = sl_meta_topic_find(&m, "t");
    assert_int_equal(t->ncfg, 2);
    assert_string_equal(sl_meta_topic_config(t, "retention-ms"), "1000");
    assert_string_equal(sl_meta_topic_config(t, "flush"), "never");
    sl_meta_enc_alter_topic(&wb, "t", k2, v2, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_int_equal(t->ncfg, 1);
    assert_null(sl_meta_topic_config(t, "flush"));
    sl_meta_enc_alter_topic(&wb, "nope", k2, v2, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_UNKNOWN_TOPIC);
    /* partitions: more than now, valid placement */
    for (int32_t p = 2; p < 4; p++)
        assert_int_equal(sl_meta_place_one(&m, "t", p, 3, rep + (p - 2) * 3,
                                           err, sizeof(err)),
                         SL_OK);
    sl_meta_enc_add_partitions(&wb, "t", 3, 3, bad, 1);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
    sl_meta_enc_add_partitions(&wb, "t", 2, 3, rep, 0);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    sl_meta_enc_add_partitions(&wb, "t", 4, 3, rep, 2);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    check(&m);
    t = sl_meta_topic_find(&m, "t");
    assert_int_equal(t->nparts, 4);
    assert_int_equal(t->parts[3].nisr, 3);
    assert_int_equal(t->parts[3].leader, rep[3]);
    assert_int_equal(t->parts[0].leader_epoch, 0); /* old ones unchanged */
    /* placed for 3 partitions (two new ones), applied at 4: another add
     * came first; refused as such, not as malformed */
    sl_meta_enc_add_partitions(&wb, "t", 5, 3, rep, 2);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    assert_int_equal(t->nparts, 4);
    sl_meta_snapshot(&m, &snap);
    assert_int_equal(sl_meta_restore(&r, snap.p, snap.len), SL_OK);
    assert_int_equal(sl_meta_topic_find(&r, "t")->nparts, 4);
    sl_wb_fini(&wb);
    sl_wb_fini(&snap);
    sl_meta_fini(&m);
    sl_meta_fini(&r);
}

/* Membership: requests decode (and never apply), a node a partition
 * still names cannot leave the image, one no partition names can. */
static void test_membership(void **state)
{
    sl_meta m;
    sl_wb wb;
    char addr[64];
    int type;
    int32_t id, tgt[2];
    (void)state;
    sl_meta_init(&m);
    setup_nodes(&m, 3);
    create(&m, "t", 1, 3, NULL, NULL, SL_OK);
    sl_wb_init(&wb, 64);
    sl_meta_enc_member(&wb, SL_MREQ_MEMBER_ADD, 4, "10.0.0.4:7420");
    assert_int_equal(sl_meta_cmd_type(wb.p, wb.len), SL_MREQ_MEMBER_ADD);
    assert_int_equal(
        sl_meta_dec_member(wb.p, wb.len, &type, &id, addr, sizeof(addr)),
        SL_OK);
    assert_int_equal(type, SL_MREQ_MEMBER_ADD);
    assert_int_equal(id, 4);
    assert_string_equal(addr, "10.0.0.4:7420");
    assert_int_equal(
        sl_meta_dec_member(wb.p, wb.len - 1, &type, &id, addr, sizeof(addr)),
        SL_ERR_MALFORMED);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_ARG);
    sl_meta_enc_member(&wb, SL_MREQ_MEMBER_REMOVE, 3, NULL);
    assert_int_equal(
        sl_meta_dec_member(wb.p, wb.len, &type, &id, addr, sizeof(addr)),
        SL_OK);
    assert_int_equal(type, SL_MREQ_MEMBER_REMOVE);
    assert_string_equal(addr, "");
    sl_wb_reset(&wb);
    /* node 3 holds a replica: it stays */
    assert_true(sl_meta_node_used(&m, 3));
    sl_meta_enc_unregister(&wb, 3);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_INVALID_CONFIG);
    assert_non_null(sl_meta_node_find(&m, 3));
    /* moved off (as remove-node does), then it can go */
    tgt[0] = 1;
    tgt[1] = 2;
    sl_meta_enc_reassign(&wb, "t", 0, tgt, 2);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_true(sl_meta_node_used(&m, 3)); /* until done */
    {
        sl_wb cmds;
        size_t off = 0;
        sl_wb_init(&cmds, 64);
        assert_int_equal(sl_meta_reassign_cmds(&m, &cmds), 1);
        while (off + 4 <= cmds.len) {
            uint32_t len = sl_get_u32(cmds.p + off);
            assert_int_equal(
                sl_meta_apply(&m, ++g_index, cmds.p + off + 4, len), SL_OK);
            off += 4 + len;
        }
        sl_wb_fini(&cmds);
    }
    assert_false(sl_meta_node_used(&m, 3));
    sl_meta_enc_unregister(&wb, 3);
    assert_int_equal(apply_wb(&m, &wb), SL_OK);
    assert_null(sl_meta_node_find(&m, 3));
    sl_meta_enc_unregister(&wb, 3);
    assert_int_equal(apply_wb(&m, &wb), SL_ERR_NOT_FOUND);
    check(&m);
    sl_wb_fini(&wb);
    sl_meta_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_addresses),
        cmocka_unit_test(test_malformed_changes_nothing),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_placement_spreads_leaders),
        cmocka_unit_test(test_fence_moves_leaders),
        cmocka_unit_test(test_unclean_election),
        cmocka_unit_test(test_partition_change_cas),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_liveness_cmds),
        cmocka_unit_test(test_users_and_rules),
        cmocka_unit_test(test_controlled_shutdown_fence),
        cmocka_unit_test(test_reassign),
        cmocka_unit_test(test_topic_changes),
        cmocka_unit_test(test_membership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
