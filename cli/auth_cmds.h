/*
 * auth_cmds.h - `sluice user ...`, `sluice acl ...` and the login options
 * of every command (auth_cmds.c).
 */
#ifndef SL_CLI_AUTH_CMDS_H
#define SL_CLI_AUTH_CMDS_H

#include "sluice.h"

/* Set the login of conf: user (--user) or $SLUICE_USER; the password from
 * $SLUICE_PASSWORD (read by libsluice), -X sasl.password, else a prompt
 * when a terminal is attached. 0, or -1 after printing why. */
int sl_cli_login_setup(sluice_conf *conf, const char *user);
/* --help of user and acl: 1 when printed. */
int sl_cli_auth_help(int argc, char **argv);
/* Run argv if it is `user ...` or `acl ...` (*handled = 1). */
int sl_cli_auth(sluice_conf *conf, int argc, char **argv, int *handled);

#endif
