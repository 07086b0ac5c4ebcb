/*
 * consumer_int.h - inside sluice_consumer (consumer.c, consumer_offsets.c,
 * consumer_group.c): the consumer's structure and the functions its files
 * share. Not installed; the essay is at the top of consumer.c.
 */
#ifndef SL_CLIENT_CONSUMER_INT_H
#define SL_CLIENT_CONSUMER_INT_H

#include <pthread.h>

#include "client/src/conn.h"
#include "client/src/coord.h"
#include "client/src/cursor.h"
#include "client/src/internal.h"
#include "client/src/route.h"
#include "protocol/api.h"

typedef struct cpart {
    char *topic;
    int32_t partition;
    int64_t position;  /* next offset poll returns; < 0: to resolve */
    int64_t fetch_pos; /* next offset to request */
    int64_t committed; /* last committed by us (-1 unknown) */
} cpart;

typedef struct fbuf {
    struct fbuf *next;
    int cp; /* index in parts */
    sl_cursor cu;
} fbuf;

struct sluice_consumer {
    pthread_mutex_t mu;
    sl_cl_cfg cfg;
    sl_cl_conn conn;
    sl_cl_router rt; /* leaders and their connections (its boot unused) */
    int rt_stale;    /* ask the placement before the next fetch */
    sl_cl_conn *fetch_conn; /* where the fetch in flight went */
    size_t fetch_rr;        /* next partition to start a fetch from */
    sl_arena arena;
    cpart *parts;
    size_t nparts, pcap;
    uint64_t gen;
    /* fetch in flight */
    uint32_t fetch_corr; /* 0 = none */
    uint64_t fetch_gen;
    uint64_t fetch_epoch;
    fbuf *bhead, *btail;
    size_t buffered_bytes;
    int caught_up; /* the last fetch brought nothing: no prefetching */
    /* pending fetch error to return once */
    sl_err perr;
    char perr_msg[512];
    /* group */
    int subscribed;
    char **topics;
    size_t ntopics;
    char member_id[128];
    int32_t generation;
    int need_rejoin;
    sl_cl_coord coord;    /* the group's coordinator (cluster) */
    uint64_t coord_epoch; /* conn.epoch it was looked for on */
    int coord_lost;       /* a heartbeat got NOT_COORDINATOR */
    int64_t next_hb_ms;
    int hb_interval_ms;
    uint32_t hb_corr;
    int64_t hb_sent_ms; /* when hb_corr went out */
    int64_t next_autocommit_ms;
    /* auto-commits that failed (each retried at the next poll after
     * reconnect.backoff.ms) and the last one's error */
    uint64_t autocommit_failed;
    char autocommit_err[256];
    /* failures that may pass (ride_out): when they began, 0 = none */
    int64_t down_since;
};

/* Positions changed: forget prefetched data and the fetch in flight. */
void sl_cons_reset_pipeline(sluice_consumer *c);

/* Forget every assigned partition. */
void sl_cons_clear_parts(sluice_consumer *c);

/* Index of (topic, part) in c->parts, or -1. */
int sl_cons_find_part(sluice_consumer *c, const char *topic, int32_t part);

/* Assign (topic, part) at offset (special offsets resolve later). */
sl_err sl_cons_add_part(sluice_consumer *c, const char *topic, size_t tlen,
                        int32_t part, int64_t offset);

/* Send what is in on->out (one request with corr) and wait for its reply,
 * dispatching other replies (fetch, heartbeat) meanwhile. */
sl_err sl_cons_call_on(sluice_consumer *c, sl_cl_conn *on, uint32_t corr,
                       sl_chunk **out);

/* sl_cons_call_on on the consumer's own connection. */
sl_err sl_cons_call(sluice_consumer *c, uint32_t corr, sl_chunk **out);

/* The connection serving (topic, partition): its leader's in a cluster,
 * else this one. */
sl_cl_conn *sl_cons_part_conn(sluice_consumer *c, const char *topic,
                              int32_t partition);

/* Connect the consumer's own connection if it is not: with a group.id,
 * to the group's coordinator in a cluster (client/src/coord.c). */
sl_err sl_cons_ensure_conn(sluice_consumer *c);
/* A group request was answered rc: on NOT_COORDINATOR (or a heartbeat's,
 * coord_lost) the group moved (a failover): drop the connection and
 * rejoin; sl_cons_ensure_conn finds the new coordinator. Returns rc. */
sl_err sl_cons_coord_check(sluice_consumer *c, sl_err rc);

/* A group request failed with rc in a way a coordinator failover
 * explains (connection lost, no reply in time, NOT_COORDINATOR, too few
 * in-sync replicas): finding the coordinator again and resending is
 * right. */
int sl_cons_retriable(sl_err rc);

/* Committed offset of the group for one partition (-1 = none). */
sl_err sl_cons_fetch_committed(sluice_consumer *c, const char *topic,
                               int32_t partition, int64_t *out);

/* Turn every special position into a real offset. */
sl_err sl_cons_resolve_all(sluice_consumer *c);

/* Partitions and offsets of one topic. */
sl_err sl_cons_topic_meta(sluice_consumer *c, const char *topic, sl_chunk **frp,
                          sl_meta_topic **out);

/* GROUP_JOIN (this member's assignment), positions from the committed
 * offsets. */
sl_err sl_cons_join_group(sluice_consumer *c);

/* Periodic work in poll: heartbeat, rejoin, auto commit. */
sl_err sl_cons_group_tick(sluice_consumer *c);

/* An auto-commit from poll or close (enable.auto.commit): failures are
 * counted and retried, see consumer_group.c. */
void sl_cons_auto_commit(sluice_consumer *c);

/* OFFSET_COMMIT of tps (NULL: the current positions); c->mu held. */
sl_err sl_cons_commit_locked(sluice_consumer *c,
                             const sluice_topic_partition *tps, size_t n);

/* consumer_fetch.c: where each assigned partition is served (METADATA). */
sl_err sl_cons_refresh_placement(sluice_consumer *c);

/* consumer_fetch.c: send the next FETCH (at most one in flight). */
sl_err sl_cons_send_fetch(sluice_consumer *c, int max_wait_ms);

/* consumer_fetch.c: a reply frame read on `on` (a FETCH's or a late one). */
void sl_cons_handle_frame(sluice_consumer *c, sl_cl_conn *on, sl_chunk *fr);

/* consumer_fetch.c: the next message from the buffers, or NULL. */
sluice_message *sl_cons_next_buffered(sluice_consumer *c, sl_err *err);

#endif
