/*
 * conf.c - sluice_conf: one table of keys (name, default, kind, bounds).
 * Values are checked on set, stored as strings, parsed into sl_cl_cfg when
 * a handle is created.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/src/internal.h"
#include "protocol/batch.h"

enum kind { K_STR, K_INT, K_BOOL, K_ENUM, K_ADDR };

static const struct key {
    const char *name;
    const char *def;
    enum kind kind;
    long long min, max;
    const char *choices; /* K_ENUM: "a|b|c" */
} keys[] = {
    {"bootstrap", "127.0.0.1:7410", K_ADDR, 0, 0, NULL},
    {"client.id", "sluice", K_STR, 0, 127, NULL},
    {"connect.timeout.ms", "5000", K_INT, 1, INT_MAX, NULL},
    {"request.timeout.ms", "30000", K_INT, 1, INT_MAX, NULL},
    {"reconnect.backoff.ms", "100", K_INT, 0, 600000, NULL},
    {"delivery.timeout.ms", "120000", K_INT, 0, INT_MAX, NULL},
    {"retry.backoff.ms", "100", K_INT, 0, 600000, NULL},
    {"max.in.flight", "64", K_INT, 1, 100000, NULL},
    {"max.in.flight.process.bytes", "33554432", K_INT, 0, INT_MAX, NULL},
    {"acks", "durable", K_ENUM, 0, 0, "none|written|durable"},
    {"enable.idempotence", "true", K_BOOL, 0, 0, NULL},
    {"linger.ms", "5", K_INT, 0, 600000, NULL},
    {"batch.size", "262144", K_INT, 1, 64 * 1024 * 1024 - 1024, NULL},
    {"batch.records", "100000", K_INT, 1, 10000000, NULL},
    {"compression", "none", K_ENUM, 0, 0, "none|zstd"},
    {"partitioner", "fnv1a", K_ENUM, 0, 0, "fnv1a"},
    {"partitioner.null.key", "sticky", K_ENUM, 0, 0, "sticky|round-robin"},
    {"queue.max.records", "1000000", K_INT, 1, 100000000, NULL},
    {"group.id", "", K_STR, 0, 255, NULL},
    {"session.timeout.ms", "10000", K_INT, 100, 3600000, NULL},
    {"heartbeat.interval.ms", "3000", K_INT, 10, 3600000, NULL},
    {"auto.offset.reset", "latest", K_ENUM, 0, 0, "earliest|latest"},
    {"enable.auto.commit", "false", K_BOOL, 0, 0, NULL},
    {"auto.commit.interval.ms", "5000", K_INT, 1, INT_MAX, NULL},
    {"fetch.max.bytes", "4194304", K_INT, 1024, 64 * 1024 * 1024, NULL},
    {"fetch.max.wait.ms", "500", K_INT, 0, 600000, NULL},
    {"fetch.min.bytes", "1", K_INT, 0, 64 * 1024 * 1024, NULL},
    {"queue.credits", "0", K_INT, 0, 1000000, NULL},
    {"queue.credits.max", "16384", K_INT, 1, 100000, NULL},
    {"queue.max.wait.ms", "500", K_INT, 0, 600000, NULL},
    {"queue.lock.ms", "0", K_INT, 0, INT_MAX, NULL},
    {"queue.prefetch", "true", K_BOOL, 0, 0, NULL},
    {"queue.max.unacked", "0", K_INT, 0, 1000000, NULL},
    {"ack.batch.records", "256", K_INT, 1, 1000000, NULL},
    {"ack.linger.ms", "10", K_INT, 0, 600000, NULL},
    /* TLS, named as librdkafka names them */
    {"security.protocol", "plaintext", K_ENUM, 0, 0, "plaintext|ssl"},
    {"ssl.ca.location", "", K_STR, 0, 1023, NULL},
    {"ssl.certificate.location", "", K_STR, 0, 1023, NULL},
    {"ssl.key.location", "", K_STR, 0, 1023, NULL},
    {"enable.ssl.certificate.verification", "true", K_BOOL, 0, 0, NULL},
    {"ssl.endpoint.identification.algorithm", "https", K_ENUM, 0, 0,
     "https|none"},
    /* login (issue 16): empty = $SLUICE_USER / $SLUICE_PASSWORD */
    {"sasl.mechanism", "SCRAM-SHA-256", K_ENUM, 0, 0, "SCRAM-SHA-256|PLAIN"},
    {"sasl.username", "", K_STR, 0, 64, NULL},
    {"sasl.password", "", K_STR, 0, 1023, NULL},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct sluice_conf {
    char *val[NKEYS]; /* NULL = default */
    sluice_delivery_cb dr_cb;
    void *dr_opaque;
};

static int key_index(const char *name)
{
    size_t i;
    for (i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

sluice_conf *sluice_conf_new(void)
{
    return calloc(1, sizeof(sluice_conf));
}

void sluice_conf_free(sluice_conf *conf)
{
    size_t i;
    if (!conf)
        return;
    for (i = 0; i < NKEYS; i++)
        free(conf->val[i]);
    free(conf);
}

sluice_conf *sluice_conf_dup(const sluice_conf *conf)
{
    sluice_conf *d = sluice_conf_new();
    size_t i;
    if (!d)
        return NULL;
    d->dr_cb = conf->dr_cb;
    d->dr_opaque = conf->dr_opaque;
    for (i = 0; i < NKEYS; i++) {
        if (conf->val[i] && !(d->val[i] = strdup(conf->val[i]))) {
            sluice_conf_free(d);
            return NULL;
        }
    }
    return d;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int enum_index(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    int i = 0;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && strncmp(p, v, l) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
        i++;
    }
    return -1;
}

/* Split "host:port" (port required, [v6]:port accepted). */
static int split_addr(const char *s, char *host, size_t hsz, char *port,
                      size_t psz)
{
    const char *colon = strrchr(s, ':');
    size_t hl;
    long long p;
    if (!colon || colon == s || !colon[1])
        return -1;
    hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= hsz || strlen(colon + 1) >= psz)
        return -1;
    if (parse_ll(colon + 1, &p) || p < 1 || p > 65535)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    snprintf(port, psz, "%s", colon + 1);
    return 0;
}

static int check_value(const struct key *k, const char *v)
{
    long long n;
    char h[256], p[16];
    switch (k->kind) {
    case K_STR:
        return strlen(v) <= (size_t)k->max ? 0 : -1;
    case K_INT:
        return (parse_ll(v, &n) == 0 && n >= k->min && n <= k->max) ? 0 : -1;
    case K_BOOL:
        return (!strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "1") ||
                !strcmp(v, "0"))
                   ? 0
                   : -1;
    case K_ENUM:
        return enum_index(k->choices, v) >= 0 ? 0 : -1;
    case K_ADDR: { /* one address or a comma-separated list */
        char one[300];
        int cnt = 0;
        for (const char *s = v;; cnt++) {
            const char *comma = strchr(s, ',');
            size_t l = comma ? (size_t)(comma - s) : strlen(s);
            if (l >= sizeof(one) || cnt >= SL_CL_MAX_BOOT)
                return -1;
            memcpy(one, s, l);
            one[l] = 0;
            if (split_addr(one, h, sizeof(h), p, sizeof(p)) != 0)
                return -1;
            if (!comma)
                return 0;
            s = comma + 1;
        }
    }
    }
    return -1;
}

sluice_err sluice_conf_set(sluice_conf *conf, const char *key,
                           const char *value, char *errstr, size_t errstr_size)
{
    int i;
    char *dup;
    const struct key *k;

    sl_cl_clear_err();
    if (!key || !value) {
        sl_cl_fail(SL_ERR_INVALID_CONFIG, "config: NULL key or value");
        goto fail;
    }
    i = key_index(key);
    if (i < 0) {
        sl_cl_fail(SL_ERR_INVALID_CONFIG, "config key '%s' is unknown", key);
        goto fail;
    }
    k = &keys[i];
    if (check_value(k, value) != 0) {
        if (k->kind == K_ENUM)
            sl_cl_fail(SL_ERR_INVALID_CONFIG,
                       "config %s='%s': expected one of %s", key, value,
                       k->choices);
        else if (k->kind == K_INT)
            sl_cl_fail(SL_ERR_INVALID_CONFIG,
                       "config %s='%s': expected an integer in [%lld, %lld]",
                       key, value, k->min, k->max);
        else if (k->kind == K_ADDR)
            sl_cl_fail(SL_ERR_INVALID_CONFIG,
                       "config %s='%s': expected HOST:PORT", key, value);
        else if (k->kind == K_BOOL)
            sl_cl_fail(SL_ERR_INVALID_CONFIG,
                       "config %s='%s': expected true or false", key, value);
        else
            sl_cl_fail(SL_ERR_INVALID_CONFIG, "config %s: value too long", key);
        goto fail;
    }
    dup = strdup(value);
    if (!dup) {
        sl_cl_fail(SL_ERR_NOMEM, "config %s", key);
        goto fail;
    }
    free(conf->val[i]);
    conf->val[i] = dup;
    return SLUICE_OK;
fail:
    sl_cl_errstr_copy(errstr, errstr_size);
    return (sluice_err)(strstr(sluice_errstr(), "out of memory")
                            ? SL_ERR_NOMEM
                            : SL_ERR_INVALID_CONFIG);
}

const char *sluice_conf_get(const sluice_conf *conf, const char *key)
{
    int i = key_index(key);
    if (i < 0)
        return NULL;
    if (conf && conf->val[i])
        return conf->val[i];
    if (i == 0) { /* bootstrap: the environment before the built-in one */
        const char *env = getenv("SLUICE_BOOTSTRAP");
        if (env && *env)
            return env;
    }
    return keys[i].def;
}

void sluice_conf_set_delivery_cb(sluice_conf *conf, sluice_delivery_cb cb,
                                 void *cb_opaque)
{
    conf->dr_cb = cb;
    conf->dr_opaque = cb_opaque;
}

static long long get_int(const sluice_conf *conf, const char *key)
{
    long long v = 0;
    parse_ll(sluice_conf_get(conf, key), &v);
    return v;
}

static int get_enum(const sluice_conf *conf, const char *key)
{
    int i = key_index(key);
    return enum_index(keys[i].choices, sluice_conf_get(conf, key));
}

static int get_bool(const sluice_conf *conf, const char *key)
{
    const char *v = sluice_conf_get(conf, key);
    return !strcmp(v, "true") || !strcmp(v, "1");
}

sl_err sl_cl_cfg_load(sl_cl_cfg *cfg, const sluice_conf *conf)
{
    memset(cfg, 0, sizeof(*cfg));
    {
        const char *s = sluice_conf_get(conf, "bootstrap");
        char one[300];
        for (;;) {
            const char *comma = strchr(s, ',');
            size_t l = comma ? (size_t)(comma - s) : strlen(s);
            if (l >= sizeof(one) || cfg->nboot >= SL_CL_MAX_BOOT)
                goto bad_boot;
            memcpy(one, s, l);
            one[l] = 0;
            if (split_addr(
                    one, cfg->boot_host[cfg->nboot], sizeof(cfg->boot_host[0]),
                    cfg->boot_port[cfg->nboot], sizeof(cfg->boot_port[0])) != 0)
                goto bad_boot;
            cfg->nboot++;
            if (!comma)
                break;
            s = comma + 1;
        }
        snprintf(cfg->host, sizeof(cfg->host), "%s", cfg->boot_host[0]);
        snprintf(cfg->port, sizeof(cfg->port), "%s", cfg->boot_port[0]);
    }
    snprintf(cfg->client_id, sizeof(cfg->client_id), "%s",
             sluice_conf_get(conf, "client.id"));
    cfg->connect_timeout_ms = (int)get_int(conf, "connect.timeout.ms");
    cfg->request_timeout_ms = (int)get_int(conf, "request.timeout.ms");
    cfg->reconnect_backoff_ms = (int)get_int(conf, "reconnect.backoff.ms");
    cfg->delivery_timeout_ms = (int)get_int(conf, "delivery.timeout.ms");
    cfg->retry_backoff_ms = (int)get_int(conf, "retry.backoff.ms");
    cfg->max_in_flight = (int)get_int(conf, "max.in.flight");
    cfg->process_inflight_bytes =
        (size_t)get_int(conf, "max.in.flight.process.bytes");
    cfg->acks = get_enum(conf, "acks");
    cfg->idempotence = get_bool(conf, "enable.idempotence");
    cfg->linger_ms = (int)get_int(conf, "linger.ms");
    cfg->batch_size = (size_t)get_int(conf, "batch.size");
    cfg->batch_records = (uint32_t)get_int(conf, "batch.records");
    cfg->codec =
        get_enum(conf, "compression") == 1 ? SL_CODEC_ZSTD : SL_CODEC_NONE;
    cfg->queue_max_records = (size_t)get_int(conf, "queue.max.records");
    cfg->null_key_rr = get_enum(conf, "partitioner.null.key") == 1;
    snprintf(cfg->group_id, sizeof(cfg->group_id), "%s",
             sluice_conf_get(conf, "group.id"));
    cfg->session_timeout_ms = (int)get_int(conf, "session.timeout.ms");
    cfg->heartbeat_interval_ms = (int)get_int(conf, "heartbeat.interval.ms");
    cfg->offset_reset_earliest = get_enum(conf, "auto.offset.reset") == 0;
    cfg->auto_commit = get_bool(conf, "enable.auto.commit");
    cfg->auto_commit_interval_ms =
        (int)get_int(conf, "auto.commit.interval.ms");
    cfg->fetch_max_bytes = (int32_t)get_int(conf, "fetch.max.bytes");
    cfg->fetch_max_wait_ms = (int)get_int(conf, "fetch.max.wait.ms");
    cfg->fetch_min_bytes = (int32_t)get_int(conf, "fetch.min.bytes");
    cfg->queue_credits = (int)get_int(conf, "queue.credits");
    cfg->queue_credits_max = (int)get_int(conf, "queue.credits.max");
    cfg->queue_max_wait_ms = (int)get_int(conf, "queue.max.wait.ms");
    cfg->queue_lock_ms = (int)get_int(conf, "queue.lock.ms");
    cfg->queue_prefetch = get_bool(conf, "queue.prefetch");
    cfg->queue_max_unacked = (int)get_int(conf, "queue.max.unacked");
    cfg->ack_batch_records = (int)get_int(conf, "ack.batch.records");
    cfg->ack_linger_ms = (int)get_int(conf, "ack.linger.ms");
    cfg->tls = get_enum(conf, "security.protocol") == 1;
    snprintf(cfg->tls_ca, sizeof(cfg->tls_ca), "%s",
             sluice_conf_get(conf, "ssl.ca.location"));
    snprintf(cfg->tls_cert, sizeof(cfg->tls_cert), "%s",
             sluice_conf_get(conf, "ssl.certificate.location"));
    snprintf(cfg->tls_key, sizeof(cfg->tls_key), "%s",
             sluice_conf_get(conf, "ssl.key.location"));
    cfg->tls_verify = get_bool(conf, "enable.ssl.certificate.verification");
    cfg->tls_verify_host =
        get_enum(conf, "ssl.endpoint.identification.algorithm") == 0;
    cfg->sasl_plain = get_enum(conf, "sasl.mechanism") == 1;
    {
        const char *u = sluice_conf_get(conf, "sasl.username");
        const char *p = sluice_conf_get(conf, "sasl.password");
        if (!u || !*u)
            u = getenv("SLUICE_USER");
        if (!p || !*p)
            p = getenv("SLUICE_PASSWORD");
        snprintf(cfg->sasl_user, sizeof(cfg->sasl_user), "%s", u ? u : "");
        snprintf(cfg->sasl_password, sizeof(cfg->sasl_password), "%s",
                 p ? p : "");
    }
    if (conf) {
        cfg->dr_cb = conf->dr_cb;
        cfg->dr_opaque = conf->dr_opaque;
    }
    return SL_OK;
bad_boot:
    return sl_cl_fail(SL_ERR_INVALID_CONFIG, "config bootstrap='%s'",
                      sluice_conf_get(conf, "bootstrap"));
}

int64_t sl_cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_cl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_cl_deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return INT64_MAX;
    return sl_cl_now_ms() + timeout_ms;
}

int sl_cl_left(int64_t deadline)
{
    int64_t left;
    if (deadline == INT64_MAX)
        return -1;
    left = deadline - sl_cl_now_ms();
    if (left < 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}
