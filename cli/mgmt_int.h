/*
 * mgmt_int.h - what mgmt.c shares with mgmt_cluster.c (not for use outside
 * cli/mgmt*.c): exit codes, the admin call and its arguments, reading the
 * answer's fields, and the cluster commands.
 */
#ifndef SL_CLI_MGMT_INT_H
#define SL_CLI_MGMT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sluice.h"

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_TIMEOUT };

#define EX_BUSY_RETRY 100 /* call_ex with busy_ok: SLUICE_ERR_BUSY */

/* ms since the epoch, or an ISO-8601 UTC time (cli/sluice.c; cli.h is not
 * included here: its command names differ from mgmt.c's). */
int cli_parse_time(const char *s, int64_t *out);

typedef struct kvs {
    sluice_kv v[64];
    size_t n;
} kvs;

/* "sluice: MESSAGE (--help for usage)" on stderr; EX_USAGE. */
int mgmt_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Add k=v to a (borrowed; at most 64, the rest dropped). */
void mgmt_kv_add(kvs *a, const char *k, const char *v);
/* Call verb; on success *out is the parsed answer (cJSON_Delete) and, if
 * raw is not NULL, the text (free). Returns an exit code. */
int mgmt_call(sluice_conf *conf, const char *verb, const kvs *args,
              const char *what, cJSON **out, char **raw);
/* mgmt_call, but with busy_ok a SLUICE_ERR_BUSY answer ("retry") returns
 * EX_BUSY_RETRY without printing anything. */
int mgmt_call_ex(sluice_conf *conf, const char *verb, const kvs *args,
                 const char *what, cJSON **out, char **raw, int busy_ok);
/* The number (-1 when absent) or string (NULL) at key k of o. */
int64_t mgmt_num(const cJSON *o, const char *k);
const char *mgmt_str(const cJSON *o, const char *k);

/* mgmt_cluster.c: `sluice partition reassign ...` and `sluice cluster
 * rebalance|add-node|remove-node ...` (argv[0] the subcommand). */
int mgmt_cmd_partition(sluice_conf *conf, int argc, char **argv);
int mgmt_cmd_cluster(sluice_conf *conf, int argc, char **argv);

#endif
