/*
 * conn_int.h - what the files of the connection layer share (conn.c has
 * the essay): the connection, reply and wait structures, the layer's
 * constants, and its functions across files (conn.c: life cycle,
 * closing, handshakes; conn_input.c: pacing, input, the socket's events
 * and timer; conn_reply.c: waits, replies, back-pressure; conn_registry.c:
 * rate-limited lines and the registry; conn_accept.c: accept, limits,
 * transports, running out of descriptors).
 * @thread loop
 */
#ifndef SL_CONN_INT_H
#define SL_CONN_INT_H

#include <stdarg.h>

#include <event2/bufferevent.h>

#include "broker/broker.h"
#include "broker/conn.h"

#define PAUSE_OUTPUT 1u
#define PAUSE_PENDING 2u
#define PAUSE_PROTO 4u

/* A closing connection waits this long for the peer's EOF after its last
 * reply (write side shut), and this long for the peer to take output. */
#define CLOSE_LINGER_MS 1000
#define CLOSE_DRAIN_MS 5000
/* Longest a paced producer (SL_PRI_INGRESS) waits for a read while the
 * loop is busy with more urgent work; see ingress_guard_cb. */
#define INGRESS_MAX_WAIT_US 5000
/* What a queued reply costs besides its bytes: the slot and its evbuffer;
 * and the smallest buffer chain libevent allocates for the first byte. */
#define REPLY_OVERHEAD (sizeof(sl_reply) + 160)
#define CHAIN_MIN 1024
/* Completed replies up to this size are copied into the output. */
#define COPY_MAX 4096
/* Output written right away (sl_conn_write_now) up to this size. */
#define WRITE_NOW_MAX (64 * 1024)
/* Corked output (conn.c) up to this size (and half of output-high-water)
 * per connection and loop pass. */
#define CORK_MAX (64 * 1024)
/* sl_conn_warn: window and kinds remembered per connection. */
#define WARN_WINDOW_MS 10000
#define WARN_KINDS 4
/* Out of descriptors: one episode (one log line) until accepting has
 * worked this long. */
#define EMFILE_EPISODE_MS 10000
/* INFO lines per connection opened and closed: at most CONNLOG_BURST in
 * a window of CONNLOG_WINDOW_MS, the rest counted (see conn_info). */
#define CONNLOG_WINDOW_MS 10000
#define CONNLOG_BURST 100
/* Freeing connections that held this much returns memory to the OS. */
#define TRIM_BYTES (8u * 1024 * 1024)

struct sl_wait {
    int refs;    /* the builder + each reply attached + each callback */
    int pending; /* callbacks still to come (+1 while being built) */
    sl_err err;  /* first failure */
    sl_conn *c;  /* NULL once the connection is gone */
    sl_wait *prev, *next; /* in c->waits */
    char what[320];
};

struct sl_reply {
    sl_conn *c; /* NULL once the connection died (orphan) */
    uint32_t corr;
    struct evbuffer *buf;
    size_t cost; /* counted in c->qmem */
    int done;
    int drop;
    int close_after;
    int has_file; /* sendfile segments: never copied */
    sl_wait *w;
    sl_reply_fail_fn fail;
    struct sl_lat_hist *lat; /* sl_reply_time */
    long long t0_us;
    char *note;
    void (*cancel)(void *arg);
    void *cancel_arg;
    sl_reply *next;
};

typedef struct close_hook {
    sl_conn_close_fn fn;
    void *arg;
} close_hook;

typedef sl_warn_slot warn_slot;

enum { TIMER_NONE = 0, TIMER_HANDSHAKE, TIMER_LINGER, TIMER_DRAIN };

struct sl_conn {
    sl_broker *b;
    const sl_conn_ops *ops;
    void *state;
    int opened; /* on_open succeeded: on_close is owed */
    struct bufferevent *bev;
    /* the socket's own bufferevent: bev itself, or the one a transport
     * (sl_conn_set_transport) filters; its output is counted as ours */
    struct bufferevent *sock;
    struct evbuffer_cb_entry *sock_cb; /* sock_out_cb, when filtered */
    int finished; /* filtered: BEV_FINISHED flushed (transport's goodbye) */
    struct event *work_ev;  /* sl_conn_kick, resume */
    struct event *timer_ev; /* handshake, linger or drain (timer_kind) */
    int timer_kind;
    char peer[80];
    unsigned char addr[16]; /* client address, for the per-address cap */
    int addr_len;
    size_t in_mark;  /* input length after the last on_input */
    size_t in_limit; /* sl_conn_limit_input, 0 = none */
    int lowat;       /* SO_RCVLOWAT set by sl_conn_want_input, 0 = 1 */
    /* output not handed to the bufferevent yet: sent in one send() at
     * the end of the loop pass (conn.c, corked output) */
    char *cork;
    size_t cork_len, cork_cap;
    int on_cork; /* on b->corked */
    sl_conn *cork_next;
    sl_reply *head, *tail;
    size_t npending;
    size_t qmem; /* what the queued replies cost */
    size_t peak; /* most ever held (output + qmem) */
    unsigned paused;
    int closing;   /* close once every reply is sent */
    int lingering; /* write side shut; discarding input until EOF */
    int dead;
    int in_read;
    int in_flush;
    int hs_pending; /* SL_CONN_HANDSHAKE, not done yet */
    void *auth;     /* sl_conn_set_auth: login state, freed with c */
    void (*auth_free)(void *);
    /* pacing (SL_PRI_INGRESS) */
    int pace;      /* producer-only: may be paced */
    int streaming; /* its last read found more than 4 KiB waiting */
    int pri_stale; /* bufferevent_priority_set refused (events active) */
    int ingress;   /* on b->ingress: at SL_PRI_INGRESS, or pri_stale */
    long long in_us;
    sl_conn *in_prev, *in_next;
    sl_conn *prev, *next;
    sl_conn *reap_next;
    sl_wait *waits;
    close_hook *hooks; /* sl_conn_on_close, in registration order */
    size_t nhooks, caphooks;
    int hooks_ran; /* peer EOF or dead: no more registrations */
    warn_slot warns[WARN_KINDS];
    /* the registry's view (sl_conn_stat) */
    uint64_t id;
    enum sl_listener lis;
    int64_t opened_ms;
    uint64_t bytes_in, bytes_out, replies;
    /* transport (conn_bev_new) */
    enum sl_transport transport;
    int tls_hs;        /* TLS handshake not finished yet */
    int plain_checked; /* TCP: first bytes looked at (TLS on plaintext) */
    char *tls_subject; /* verified client certificate, RFC 2253 */
    char *tls_cn;      /* its commonName */
    char *tls_san;     /* its first DNS or email subjectAltName */
};

/* Across the layer's files (each defined where its section is). */
void conn_accept_resume(sl_broker *b);
void conn_addr_unref(sl_broker *b, const unsigned char *a, int len);
void conn_broker_warn(sl_broker *b, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_cancel_replies(sl_conn *c);
int conn_cork_add(sl_conn *c, const void *p, size_t n);
void conn_cork_cb(evutil_socket_t fd, short what, void *arg);
void conn_uncork(sl_conn *c);
/* Send p now if nothing waits in the bufferevent; the rest goes the
 * bufferevent's way (conn.c; sl_conn_write_direct). */
void conn_send_direct(sl_conn *c, const char *p, size_t n);
void conn_connlog_flush(sl_broker *b);
void conn_event_cb(struct bufferevent *bev, short what, void *arg);
int conn_filtered(const sl_conn *c);
int64_t conn_idle_ms(const sl_conn *c);
void conn_info(sl_broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_ingress_guard_cb(evutil_socket_t fd, short what, void *arg);
void conn_ingress_unlink(sl_conn *c);
void conn_kill(sl_conn *c, const char *why);
void conn_maybe_finish_close(sl_conn *c);
size_t conn_mem(const sl_conn *c);
void conn_read_cb(struct bufferevent *bev, void *arg);
void conn_reply_free(sl_reply *r);
void conn_run_close_hooks(sl_conn *c);
void conn_sock_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                      void *arg);
void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
void conn_timer_clear(sl_conn *c, int kind);
void conn_timer_set(sl_conn *c, int kind, int64_t ms);
void conn_update_pause(sl_conn *c);
void conn_wait_detach(sl_wait *w);
void conn_warn_flush(warn_slot *slots, size_t n, const char *subsys,
                     const char *prefix);
void conn_work_cb(evutil_socket_t fd, short what, void *arg);
void conn_write_cb(struct bufferevent *bev, void *arg);

#endif
