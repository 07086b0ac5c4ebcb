/*
 * relay_int.h - what the files of the STOMP relay share (not for use
 * outside broker/relay*.c; the essay is at the top of relay.c).
 *
 * @thread loop (everything here)
 */
#ifndef SL_BROKER_RELAY_INT_H
#define SL_BROKER_RELAY_INT_H

#include <stdint.h>

#include "broker/stomp_int.h"

#define RELAY_SUBSYS "relay"
#define RELAY_TICK_MS 100
#define RELAY_BACKOFF_MIN_MS 100
#define RELAY_BACKOFF_MAX_MS 2000
#define RELAY_CONNECT_MS 5000
#define RELAY_READ_BYTES (128u * 1024)
/* a MESSAGE's header block the fast path scans (relay_frame.c); a larger
 * one goes to the parser */
#define RELAY_SCAN_HDR_MAX (64u * 1024)
/* heart-beats asked of the coordinator (it may send them less often:
 * stomp-heartbeat-min-ms, as it says in CONNECTED) */
#define RELAY_HB_MS 1000
/* heart-beats promised to the coordinator (CONNECT's first value): a
 * newline every RELAY_HB_OUT_MS / 4 (the tick), so the coordinator, which
 * closes a session silent for 1.5 intervals (stomp_session.c), closes one
 * whose node was cut off or stopped, and releases what it held, within
 * 3 s */
#define RELAY_HB_OUT_MS 2000

enum { RL_DOWN = 0, RL_CONNECTING, RL_SUBSCRIBING, RL_UP };

/* A client receipt waiting for the coordinator's (several may wait for
 * one: a cumulative ACK answers every ACK it covers). */
typedef struct rl_wait {
    struct rl_wait *next;
    uint64_t id;
    sl_wait *w;
} rl_wait;

/* A client's ACK or NACK of this loop iteration, sent up by
 * rl_acks_flush. */
typedef struct rl_settle {
    uint64_t seq; /* the delivery's number in the session (pend.seq) */
    const char *topic;
    int32_t partition;
    int64_t offset;
    int cmd, requeue;
    sl_wait *w; /* held, or NULL */
} rl_settle;

struct stomp_relay {
    stomp_sub *s;
    stomp_relay *next; /* in s->relay */
    /* a /topic relay: the partition it brings (held by node, not here)
     * and the subscription's reader of its topic; -1 and NULL: /queue */
    int32_t part;
    treader *r;
    /* the destination its MESSAGEs name: the client's, or for a wildcard
     * subscription the topic's own (owned) */
    char *dest;
    int from_start; /* subscribe reading from the log start (once) */
    sl_wait *sub_w; /* a SUBSCRIBE receipt waiting until it is relayed */
    int32_t node;   /* the node it relays to, -1 none known */
    char addr[128];
    struct bufferevent *bev;
    sl_stomp_parser ps;
    int in_parser;  /* ps holds part of a frame: it gets the next bytes */
    size_t in_left; /* input bytes left unread by the last rl_input */
    size_t id_len, dest_len; /* of s->id and s->dest (the fast path) */
    int state;
    int paused;       /* not reading: the client's output is high */
    int warned;       /* a failure was logged since the last success */
    int64_t since;    /* of the current state */
    int64_t retry_at; /* RL_DOWN: when to connect again */
    int64_t backoff;
    int64_t last_in, hb_ms; /* heart-beat watch (hb_ms 0: none) */
    int64_t last_hb;        /* our last heart-beat to the coordinator */
    int peer_login;         /* logged in with the cluster secret */
    uint8_t expect[32];     /* the other node's proof of it */
    uint64_t next_id;
    rl_wait *waits, *waits_tail;
    sl_wb wb;
    /* the client's ACKs/NACKs of this loop iteration, written as one
     * by ack_ev; acks is where they are encoded */
    rl_settle *st;
    size_t nst, cap_st;
    sl_wb acks;
    struct event *ack_ev;
    uint64_t seq;   /* of the last delivery written to the client */
    int cumulative; /* the coordinator takes cumulative ACKs (CONNECTED) */
};

/* ---- relay.c ------------------------------------------------------------- */

/* The session is lost: close it, fail the receipts waiting for it, and
 * try again after the backoff. */
void rl_fail(stomp_relay *rl, const char *why);
/* Open the session to rl->node at its STOMP address. */
void rl_connect(stomp_relay *rl);
/* Handle what the coordinator sent (what the client can take; for a
 * client that is going, only the answers to its ACKs). */
void rl_input(stomp_relay *rl);
/* A relay of s to node (part -1 and r NULL: a /queue subscription; else
 * partition part of r's topic), linked into s->relay and connecting; w
 * (may be NULL) is held until it is subscribed. NULL: out of memory. */
stomp_relay *rl_new(stomp_sub *s, int32_t node, int32_t part, treader *r,
                    sl_wait *w);
/* Write the ACKs and NACKs batched so far (before any other frame). */
void rl_acks_flush(stomp_relay *rl);
/* Close and free rl (not unlinked from s->relay). */
void rl_free_one(stomp_relay *rl);

/* ---- relay_topic.c ------------------------------------------------------- */

/* Relays for the partitions of s's topic this node holds no replica of
 * (open or follow them); w (may be NULL) is held until each is
 * subscribed. */
void rl_topic_follow(stomp_sub *s, sl_wait *w, int64_t now);

#endif
