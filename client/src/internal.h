/*
 * internal.h - shared internals of libsluice (not installed).
 *
 * Naming: public functions are sluice_*, internal ones sl_cl_* / sl_accum_*
 * / sl_ackr_*; the connection is sl_cl_conn (sl_cl_conn_*), a different
 * thing from the broker's sl_conn. Errors inside the library are sl_err values;
 * sluice_err has the same numbers (checked in err.c).
 */
#ifndef SL_CLIENT_INTERNAL_H
#define SL_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"
#include "sluice.h"

/* ---- error detail (thread-local) ------------------------------------ */

/* Record rc with a printf detail for sluice_errstr() on this thread;
 * returns rc so callers write `return sl_cl_fail(rc, "...")`. */
sl_err sl_cl_fail(sl_err rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clear the detail (call at the start of public calls). */
void sl_cl_clear_err(void);
/* Copy the current detail into errstr (constructors). */
void sl_cl_errstr_copy(char *errstr, size_t size);

/* ---- configuration --------------------------------------------------- */

/* The parsed configuration every handle copies. */
#define SL_CL_MAX_BOOT 16
typedef struct sl_cl_cfg {
    char host[256]; /* the first bootstrap address */
    char port[16];
    /* every bootstrap address ("H1:P1,H2:P2,..."); a connection tries
     * them in turn from the one that worked last (conn.c) */
    int nboot;
    char boot_host[SL_CL_MAX_BOOT][256];
    char boot_port[SL_CL_MAX_BOOT][16];
    char client_id[128];
    int connect_timeout_ms;
    int request_timeout_ms;
    int reconnect_backoff_ms;
    /* retries (route.c): a request that failed on NOT_LEADER,
     * NOT_ENOUGH_REPLICAS or a lost connection is resent, the metadata
     * refreshed first, retry.backoff.ms apart, until delivery.timeout.ms
     * after the record was sent (0 = never retry) */
    int delivery_timeout_ms;
    int retry_backoff_ms;
    int max_in_flight;
    size_t process_inflight_bytes; /* 0: no bound over the process */
    int acks;
    int idempotence; /* enable.idempotence (producer.c, accum.c) */
    int linger_ms;
    size_t batch_size;
    uint32_t batch_records;
    int codec;
    int compression_level;
    size_t queue_max_records;
    int null_key_rr; /* partitioner.null.key round-robin */
    char group_id[256];
    int session_timeout_ms;
    int heartbeat_interval_ms;
    int offset_reset_earliest;
    int auto_commit;
    int auto_commit_interval_ms;
    int32_t fetch_max_bytes;
    int fetch_max_wait_ms;
    int32_t fetch_min_bytes;
    int queue_credits;
    int queue_max_wait_ms;
    int queue_lock_ms;
    int queue_prefetch;
    int queue_max_unacked;
    int queue_credits_max; /* the adaptive window's ceiling */
    int ack_batch_records;
    int ack_linger_ms;
    /* TLS (security.protocol=ssl; client/src/conn.c) */
    int tls;
    char tls_ca[1024];   /* ssl.ca.location, "" = the system's CAs */
    char tls_cert[1024]; /* ssl.certificate.location */
    char tls_key[1024];  /* ssl.key.location */
    int tls_verify;      /* enable.ssl.certificate.verification */
    int tls_verify_host; /* ssl.endpoint.identification.algorithm=https */
    sluice_delivery_cb dr_cb;
    void *dr_opaque;
    /* login: sasl.* or $SLUICE_USER / $SLUICE_PASSWORD; empty user = none */
    char sasl_user[65];
    char sasl_password[1024];
    int sasl_plain; /* sasl.mechanism PLAIN (only over TLS) */
} sl_cl_cfg;

/* Fill cfg from conf (NULL = defaults). SL_ERR_INVALID_CONFIG on a bad
 * stored value (cannot happen: values are checked on set). */
sl_err sl_cl_cfg_load(sl_cl_cfg *cfg, const sluice_conf *conf);

/* ---- time ------------------------------------------------------------ */

/* Monotonic ms. */
int64_t sl_cl_now_ms(void);
/* Wall clock ms since the epoch. */
int64_t sl_cl_wall_ms(void);
/* Deadline for timeout_ms (-1 = forever -> INT64_MAX). */
int64_t sl_cl_deadline(int timeout_ms);
/* ms left until deadline (>= 0), capped to INT_MAX; -1 if forever. */
int sl_cl_left(int64_t deadline);

/* ---- messages -------------------------------------------------------- */

/* A refcounted block of memory messages borrow from: a response frame
 * (data[] inline) or a decompressed batch (ext, malloc'd, adopted). */
typedef struct sl_chunk {
    int refs; /* atomic */
    size_t len;
    uint8_t *ext; /* owned; NULL = data[] */
    uint8_t data[];
} sl_chunk;

static inline uint8_t *sl_chunk_ptr(sl_chunk *c)
{
    return c->ext ? c->ext : c->data;
}
/* len bytes inline; refs = 1. NULL on out of memory. */
sl_chunk *sl_chunk_new(size_t len);
/* Adopt malloc'd p (freed with the chunk, also on error). */
sl_chunk *sl_chunk_adopt(uint8_t *p, size_t len);
void sl_chunk_ref(sl_chunk *c);
void sl_chunk_unref(sl_chunk *c); /* accepts NULL */

struct sl_record;
/*
 * Make a message for rec (from a batch whose bytes live in chunk: a ref is
 * taken, key/value/headers are borrowed from it). Caller frees with
 * sluice_message_free. NULL on out of memory or malformed headers.
 */
sluice_message *sl_msg_new(const char *topic, size_t topic_len,
                           int32_t partition, const struct sl_record *rec,
                           sl_chunk *chunk);

#endif
