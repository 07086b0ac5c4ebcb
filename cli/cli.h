/*
 * cli.h - what the files of the `sluice` tool share (sluice.c: options,
 * main, topic and cluster commands; cmd_data.c: produce, consume, queue;
 * cmd_groups.c: group and dlq; mgmt.c and auth_cmds.c: ADMIN commands).
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice.h"

enum {
    EX_OK = 0,
    EX_FAIL = 1,
    EX_USAGE = 2,
    EX_UNREACHABLE = 3,
    EX_TIMEOUT = 4
};

/* The configuration main builds from the options; g_stop is set by
 * SIGINT and SIGTERM. */
extern sluice_conf *g_conf;
extern volatile sig_atomic_t g_stop;

/* Helpers of sluice.c: a usage error (exit 2), the exit code for a
 * libsluice error, an error line and its exit code, a time argument
 * (ms since the epoch or an ISO-8601 UTC time), an option's value, a message
 * as text or JSON. */
int cli_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_exit_for(sluice_err err);
int cli_fail(sluice_err err, const char *what);
int cli_fail_new(sluice_err err, const char *errstr);
const char *cli_optval(int argc, char **argv, int *i);
int cli_parse_time(const char *s, int64_t *out);
void cli_print_msg(const sluice_message *m, int json, int queue);
/* The commands of cmd_data.c and cmd_groups.c. */
int cmd_consume(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_group(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_queue(int argc, char **argv);

#endif
