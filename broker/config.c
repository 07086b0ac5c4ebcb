/*
 * config.c - parsing, help and documentation from the one settings table.
 */
#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/log.h"

#define SL_CFG_T_(t) SL_CFG_T_##t

static const sl_cfg_entry table[] = {
#define SL_CFG(field, key, type, def, min, max, flags, apply, desc)            \
    {                                                                          \
        key,                                                                   \
        SL_CFG_T_(type),                                                       \
        def,                                                                   \
        (int64_t)(min),                                                        \
        (int64_t)(max),                                                        \
        NULL,                                                                  \
        flags,                                                                 \
        apply,                                                                 \
        desc,                                                                  \
        offsetof(sl_config, field)},
#define SL_CFG_ENUM(field, key, def, choices, flags, apply, desc)              \
    {key,     SL_CFG_T_ENUM, def,   0,    0,                                   \
     choices, flags,         apply, desc, offsetof(sl_config, field)},
#include "broker/config_table.h"
#undef SL_CFG
#undef SL_CFG_ENUM
};

#define NTABLE (sizeof(table) / sizeof(table[0]))

const sl_cfg_entry *sl_config_table(size_t *n)
{
    *n = NTABLE;
    return table;
}

const sl_cfg_entry *sl_config_find(const char *key)
{
    for (size_t i = 0; i < NTABLE; i++)
        if (strcmp(table[i].key, key) == 0)
            return &table[i];
    return NULL;
}

int sl_config_apply_log_format(struct sl_config *cfg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    sl_log_set_json(cfg->log_format == 1);
    return 0;
}

int sl_config_apply_log_level(struct sl_config *cfg, char *err, size_t errlen)
{
    sl_log_level = cfg->log_level;
    return 0;
}

static int is_str(enum sl_cfg_type t)
{
    return t == SL_CFG_T_STR || t == SL_CFG_T_ADDR;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Integer with an optional unit suffix for SIZE and MS. */
static int parse_int(enum sl_cfg_type t, const char *v, int64_t *out)
{
    char *end;
    long long n;
    int64_t mul = 1;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (end == v || errno)
        return -1;
    if (*end) {
        if (t == SL_CFG_T_SIZE) {
            if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0)
                mul = 1024;
            else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0)
                mul = 1024 * 1024;
            else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0)
                mul = 1024LL * 1024 * 1024;
            else if (strcasecmp(end, "t") == 0 || strcasecmp(end, "tb") == 0)
                mul = 1024LL * 1024 * 1024 * 1024;
            else
                return -1;
        } else if (t == SL_CFG_T_MS) {
            if (strcmp(end, "ms") == 0)
                mul = 1;
            else if (strcmp(end, "s") == 0)
                mul = 1000;
            else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
                mul = 60000;
            else if (strcmp(end, "h") == 0)
                mul = 3600000;
            else if (strcmp(end, "d") == 0)
                mul = 86400000;
            else
                return -1;
        } else {
            return -1;
        }
    }
    if (n > INT64_MAX / mul || n < INT64_MIN / mul)
        return -1;
    *out = (int64_t)n * mul;
    return 0;
}

static int parse_enum(const char *choices, const char *v, int *out)
{
    const char *p = choices;
    size_t vl = strlen(v);
    int i = 0;

    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && strncasecmp(p, v, l) == 0) {
            *out = i;
            return 0;
        }
        i++;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int check_addr(const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port;

    if (!colon || colon == v)
        return -1;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || errno || port < 0 || port > 65535)
        return -1;
    return 0;
}

/* Parse v for entry e into dst (the field). */
static sl_err parse_value(const sl_cfg_entry *e, const char *v, void *dst,
                          char *err, size_t errlen)
{
    int b;
    int64_t n;

    switch (e->type) {
    case SL_CFG_T_STR:
    case SL_CFG_T_ADDR: {
        char *s;
        if (e->type == SL_CFG_T_ADDR && check_addr(v) != 0) {
            snprintf(err, errlen, "%s: '%s' is not HOST:PORT (port 0..65535)",
                     e->key, v);
            return SL_ERR_INVALID_CONFIG;
        }
        s = strdup(v);
        if (!s)
            return SL_ERR_NOMEM;
        free(*(char **)dst);
        *(char **)dst = s;
        return SL_OK;
    }
    case SL_CFG_T_BOOL:
        if (parse_bool(v, &b) != 0) {
            snprintf(err, errlen, "%s: '%s' is not yes/no", e->key, v);
            return SL_ERR_INVALID_CONFIG;
        }
        *(int *)dst = b;
        return SL_OK;
    case SL_CFG_T_ENUM:
        if (parse_enum(e->choices, v, &b) != 0) {
            snprintf(err, errlen, "%s: '%s' is not one of %s", e->key, v,
                     e->choices);
            return SL_ERR_INVALID_CONFIG;
        }
        *(int *)dst = b;
        return SL_OK;
    case SL_CFG_T_INT:
    case SL_CFG_T_SIZE:
    case SL_CFG_T_MS:
        if (parse_int(e->type, v, &n) != 0) {
            snprintf(err, errlen, "%s: '%s' is not %s", e->key, v,
                     e->type == SL_CFG_T_SIZE ? "a size (e.g. 4096, 64k, 1g)"
                     : e->type == SL_CFG_T_MS
                         ? "a duration in ms (e.g. 500, 10s, 7d)"
                         : "an integer");
            return SL_ERR_INVALID_CONFIG;
        }
        if (n < e->min || n > e->max) {
            snprintf(err, errlen, "%s: %lld is out of range [%lld, %lld]",
                     e->key, (long long)n, (long long)e->min,
                     (long long)e->max);
            return SL_ERR_INVALID_CONFIG;
        }
        *(int64_t *)dst = n;
        return SL_OK;
    }
    return SL_ERR_INVALID_CONFIG;
}

void sl_config_init(sl_config *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NTABLE; i++) {
        sl_err rc = parse_value(&table[i], table[i].def,
                                (char *)cfg + table[i].off, err, sizeof(err));
        /* A default that does not parse is a bug in config_table.h. */
        if (rc != SL_OK) {
            fprintf(stderr, "sluiced: bad default in config_table.h: %s\n",
                    err);
            abort();
        }
    }
}

void sl_config_fini(sl_config *cfg)
{
    for (size_t i = 0; i < NTABLE; i++) {
        if (is_str(table[i].type)) {
            char **p = (char **)((char *)cfg + table[i].off);
            free(*p);
            *p = NULL;
        }
    }
}

sl_err sl_config_set(sl_config *cfg, const char *key, const char *value,
                     char *err, size_t errlen)
{
    const sl_cfg_entry *e = sl_config_find(key);

    if (!e) {
        snprintf(err, errlen, "unknown setting '%s' (see sluiced --help)", key);
        return SL_ERR_INVALID_CONFIG;
    }
    return parse_value(e, value, (char *)cfg + e->off, err, errlen);
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

sl_err sl_config_load_file(sl_config *cfg, const char *path, char *err,
                           size_t errlen)
{
    char line[4096], msg[512];
    FILE *f = fopen(path, "r");
    int lineno = 0;
    sl_err rc = SL_OK;

    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return SL_ERR_INVALID_CONFIG;
    }
    while (fgets(line, sizeof(line), f)) {
        char *k, *v, *p;
        size_t vl;

        lineno++;
        k = trim(line);
        if (*k == '\0' || *k == '#')
            continue;
        for (p = k; *p && !isspace((unsigned char)*p); p++)
            ;
        if (*p)
            *p++ = '\0';
        v = trim(p);
        vl = strlen(v);
        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
            v[vl - 1] = '\0';
            v++;
        }
        if (strcmp(k, "config") == 0) {
            snprintf(err, errlen, "%s:%d: 'config' is only a command-line flag",
                     path, lineno);
            rc = SL_ERR_INVALID_CONFIG;
            goto out;
        }
        rc = sl_config_set(cfg, k, v, msg, sizeof(msg));
        if (rc != SL_OK) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto out;
        }
    }
out:
    fclose(f);
    return rc;
}

sl_err sl_config_parse_args(sl_config *cfg, int argc, char **argv,
                            enum sl_config_action *action, char *err,
                            size_t errlen)
{
    enum sl_config_action act = SL_CONFIG_RUN;
    const char *cfile = NULL;
    sl_err rc;
    int pass;

    /* Pass 0 finds --config and the actions; pass 1 applies the flags, so
     * flags override the file wherever they stand. */
    for (pass = 0; pass < 2; pass++) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            char key[128];
            const char *val, *eq;

            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                act = SL_CONFIG_HELP;
                continue;
            }
            if (strcmp(a, "--version") == 0) {
                act = SL_CONFIG_VERSION;
                continue;
            }
            if (strcmp(a, "--dump-config-md") == 0) {
                act = SL_CONFIG_DUMP_MD;
                continue;
            }
            if (strcmp(a, "--dump-config") == 0) {
                act = SL_CONFIG_DUMP_CONF;
                continue;
            }
            if (strncmp(a, "--", 2) != 0) {
                snprintf(err, errlen,
                         "unexpected argument '%s' (settings are --key value;"
                         " see --help)",
                         a);
                return SL_ERR_INVALID_CONFIG;
            }
            eq = strchr(a + 2, '=');
            if (eq) {
                size_t kl = (size_t)(eq - (a + 2));
                if (kl >= sizeof(key))
                    kl = sizeof(key) - 1;
                memcpy(key, a + 2, kl);
                key[kl] = '\0';
                val = eq + 1;
            } else {
                const sl_cfg_entry *be;
                snprintf(key, sizeof(key), "%s", a + 2);
                be = sl_config_find(key);
                if (be && be->type == SL_CFG_T_BOOL &&
                    (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                    val = "yes"; /* a bare boolean flag: --recover */
                    goto have_val;
                }
                if (i + 1 >= argc) {
                    snprintf(err, errlen, "--%s needs a value", key);
                    return SL_ERR_INVALID_CONFIG;
                }
                val = argv[++i];
            }
        have_val:
            if (!sl_config_find(key)) {
                snprintf(err, errlen,
                         "unknown option '--%s' (see sluiced --help)", key);
                return SL_ERR_INVALID_CONFIG;
            }
            if (pass == 0) {
                if (strcmp(key, "config") == 0)
                    cfile = val;
                continue;
            }
            rc = sl_config_set(cfg, key, val, err, errlen);
            if (rc != SL_OK)
                return rc;
        }
        if (pass == 0 && cfile &&
            (act == SL_CONFIG_RUN || act == SL_CONFIG_DUMP_CONF)) {
            rc = sl_config_load_file(cfg, cfile, err, errlen);
            if (rc != SL_OK)
                return rc;
        }
    }
    for (size_t i = 0; i < NTABLE; i++) {
        if (table[i].apply && table[i].apply(cfg, err, errlen) != 0)
            return SL_ERR_INVALID_CONFIG;
    }
    *action = act;
    return SL_OK;
}

static const char *type_name(const sl_cfg_entry *e)
{
    switch (e->type) {
    case SL_CFG_T_STR:
        return "string";
    case SL_CFG_T_ADDR:
        return "host:port";
    case SL_CFG_T_BOOL:
        return "yes|no";
    case SL_CFG_T_INT:
        return "integer";
    case SL_CFG_T_SIZE:
        return "bytes";
    case SL_CFG_T_MS:
        return "ms";
    case SL_CFG_T_ENUM:
        return e->choices;
    }
    return "?";
}

void sl_config_print_help(FILE *f, const char *prog)
{
    fprintf(f,
            "Usage: %s [--config FILE] [--KEY VALUE]...\n"
            "Sluice broker: binary protocol and STOMP over partitioned logs.\n"
            "Every setting is a flag (--KEY VALUE or --KEY=VALUE) and a "
            "config-file line (KEY VALUE).\n"
            "Sizes take k/m/g/t suffixes (1024-based); durations ms/s/m/h/d."
            "\n\nSettings:\n",
            prog);
    for (size_t i = 0; i < NTABLE; i++) {
        const sl_cfg_entry *e = &table[i];
        char flag[160];
        const char *d = e->desc;

        snprintf(flag, sizeof(flag), "--%s <%s>", e->key, type_name(e));
        fprintf(f, "  %s\n", flag);
        /* wrap the description at ~74 columns, indented */
        while (*d) {
            size_t n = strlen(d), cut = n;
            if (n > 70) {
                cut = 70;
                while (cut > 20 && d[cut] != ' ')
                    cut--;
            }
            fprintf(f, "        %.*s\n", (int)cut, d);
            d += cut;
            while (*d == ' ')
                d++;
        }
        fprintf(f, "        default: %s%s\n", e->def[0] ? e->def : "(none)",
                (e->flags & SL_CF_TOPIC) ? "  (per-topic override allowed)"
                                         : "");
    }
    fprintf(f, "\nOther flags:\n"
               "  --help            this text\n"
               "  --version         print the version\n"
               "  --dump-config     print the effective settings as a config "
               "file\n"
               "  --dump-config-md  print the settings table as markdown\n");
}

void sl_config_dump_md(FILE *f)
{
    fprintf(f, "| Key / flag | Type | Default | Range | Topic | "
               "Description |\n");
    fprintf(f, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NTABLE; i++) {
        const sl_cfg_entry *e = &table[i];
        char range[96] = "";
        const char *d;

        if (e->type == SL_CFG_T_INT || e->type == SL_CFG_T_SIZE ||
            e->type == SL_CFG_T_MS)
            snprintf(range, sizeof(range), "%lld .. %lld", (long long)e->min,
                     (long long)e->max);
        fprintf(f, "| `%s` / `--%s` | %s | `%s` | %s | %s | ", e->key, e->key,
                e->type == SL_CFG_T_ENUM ? "enum" : type_name(e),
                e->def[0] ? e->def : "", range,
                (e->flags & SL_CF_TOPIC) ? "yes" : "");
        for (d = e->desc; *d; d++) {
            if (*d == '|')
                fputs("\\|", f);
            else
                fputc(*d, f);
        }
        if (e->type == SL_CFG_T_ENUM)
            fprintf(f, " One of: `%s`.", e->choices);
        fputs(" |\n", f);
    }
}

void sl_config_format(const sl_config *cfg, const sl_cfg_entry *e, char *buf,
                      size_t len)
{
    const char *p = (const char *)cfg + e->off;

    switch (e->type) {
    case SL_CFG_T_STR:
    case SL_CFG_T_ADDR:
        snprintf(buf, len, "%s", *(char *const *)p ? *(char *const *)p : "");
        break;
    case SL_CFG_T_BOOL:
        snprintf(buf, len, "%s", *(const int *)p ? "yes" : "no");
        break;
    case SL_CFG_T_ENUM: {
        int idx = *(const int *)p;
        const char *c = e->choices;
        for (int i = 0; i < idx && c; i++) {
            c = strchr(c, '|');
            if (c)
                c++;
        }
        if (!c)
            c = "?";
        snprintf(
            buf, len, "%.*s",
            (int)(strchr(c, '|') ? (size_t)(strchr(c, '|') - c) : strlen(c)),
            c);
        break;
    }
    default:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
    }
}

void sl_config_dump_conf(FILE *f, const sl_config *cfg)
{
    char v[4096]; /* a config file line's limit (sl_config_load_file) */
    for (size_t i = 0; i < NTABLE; i++) {
        size_t n;
        int quote;
        if (strcmp(table[i].key, "config") == 0)
            continue;
        sl_config_format(cfg, &table[i], v, sizeof(v));
        /* The loader trims blanks around a value and strips one pair of
         * matching quotes: quote a value that would lose either, so the
         * dump loads back to the same settings. */
        n = strlen(v);
        quote =
            n > 0 &&
            (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) ||
             (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]));
        fprintf(f, quote ? "%s \"%s\"\n" : "%s %s\n", table[i].key, v);
    }
}

sl_err sl_config_part_cfg(const sl_config *cfg, const char *const *keys,
                          const char *const *values, size_t n, sl_part_cfg *out,
                          char *err, size_t errlen)
{
    sl_config c;
    sl_part_cfg pc;

    /* Copy only the scalar fields we need; strings are not touched. */
    memcpy(&c, cfg, sizeof(c));
    for (size_t i = 0; i < n; i++) {
        const sl_cfg_entry *e = sl_config_find(keys[i]);
        sl_err rc;
        if (!e || !(e->flags & SL_CF_TOPIC)) {
            snprintf(err, errlen, "'%s' is not a topic setting", keys[i]);
            return SL_ERR_INVALID_CONFIG;
        }
        if (is_str(e->type)) {
            snprintf(err, errlen, "'%s' cannot be set per topic", keys[i]);
            return SL_ERR_INVALID_CONFIG;
        }
        rc = parse_value(e, values[i], (char *)&c + e->off, err, errlen);
        if (rc != SL_OK)
            return rc;
    }
    sl_part_cfg_defaults(&pc);
    pc.segment_bytes = (uint64_t)c.segment_bytes;
    pc.segment_ms = c.segment_ms;
    pc.retention_bytes = c.retention_bytes;
    pc.retention_ms = c.retention_ms;
    pc.index_interval_bytes = (uint32_t)c.index_interval_bytes;
    pc.flush = c.flush; /* same order as enum sl_flush_policy */
    pc.flush_interval_ms = c.flush_interval_ms;
    pc.compact = c.cleanup_policy == 1;
    pc.delete_retention_ms = c.delete_retention_ms;
    pc.preallocate_bytes = (uint64_t)c.segment_preallocate_bytes;
    *out = pc;
    return SL_OK;
}
