/*
 * config.h - sluiced settings, generated from broker/config_table.h.
 *
 * One parser for everything: `--flush interval` on the command line and
 * the line `flush interval` in a config file go through sl_config_set().
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "groups/queue_cfg.h" /* bounds of the queue-* keys */
#include "protocol/err.h"
#include "storage/partition.h"

#define SL_CF_TOPIC 0x1 /* a topic may override this key */

struct sl_config;
typedef int (*sl_cfg_apply_fn)(struct sl_config *cfg, char *err, size_t errlen);
int sl_config_apply_log_level(struct sl_config *cfg, char *err, size_t errlen);
int sl_config_apply_log_format(struct sl_config *cfg, char *err, size_t errlen);
/* broker/stomp_vhost.c: the vhosts list is valid */
int sl_config_apply_vhosts(struct sl_config *cfg, char *err, size_t errlen);

#define SL_CT_STR char *
#define SL_CT_ADDR char *
#define SL_CT_BOOL int
#define SL_CT_INT int64_t
#define SL_CT_SIZE int64_t
#define SL_CT_MS int64_t

typedef struct sl_config {
#define SL_CFG(field, key, type, def, min, max, flags, apply, desc)            \
    SL_CT_##type field;
#define SL_CFG_ENUM(field, key, def, choices, flags, apply, desc) int field;
#include "broker/config_table.h"
#undef SL_CFG
#undef SL_CFG_ENUM
} sl_config;

enum sl_cfg_type {
    SL_CFG_T_STR,
    SL_CFG_T_ADDR,
    SL_CFG_T_BOOL,
    SL_CFG_T_INT,
    SL_CFG_T_SIZE,
    SL_CFG_T_MS,
    SL_CFG_T_ENUM
};

typedef struct sl_cfg_entry {
    const char *key;
    enum sl_cfg_type type;
    const char *def;
    int64_t min, max;
    const char *choices; /* ENUM: "a|b|c" */
    unsigned flags;
    sl_cfg_apply_fn apply;
    const char *desc;
    size_t off; /* offsetof(sl_config, field) */
} sl_cfg_entry;

/* The table; *n = number of entries. */
const sl_cfg_entry *sl_config_table(size_t *n);
const sl_cfg_entry *sl_config_find(const char *key);

/* Every field at its default. Caller frees with sl_config_fini. */
void sl_config_init(sl_config *cfg);
void sl_config_fini(sl_config *cfg);

/* Parse and store one value. SL_OK, or SL_ERR_INVALID_CONFIG with err
 * naming the key, the value and the rule it breaks. */
sl_err sl_config_set(sl_config *cfg, const char *key, const char *value,
                     char *err, size_t errlen);
/* Read a config file (`key value` lines; # comments; blank lines).
 * Errors name file:line. */
sl_err sl_config_load_file(sl_config *cfg, const char *path, char *err,
                           size_t errlen);

enum sl_config_action {
    SL_CONFIG_RUN = 0,
    SL_CONFIG_HELP,
    SL_CONFIG_VERSION,
    SL_CONFIG_DUMP_MD,
    SL_CONFIG_DUMP_CONF
};
/* argv: --config FILE is read first, then every other --key value /
 * --key=value overrides. --help, --version, --dump-config-md (markdown
 * table), --dump-config (effective settings as a config file). Runs the
 * apply functions. *action written on success. */
sl_err sl_config_parse_args(sl_config *cfg, int argc, char **argv,
                            enum sl_config_action *action, char *err,
                            size_t errlen);

void sl_config_print_help(FILE *f, const char *prog);
void sl_config_dump_md(FILE *f);
void sl_config_dump_conf(FILE *f, const sl_config *cfg);
/* Value of key in cfg formatted into buf (for dumps and meta). */
void sl_config_format(const sl_config *cfg, const sl_cfg_entry *e, char *buf,
                      size_t len);

/*
 * Partition config for a topic: broker defaults from cfg, then the topic's
 * overrides (keys must be SL_CF_TOPIC entries). SL_OK or
 * SL_ERR_INVALID_CONFIG (err names the key). *out written on success.
 */
sl_err sl_config_part_cfg(const sl_config *cfg, const char *const *keys,
                          const char *const *values, size_t n, sl_part_cfg *out,
                          char *err, size_t errlen);

#endif
