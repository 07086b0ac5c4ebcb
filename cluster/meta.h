/*
 * meta.h - the cluster metadata image and the commands that change it.
 *
 * Every broker of a cluster holds one sl_meta: the nodes (addresses, fenced
 * or not), the topics with their configuration, and per partition its
 * replicas, leader, leader epoch, partition epoch and in-sync set (ISR).
 * It changes only by applying commands in the order of the metadata Raft
 * log (cluster/node.c runs libraft; docs/cluster.md section 2). Apply is
 * deterministic: two images that applied the same commands are equal, and
 * their snapshots are byte-identical. So the Raft thread's FSM and the
 * broker loop each keep a copy and apply the same bytes, without locks.
 *
 * Command encoding (all integers little-endian, strings str16):
 *
 *   u8 version (= 1) | u8 type | fields
 *
 *   REGISTER_NODE     i32 id, str16 raft_addr, str16 addr, str16 stomp_addr
 *                     [str16 tls_addr] (an empty address keeps the one
 *                     already known; tls_addr, when there, is set as it
 *                     is: empty = no TLS listener)
 *   FENCE_NODE        i32 id [u8 1 = the node's controlled shutdown]
 *   UNFENCE_NODE      i32 id
 *   CREATE_TOPIC      str16 name, i32 nparts, i32 rf, u32 nconfigs
 *                     x {str16 key, str16 value}, nparts x rf x i32 replica
 *   DELETE_TOPIC      str16 name
 *   PARTITION_CHANGE  str16 topic, i32 partition, i32 expect_part_epoch,
 *                     i32 leader, u32 nisr x i32 isr
 *                     (the leader epoch increases when leader changes)
 *   USER_UPSERT       str16 name, u8 flags, u8 admin, i64 created_ms,
 *                     u8 saltlen x salt, u32 iterations, 32 stored_key,
 *                     32 server_key (SCRAM-SHA-256: never a password)
 *   USER_DELETE       str16 name (its rules go too)
 *   ACL_CHANGE        str16 user, u8 kind, str16 pattern, u8 prefix,
 *                     u32 ops_add, u32 ops_remove (a rule whose ops end
 *                     up empty is removed)
 *   REASSIGN          str16 topic, i32 partition, u32 n x i32 target
 *                     starts moving the partition to the target replicas
 *                     (Kafka's adding/removing replicas): replicas become
 *                     the current ones plus the new targets, the ISR is
 *                     unchanged; the new replicas copy the log and join
 *                     the ISR when caught up (broker/replica.c). A new
 *                     REASSIGN replaces a target in progress. The
 *                     replicas before the first one are kept (orig)
 *                     until REASSIGN_DONE: a cancel is a REASSIGN back
 *                     to them.
 *   REASSIGN_DONE     str16 topic, i32 partition, i32 expect_part_epoch
 *                     the controller's completion once every target is in
 *                     the ISR: replicas = target, ISR = ISR within target,
 *                     leader = the first target if in sync and not
 *                     fenced, else the current leader if it stays, else
 *                     the first in-sync target (a new leader epoch when
 *                     it changes). Refused (SL_ERR_REBALANCE) while a
 *                     target is out of the ISR or the epoch moved on.
 *   A topic's rf is the largest sl_meta_part_rf of its partitions.
 *   UNREGISTER_NODE   i32 id: the node leaves the image (cluster
 *                     remove-node, after its Raft removal); refused
 *                     (SL_ERR_INVALID_CONFIG) while a partition still
 *                     names it as a replica, in-sync or target.
 *   ALTER_TOPIC       str16 name, u32 n x {str16 key, str16 value}: the
 *                     topic's configs (an empty value removes the key)
 *   ADD_PARTITIONS    str16 name, i32 nparts (new total, more than now),
 *                     i32 rf, (nparts - old) x rf x i32 replica: the new
 *                     partitions and their placement (as CREATE_TOPIC)
 *   MEMBER_ADD        i32 id, str16 raft_addr  } requests, not commands:
 *   MEMBER_REMOVE     i32 id                   } cluster/node.h
 *
 * Apply validates each command against the image; a command that does not
 * fit (topic exists, stale partition epoch, unknown node) changes nothing
 * and returns its error, which the proposer reports. Undecodable bytes are
 * SL_ERR_MALFORMED and change nothing either. Allocation failure inside
 * apply aborts the process: an image that silently diverged from its peers
 * is worse than a crash, after which the log is replayed.
 *
 * Rules applied on FENCE_NODE n (docs/cluster.md 2.3), for each partition:
 *   - n leads it: leader = first replica (replica order) in the ISR and not
 *     fenced, ISR -= n, leader epoch + 1. No such replica: if the topic
 *     config has unclean-leader-election yes, the first alive replica, ISR =
 *     {it}; else leader = -1 (offline) and n stays as the last ISR member.
 *   - n is a follower in the ISR: ISR -= n.
 *   Every change increases the partition epoch.
 * On UNFENCE_NODE n: an offline partition (leader -1) whose ISR holds n gets
 * n as leader, leader epoch + 1.
 *
 * Ensures (checked by tests/unit/test_cluster_meta.c):
 *   - leader epochs and partition epochs never decrease;
 *   - leader is -1 or a member of the ISR; the ISR is a subset of replicas
 *     and never empty.
 *
 * @thread any: an sl_meta is owned by one thread; nothing here is shared.
 */
#ifndef SL_CLUSTER_META_H
#define SL_CLUSTER_META_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"
#include "protocol/rd.h"

#define SL_META_VERSION 1
#define SL_META_MAX_NODES 256
#define SL_META_MAX_RF 16
#define SL_META_MAX_PARTS 10000
#define SL_META_MAX_CONFIGS 256

enum sl_meta_cmd {
    SL_MCMD_REGISTER_NODE = 1,
    SL_MCMD_FENCE_NODE = 2,
    SL_MCMD_UNFENCE_NODE = 3,
    SL_MCMD_CREATE_TOPIC = 4,
    SL_MCMD_DELETE_TOPIC = 5,
    SL_MCMD_PARTITION_CHANGE = 6,
    /* users and permissions (issue 16; cluster/meta_auth.c) */
    SL_MCMD_USER_UPSERT = 20,
    SL_MCMD_USER_DELETE = 21,
    SL_MCMD_ACL_CHANGE = 22,
    /* operations (issue 14, docs/cluster.md 10) */
    SL_MCMD_REASSIGN = 30,
    SL_MCMD_REASSIGN_DONE = 31,
    SL_MCMD_UNREGISTER_NODE = 32,
    /* membership requests: carried like commands (proposed, forwarded)
     * but executed by cluster/node.c as Raft configuration changes; never
     * in the log, apply refuses them */
    SL_MREQ_MEMBER_ADD = 33,
    SL_MREQ_MEMBER_REMOVE = 34,
    SL_MCMD_ALTER_TOPIC = 35,
    SL_MCMD_ADD_PARTITIONS = 36,
};

typedef struct sl_mi_node {
    int32_t id;
    char *raft_addr;  /* HOST:PORT of the Raft transport */
    char *addr;       /* binary protocol HOST:PORT ("" until registered) */
    char *stomp_addr; /* STOMP HOST:PORT ("" until registered) */
    char *tls_addr;   /* binary protocol over TLS HOST:PORT ("" none) */
    int fenced;       /* 1 until the controller sees it alive; 2 =
                         SL_MI_STOPPED */
} sl_mi_node;

/* fenced == SL_MI_STOPPED: the node fenced itself on SIGTERM (controlled
 * shutdown, docs/cluster.md 10.4). The controller does not unfence it
 * while it is still heard from (it is about to stop); its REGISTER_NODE
 * when it starts again turns it into an ordinary fenced node (1), which
 * the controller unfences once alive. */
#define SL_MI_STOPPED 2

typedef struct sl_mi_part {
    int32_t leader;       /* node id, or -1 when offline */
    int32_t leader_epoch; /* + 1 on every leader change */
    int32_t part_epoch;   /* + 1 on every change (leader or ISR) */
    int32_t nrep, nisr;
    int32_t rep[SL_META_MAX_RF]; /* preferred leader first */
    int32_t isr[SL_META_MAX_RF]; /* in replica order */
    int32_t ntarget;             /* > 0: a reassignment is in progress */
    int32_t target[SL_META_MAX_RF];
    /* the replicas when the reassignment in progress started (REASSIGN
     * while none was): what `partition reassign --cancel` proposes as
     * the target; norig 0 when none (or restored from a snapshot older
     * than version 4) */
    int32_t norig;
    int32_t orig[SL_META_MAX_RF];
} sl_mi_part;

typedef struct sl_mi_topic {
    char *name;
    int32_t nparts, rf;
    uint32_t ncfg;
    char **keys, **vals;
    sl_mi_part *parts; /* nparts */
} sl_mi_topic;

/* A user: SCRAM-SHA-256 credentials (broker/auth.h's sl_user). */
#define SL_META_KEY_LEN 32
#define SL_META_MAX_USERS 100000
#define SL_META_MAX_ACLS 1000000
typedef struct sl_mi_user {
    char *name;
    uint8_t salt[64];
    uint8_t saltlen;
    uint32_t iter;
    uint8_t stored_key[SL_META_KEY_LEN], server_key[SL_META_KEY_LEN];
    uint8_t admin;
    int64_t created_ms;
} sl_mi_user;

/* A permission rule (broker/acl.h): kind 1 topic, 2 group, 3 cluster. */
typedef struct sl_mi_acl {
    char *user;
    uint8_t kind, prefix;
    char *pattern; /* "" for the cluster */
    uint32_t ops;
} sl_mi_acl;

/* USER_UPSERT flags: the user must not exist yet (user add: the first
 * proposal of a name wins); must exist (passwd); keep the admin role the
 * user has. */
#define SL_META_USER_NEW 1
#define SL_META_USER_EXISTING 2
#define SL_META_USER_KEEP_ADMIN 8

typedef struct sl_meta {
    uint64_t applied;  /* index of the last command applied */
    sl_mi_node *nodes; /* sorted by id */
    size_t nnodes;
    sl_mi_topic **topics; /* sorted by name */
    size_t ntopics;
    sl_mi_user *users; /* sorted by name */
    size_t nusers;
    sl_mi_acl *acls; /* sorted by user, kind, pattern, prefix */
    size_t nacls;
    uint64_t auth_index; /* index of the last change to users or rules */
} sl_meta;

void sl_meta_init(sl_meta *m);
void sl_meta_fini(sl_meta *m); /* accepts a zeroed m */

/* Apply one command at Raft index `index` (stored in m->applied whatever
 * the result). SL_OK or the command's error (nothing changed). */
sl_err sl_meta_apply(sl_meta *m, uint64_t index, const void *buf, size_t len);

/* The whole image (applied index included) into wb. */
void sl_meta_snapshot(const sl_meta *m, sl_wb *wb);
/* Replace m with the image in buf. SL_ERR_CORRUPT (m unchanged) if buf does
 * not decode. */
sl_err sl_meta_restore(sl_meta *m, const void *buf, size_t len);

/* Lookups; NULL when absent. Pointers valid until the next apply. */
const sl_mi_node *sl_meta_node_find(const sl_meta *m, int32_t id);
const sl_mi_topic *sl_meta_topic_find(const sl_meta *m, const char *name);
/* A topic config value, or NULL. */
const char *sl_meta_topic_config(const sl_mi_topic *t, const char *key);
/* A partition's replication factor: its replica count, except while a
 * reassignment is in progress: then the count it had when that started
 * (the target's when that is not known). The replicas being added count
 * only once it completes, so a move does not change the partition's
 * durability rule (min-insync-replicas is capped to this) meanwhile. */
int32_t sl_meta_part_rf(const sl_mi_part *mp);

/* ---- command encoders (append one command to wb) ---------------------- */

void sl_meta_enc_register(sl_wb *wb, int32_t id, const char *raft_addr,
                          const char *addr, const char *stomp_addr);
/* The same with the node's TLS binary address (tls_addr, "" = none). */
void sl_meta_enc_register_tls(sl_wb *wb, int32_t id, const char *raft_addr,
                              const char *addr, const char *stomp_addr,
                              const char *tls_addr);
/* fenced: 0 unfence, 1 fence, SL_MI_STOPPED controlled shutdown. */
void sl_meta_enc_fence(sl_wb *wb, int32_t id, int fenced);
/* replicas: nparts * rf node ids, partition-major. */
void sl_meta_enc_create_topic(sl_wb *wb, const char *name, int32_t nparts,
                              int32_t rf, const char *const *keys,
                              const char *const *vals, uint32_t ncfg,
                              const int32_t *replicas);
void sl_meta_enc_delete_topic(sl_wb *wb, const char *name);
void sl_meta_enc_partition_change(sl_wb *wb, const char *topic, int32_t part,
                                  int32_t expect_part_epoch, int32_t leader,
                                  const int32_t *isr, int32_t nisr);

/* Users and rules (meta_auth.c). An upsert validates nothing about the
 * password (there is none): salt 1..64 bytes, iterations >= 1. */
void sl_meta_enc_user_upsert(sl_wb *wb, const sl_mi_user *u, int flags);
void sl_meta_enc_user_delete(sl_wb *wb, const char *name);
void sl_meta_enc_acl_change(sl_wb *wb, const char *user, int kind,
                            const char *pattern, int prefix, uint32_t add,
                            uint32_t remove);
const sl_mi_user *sl_meta_user_find(const sl_meta *m, const char *name);
const sl_mi_acl *sl_meta_acl_find(const sl_meta *m, const char *user, int kind,
                                  const char *pattern, int prefix);

void sl_meta_enc_reassign(sl_wb *wb, const char *topic, int32_t part,
                          const int32_t *target, int32_t n);
void sl_meta_enc_reassign_done(sl_wb *wb, const char *topic, int32_t part,
                               int32_t expect_part_epoch);

void sl_meta_enc_unregister(sl_wb *wb, int32_t id);
void sl_meta_enc_alter_topic(sl_wb *wb, const char *name,
                             const char *const *keys, const char *const *vals,
                             uint32_t n);
/* replicas: (nparts - the topic's current count) * rf ids. */
void sl_meta_enc_add_partitions(sl_wb *wb, const char *name, int32_t nparts,
                                int32_t rf, const int32_t *replicas,
                                int32_t nnew);
/* type SL_MREQ_MEMBER_ADD (addr: the new node's Raft HOST:PORT) or
 * SL_MREQ_MEMBER_REMOVE (addr ignored). */
void sl_meta_enc_member(sl_wb *wb, int type, int32_t id, const char *addr);
/* Decode a membership request: SL_OK with *id and addr (NUL-terminated,
 * "" for a removal), else SL_ERR_MALFORMED. */
sl_err sl_meta_dec_member(const void *buf, size_t len, int *type, int32_t *id,
                          char *addr, size_t addrlen);
/* Whether a partition names node id (replica, in-sync or target). */
int sl_meta_node_used(const sl_meta *m, int32_t id);

/* The controller's reassignment step: one REASSIGN_DONE (u32 length, then
 * the command, as sl_meta_liveness_cmds) per partition whose targets are
 * all in its ISR. Returns how many. */
size_t sl_meta_reassign_cmds(const sl_meta *m, sl_wb *cmds);

/* The command type of an encoded command, or 0 if it does not decode. */
int sl_meta_cmd_type(const void *buf, size_t len);

/*
 * Placement (docs/cluster.md 2.5): replicas of partition p are rf
 * consecutive unfenced nodes (sorted by id) from (hash(topic) + p) mod n.
 * Writes nparts * rf ids to out. SL_ERR_INVALID_CONFIG with err naming both
 * numbers when rf exceeds the unfenced nodes, or rf is out of 1..16.
 */
sl_err sl_meta_place(const sl_meta *m, const char *topic, int32_t nparts,
                     int32_t rf, int32_t *out, char *err, size_t errlen);

/* The same placement for one partition p of rf replicas (rf ids to out):
 * what `cluster rebalance` moves partitions to. */
sl_err sl_meta_place_one(const sl_meta *m, const char *topic, int32_t part,
                         int32_t rf, int32_t *out, char *err, size_t errlen);

/*
 * The controller's liveness step: for every node of the image, alive[i]
 * says whether node ids[i] was heard from recently (nodes not listed are
 * taken as not alive). Appends to cmds one FENCE/UNFENCE command per node
 * whose fenced flag disagrees, each as a u32 length then the command.
 * Returns how many commands were appended.
 */
size_t sl_meta_liveness_cmds(const sl_meta *m, const int32_t *ids,
                             const int *alive, size_t n, sl_wb *cmds);

/* Check the invariants above; 0 if they hold, else -1 with err set. */
int sl_meta_check(const sl_meta *m, char *err, size_t errlen);

#endif
