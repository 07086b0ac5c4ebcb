/*
 * mgmt.h - the `sluice` management commands (queues, connections, status,
 * version, purge, peek, group delete/reset, topic alter/add-partitions,
 * dlq list/purge) over the ADMIN api, and per-command --help.
 */
#ifndef SL_CLI_MGMT_H
#define SL_CLI_MGMT_H

#include "sluice.h"

/* If argv (the words after the global options) asks for help anywhere
 * (--help or -h), print the help of the command it names and return 1;
 * never contacts a broker. 0 otherwise. */
int sl_cli_help(int argc, char **argv);

/* Run argv if it is a management command: *handled = 1 and the exit code;
 * else *handled = 0. */
int sl_cli_mgmt(sluice_conf *conf, int argc, char **argv, int *handled);

#endif
