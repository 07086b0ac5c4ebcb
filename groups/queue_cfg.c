/*
 * queue_cfg.c - queue-group settings: the defaults, the one table of keys
 * and bounds, and the text form stored in groups.db. See queue_cfg.h.
 */
#include "groups/queue_cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/log.h"
#include "protocol/parse.h"

#define DEFAULT_MAX_DELIVERIES 10
#define DEFAULT_LOCK_MS 30000
#define DEFAULT_MAX_INFLIGHT 10000
#define DEFAULT_MAX_DELAYED 100000
#define WEEK_MS (7LL * 86400 * 1000)

void sl_qgroup_cfg_defaults(sl_qgroup_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_deliveries = DEFAULT_MAX_DELIVERIES;
    cfg->lock_ms = DEFAULT_LOCK_MS;
    cfg->backoff_ms = 0;
    cfg->backoff_max_ms = 60000;
    cfg->backoff_factor = 2;
    cfg->ttl_ms = -1;
    cfg->max_inflight = DEFAULT_MAX_INFLIGHT;
    cfg->max_delayed = DEFAULT_MAX_DELAYED;
}

/* ---- the table ----------------------------------------------------------- */

enum qk_type { QK_I32, QK_I64, QK_BOOL, QK_START, QK_TOPIC };

typedef struct qkey {
    const char *name; /* with '_' */
    enum qk_type type;
    size_t off;
    int64_t min, max; /* QK_I32 / QK_I64 */
} qkey;

#define F(field) offsetof(sl_qgroup_cfg, field)
static const qkey keys[] = {
    {"max_deliveries", QK_I32, F(max_deliveries), 1,
     SL_QCFG_MAX_DELIVERIES_MAX},
    {"lock_ms", QK_I64, F(lock_ms), 1, SL_QCFG_LOCK_MS_MAX},
    {"backoff_ms", QK_I64, F(backoff_ms), 0, WEEK_MS},
    {"backoff_initial_ms", QK_I64, F(backoff_ms), 0, WEEK_MS},
    {"backoff_max_ms", QK_I64, F(backoff_max_ms), 0, WEEK_MS},
    {"backoff_factor", QK_I32, F(backoff_factor), 1, 1000},
    {"backoff_multiplier", QK_I32, F(backoff_factor), 1, 1000},
    {"ttl_ms", QK_I64, F(ttl_ms), -1, INT64_MAX / 4},
    {"max_inflight", QK_I32, F(max_inflight), 1, SL_QCFG_MAX_INFLIGHT_MAX},
    {"max_in_flight", QK_I32, F(max_inflight), 1, SL_QCFG_MAX_INFLIGHT_MAX},
    {"max_delayed", QK_I32, F(max_delayed), 0, SL_QCFG_MAX_INFLIGHT_MAX},
    {"dlq_expired", QK_BOOL, F(dlq_expired), 0, 1},
    {"key_ordered", QK_BOOL, F(key_ordered), 0, 1},
    {"start", QK_START, F(start_latest), 0, 1},
    {"dlq_topic", QK_TOPIC, F(dlq_topic), 0, 0},
    {"max_priority", QK_I32, F(max_priority), 0, SL_QCFG_MAX_PRIORITY},
};
#undef F

static const qkey *find(const char *key)
{
    char k[64];
    size_t i;
    for (i = 0; key[i] && i < sizeof(k) - 1; i++)
        k[i] = key[i] == '-' || key[i] == '.' ? '_' : key[i];
    k[i] = 0;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(keys[i].name, k))
            return &keys[i];
    return NULL;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") ||
        !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") ||
             !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

int sl_qgroup_cfg_bounds(const char *key, int64_t *min, int64_t *max)
{
    const qkey *q = find(key);
    if (!q || (q->type != QK_I32 && q->type != QK_I64))
        return -1;
    *min = q->min;
    *max = q->max;
    return 0;
}

static void put_int(sl_qgroup_cfg *cfg, const qkey *q, int64_t v)
{
    char *p = (char *)cfg + q->off;
    if (q->type == QK_I32) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof(x));
    } else {
        memcpy(p, &v, sizeof(v));
    }
}

sl_err sl_qgroup_cfg_set_int(sl_qgroup_cfg *cfg, const char *key, int64_t v,
                             char *errstr, size_t errlen)
{
    const qkey *q = find(key);
    if (!q || (q->type != QK_I32 && q->type != QK_I64)) {
        if (errstr)
            snprintf(errstr, errlen, "unknown integer queue group setting '%s'",
                     key);
        return SL_ERR_INVALID_CONFIG;
    }
    if (v < q->min || v > q->max) {
        if (errstr)
            snprintf(errstr, errlen,
                     "bad value '%lld' for queue group setting '%s' (want "
                     "%lld..%lld)",
                     (long long)v, key, (long long)q->min, (long long)q->max);
        return SL_ERR_INVALID_CONFIG;
    }
    put_int(cfg, q, v);
    return SL_OK;
}

sl_err sl_qgroup_cfg_set(sl_qgroup_cfg *cfg, const char *key, const char *value,
                         char *errstr, size_t errlen)
{
    const qkey *q = find(key);
    int64_t v = 0;
    int b;
    if (!q) {
        if (errstr)
            snprintf(errstr, errlen, "unknown queue group setting '%s'", key);
        return SL_ERR_INVALID_CONFIG;
    }
    switch (q->type) {
    case QK_I32:
    case QK_I64:
        if (sl_parse_i64(value, &v) || v < q->min || v > q->max) {
            if (errstr)
                snprintf(errstr, errlen,
                         "bad value '%s' for queue group setting '%s' (want "
                         "%lld..%lld)",
                         value, key, (long long)q->min, (long long)q->max);
            return SL_ERR_INVALID_CONFIG;
        }
        put_int(cfg, q, v);
        return SL_OK;
    case QK_BOOL:
        if (parse_bool(value, &b))
            goto bad;
        *(int *)((char *)cfg + q->off) = b;
        return SL_OK;
    case QK_START:
        if (!strcmp(value, "earliest"))
            cfg->start_latest = 0;
        else if (!strcmp(value, "latest"))
            cfg->start_latest = 1;
        else
            goto bad;
        return SL_OK;
    case QK_TOPIC:
        if (strlen(value) >= sizeof(cfg->dlq_topic) - 5)
            goto bad;
        snprintf(cfg->dlq_topic, sizeof(cfg->dlq_topic), "%s", value);
        return SL_OK;
    }
bad:
    if (errstr)
        snprintf(errstr, errlen, "bad value '%s' for queue group setting '%s'",
                 value, key);
    return SL_ERR_INVALID_CONFIG;
}

/* ---- the stored text ----------------------------------------------------- */

void sl_qgroup_cfg_text(const sl_qgroup_cfg *cfg, char *buf, size_t len)
{
    snprintf(buf, len,
             "max_deliveries=%d\nlock_ms=%lld\nbackoff_initial_ms=%lld\n"
             "backoff_max_ms=%lld\nbackoff_multiplier=%d\nttl_ms=%lld\n"
             "dlq_expired=%d\nkey_ordered=%d\nmax_inflight=%d\n"
             "max_delayed=%d\nstart=%s\ndlq_topic=%s\nmax_priority=%d\n",
             cfg->max_deliveries, (long long)cfg->lock_ms,
             (long long)cfg->backoff_ms, (long long)cfg->backoff_max_ms,
             cfg->backoff_factor, (long long)cfg->ttl_ms, cfg->dlq_expired,
             cfg->key_ordered, cfg->max_inflight, cfg->max_delayed,
             cfg->start_latest ? "latest" : "earliest", cfg->dlq_topic,
             cfg->max_priority);
}

void sl_qgroup_cfg_from_text(sl_qgroup_cfg *cfg, const char *text)
{
    char line[320];
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *eq;
        if (n < sizeof(line)) {
            memcpy(line, p, n);
            line[n] = 0;
            eq = strchr(line, '=');
            if (eq) {
                *eq = 0;
                if (sl_qgroup_cfg_set(cfg, line, eq + 1, NULL, 0) != SL_OK &&
                    strcmp(line, "dlq_topic"))
                    sl_log(SL_WARN, "groups", "ignoring stored setting %s",
                           line);
            }
        }
        p += n;
        if (*p)
            p++;
    }
}
