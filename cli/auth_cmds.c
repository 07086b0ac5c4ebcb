/*
 * auth_cmds.c - `sluice user ...` and `sluice acl ...` (docs/security.md),
 * and the login options of every command (--user, SLUICE_USER,
 * SLUICE_PASSWORD, a prompt on a terminal).
 *
 * A new password never travels to the broker nor appears on the command
 * line: it comes from stdin (--password-stdin), the SLUICE_NEW_PASSWORD
 * environment variable or a prompt, and the CLI sends the SCRAM keys
 * derived from it (salt, iterations, StoredKey, ServerKey), as Kafka's
 * kafka-configs does for SCRAM credentials.
 */
#include "cli/auth_cmds.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "protocol/scram.h"

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_UNREACHABLE = 3 };

static int usage_err(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (sluice user --help, sluice acl --help)\n", stderr);
    return EX_USAGE;
}

/* Read a line from the terminal with echo off. 0 or -1. */
static int prompt(const char *what, char *out, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    struct termios old, noecho;
    int ok;
    size_t n;
    if (!tty)
        return -1;
    fputs(what, tty);
    fflush(tty);
    ok = tcgetattr(fileno(tty), &old) == 0;
    if (ok) {
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &noecho);
    }
    if (!fgets(out, (int)cap, tty))
        out[0] = 0;
    if (ok)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = 0;
    return 0;
}

int sl_cli_login_setup(sluice_conf *conf, const char *user)
{
    char pw[1024], q[128];
    const char *u = user, *p = getenv("SLUICE_PASSWORD");
    if (!u || !*u)
        u = getenv("SLUICE_USER");
    if (!u || !*u)
        return 0;
    if (sluice_conf_set(conf, "sasl.username", u, NULL, 0) != SLUICE_OK) {
        fprintf(stderr, "sluice: --user '%s': 1..64 characters\n", u);
        return -1;
    }
    if (p && *p)
        return 0; /* libsluice reads SLUICE_PASSWORD */
    if (*sluice_conf_get(conf, "sasl.password"))
        return 0; /* -X sasl.password=... */
    if (!isatty(STDIN_FILENO) && !isatty(STDERR_FILENO))
        return 0; /* the broker will say the login failed */
    snprintf(q, sizeof(q), "Password for %s: ", u);
    if (prompt(q, pw, sizeof(pw)) != 0)
        return 0;
    sluice_conf_set(conf, "sasl.password", pw, NULL, 0);
    memset(pw, 0, sizeof(pw));
    return 0;
}

/* The new password: stdin, $SLUICE_NEW_PASSWORD or a prompt (twice). */
static int new_password(int from_stdin, const char *name, char *pw, size_t cap)
{
    const char *env = getenv("SLUICE_NEW_PASSWORD");
    char again[1024], q[128];
    size_t n;
    if (from_stdin) {
        if (!fgets(pw, (int)cap, stdin)) {
            fprintf(stderr, "sluice: --password-stdin: nothing on stdin\n");
            return -1;
        }
        n = strlen(pw);
        while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
            pw[--n] = 0;
    } else if (env && *env) {
        snprintf(pw, cap, "%s", env);
    } else {
        snprintf(q, sizeof(q), "New password for %s: ", name);
        if (prompt(q, pw, cap) != 0) {
            fprintf(stderr,
                    "sluice: no password: give it on stdin with "
                    "--password-stdin, in SLUICE_NEW_PASSWORD, or run on a "
                    "terminal (never on the command line)\n");
            return -1;
        }
        prompt("Again: ", again, sizeof(again));
        if (strcmp(pw, again) != 0) {
            fprintf(stderr, "sluice: the passwords differ\n");
            memset(again, 0, sizeof(again));
            return -1;
        }
        memset(again, 0, sizeof(again));
    }
    if (!pw[0]) {
        fprintf(stderr, "sluice: the password is empty\n");
        return -1;
    }
    return 0;
}

static int exit_for(sluice_err err)
{
    if (err == SLUICE_ERR_DISCONNECTED || SLUICE_ERR_IS_SYS(err))
        return EX_UNREACHABLE;
    return EX_FAIL;
}

static int call(sluice_conf *conf, const char *verb, sluice_kv *kv, size_t n,
                cJSON **out)
{
    sluice_admin *a = NULL;
    char errstr[512], *json = NULL;
    sluice_err err = sluice_admin_new(conf, &a, errstr, sizeof(errstr));
    if (err) {
        fprintf(stderr, "sluice: %s\n",
                errstr[0] ? errstr : sluice_strerror(err));
        return exit_for(err);
    }
    err = sluice_admin_call(a, verb, kv, n, &json, NULL);
    sluice_admin_free(a);
    if (err) {
        const char *d = sluice_errstr();
        size_t vl = strlen(verb);
        if (d && !strncmp(d, verb, vl) && d[vl] == ':') /* names it already */
            fprintf(stderr, "sluice: %s\n", d);
        else
            fprintf(stderr, "sluice: %s: %s\n", verb,
                    d && *d ? d : sluice_strerror(err));
        return exit_for(err);
    }
    *out = cJSON_Parse(json);
    sluice_free(json);
    if (!*out) {
        fprintf(stderr, "sluice: %s: the broker's answer is not JSON\n", verb);
        return EX_FAIL;
    }
    return EX_OK;
}

static int user_set(sluice_conf *conf, const char *verb, const char *name,
                    int from_stdin, int admin)
{
    char pw[1024], salt64[64], st64[64], sv64[64], iters[16];
    uint8_t salt[SL_SCRAM_SALT_LEN], salted[SL_SCRAM_KEY_LEN];
    uint8_t stored[SL_SCRAM_KEY_LEN], server[SL_SCRAM_KEY_LEN];
    sluice_kv kv[6];
    size_t n = 0;
    cJSON *j = NULL;
    int rc;
    if (new_password(from_stdin, name, pw, sizeof(pw)) != 0)
        return EX_USAGE;
    if (sl_scram_random(salt, sizeof(salt)) != SL_OK ||
        sl_scram_salted(pw, strlen(pw), salt, sizeof(salt),
                        SL_SCRAM_DEFAULT_ITER, salted) != SL_OK) {
        memset(pw, 0, sizeof(pw));
        fprintf(stderr, "sluice: cannot derive the keys\n");
        return EX_FAIL;
    }
    memset(pw, 0, sizeof(pw));
    sl_scram_keys(salted, NULL, stored, server);
    sl_b64_encode(salt, sizeof(salt), salt64, sizeof(salt64));
    sl_b64_encode(stored, sizeof(stored), st64, sizeof(st64));
    sl_b64_encode(server, sizeof(server), sv64, sizeof(sv64));
    snprintf(iters, sizeof(iters), "%d", SL_SCRAM_DEFAULT_ITER);
    kv[n].key = "name";
    kv[n++].value = (char *)name;
    kv[n].key = "salt";
    kv[n++].value = salt64;
    kv[n].key = "iterations";
    kv[n++].value = iters;
    kv[n].key = "stored_key";
    kv[n++].value = st64;
    kv[n].key = "server_key";
    kv[n++].value = sv64;
    if (admin) {
        kv[n].key = "admin";
        kv[n++].value = "yes";
    }
    rc = call(conf, verb, kv, n, &j);
    if (rc == EX_OK)
        printf("%s user %s\n", !strcmp(verb, "user.add") ? "added" : "changed",
               name);
    cJSON_Delete(j);
    return rc;
}

static int cmd_user(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *name = NULL;
    int from_stdin = 0, admin = 0, rc;
    cJSON *j = NULL, *u;
    sluice_kv kv[1];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--password-stdin"))
            from_stdin = 1;
        else if (!strcmp(argv[i], "--admin"))
            admin = 1;
        else if (!strncmp(argv[i], "--password", 10))
            return usage_err("%s: a password never goes on the command line "
                             "(--password-stdin, SLUICE_NEW_PASSWORD or the "
                             "prompt)",
                             argv[i]);
        else if (argv[i][0] == '-')
            return usage_err("user: unknown option '%s'", argv[i]);
        else if (!name)
            name = argv[i];
        else
            return usage_err("user: unexpected argument '%s'", argv[i]);
    }
    if (!strcmp(sub, "list")) {
        rc = call(conf, "users", NULL, 0, &j);
        if (rc != EX_OK)
            return rc;
        cJSON_ArrayForEach(u, cJSON_GetObjectItem(j, "users"))
        {
            printf("%s\t%s\n",
                   cJSON_GetStringValue(cJSON_GetObjectItem(u, "name")),
                   cJSON_IsTrue(cJSON_GetObjectItem(u, "admin")) ? "admin"
                                                                 : "user");
        }
        cJSON_Delete(j);
        return EX_OK;
    }
    if (!name)
        return usage_err("user %s: which user?", sub);
    if (!strcmp(sub, "add"))
        return user_set(conf, "user.add", name, from_stdin, admin);
    if (!strcmp(sub, "passwd"))
        return user_set(conf, "user.passwd", name, from_stdin, admin);
    if (!strcmp(sub, "delete")) {
        kv[0].key = "name";
        kv[0].value = (char *)name;
        rc = call(conf, "user.delete", kv, 1, &j);
        if (rc == EX_OK)
            printf("deleted user %s\n", name);
        cJSON_Delete(j);
        return rc;
    }
    return usage_err("user: unknown subcommand '%s' (add, passwd, delete, "
                     "list)",
                     sub);
}

static int cmd_acl(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *user = NULL, *res = NULL;
    const char *pat = "", *ops = NULL;
    int prefix = 0, rc;
    sluice_kv kv[6];
    size_t n = 0;
    cJSON *j = NULL, *r, *o;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--topic") || !strcmp(argv[i], "--group")) &&
            i + 1 < argc) {
            res = argv[i] + 2;
            pat = argv[++i];
        } else if (!strcmp(argv[i], "--cluster")) {
            res = "cluster";
        } else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
            ops = argv[++i];
        } else if (!strcmp(argv[i], "--prefix")) {
            prefix = 1;
        } else if (argv[i][0] == '-') {
            return usage_err("acl: unknown option or missing value '%s'",
                             argv[i]);
        } else if (!user) {
            user = argv[i];
        } else {
            return usage_err("acl: unexpected argument '%s'", argv[i]);
        }
    }
    if (!strcmp(sub, "list")) {
        if (user) {
            kv[n].key = "user";
            kv[n++].value = (char *)user;
        }
        rc = call(conf, "acls", kv, n, &j);
        if (rc != EX_OK)
            return rc;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "acls"))
        {
            const char *rs =
                cJSON_GetStringValue(cJSON_GetObjectItem(r, "resource"));
            const char *p =
                cJSON_GetStringValue(cJSON_GetObjectItem(r, "pattern"));
            const char *pt =
                cJSON_GetStringValue(cJSON_GetObjectItem(r, "pattern_type"));
            int first = 1;
            printf("%s\t%s\t%s\t%s\t",
                   cJSON_GetStringValue(cJSON_GetObjectItem(r, "user")), rs,
                   p ? (p[0] ? p : "\"\"") : "-", pt ? pt : "-");
            cJSON_ArrayForEach(o, cJSON_GetObjectItem(r, "ops"))
            {
                printf("%s%s", first ? "" : ",", cJSON_GetStringValue(o));
                first = 0;
            }
            printf("\n");
        }
        cJSON_Delete(j);
        return EX_OK;
    }
    if (strcmp(sub, "grant") && strcmp(sub, "revoke"))
        return usage_err("acl: unknown subcommand '%s' (grant, revoke, list)",
                         sub);
    if (!user)
        return usage_err("acl %s: which user?", sub);
    if (!res)
        return usage_err("acl %s: name the resource: --topic PATTERN, "
                         "--group PATTERN or --cluster",
                         sub);
    if (!ops && !strcmp(sub, "grant"))
        return usage_err("acl %s: --ops LIST (produce, consume, create, "
                         "delete, alter, describe, commit, dlq-redrive, "
                         "admin, all)",
                         sub);
    kv[n].key = "user";
    kv[n++].value = (char *)user;
    kv[n].key = "resource";
    kv[n++].value = (char *)res;
    kv[n].key = "pattern";
    kv[n++].value = (char *)pat;
    kv[n].key = "prefix";
    kv[n++].value = prefix ? "yes" : "no";
    if (ops) {
        kv[n].key = "ops";
        kv[n++].value = (char *)ops;
    }
    rc = call(conf, !strcmp(sub, "grant") ? "acl.grant" : "acl.revoke", kv, n,
              &j);
    if (rc == EX_OK)
        printf("%s %s on %s %s%s for %s\n",
               !strcmp(sub, "grant") ? "granted" : "revoked",
               ops ? ops : "every operation", res, pat,
               prefix ? " (prefix)" : "", user);
    cJSON_Delete(j);
    return rc;
}

static const char *const user_help =
    "usage: sluice user add NAME [--admin] [--password-stdin]\n"
    "       sluice user passwd NAME [--password-stdin]\n"
    "       sluice user delete NAME\n"
    "       sluice user list\n"
    "The password comes from stdin (--password-stdin), the\n"
    "SLUICE_NEW_PASSWORD environment variable or a prompt; never from the\n"
    "command line. The first user turns authentication on (docs/security.md).\n"
    "example: printf 'secret\\n' | sluice user add alice --password-stdin\n";

static const char *const acl_help =
    "usage: sluice acl grant USER --topic P|--group P|--cluster --ops LIST "
    "[--prefix]\n"
    "       sluice acl revoke USER --topic P|--group P|--cluster [--ops LIST] "
    "[--prefix]\n"
    "       sluice acl list [USER]\n"
    "LIST: produce, consume, create, delete, alter, describe, commit,\n"
    "dlq-redrive, admin, all (comma-separated). --prefix: P is a prefix.\n"
    "example: sluice acl grant alice --topic orders. --prefix --ops "
    "produce,consume\n";

int sl_cli_auth_help(int argc, char **argv)
{
    int help = 0;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            help = 1;
    if (!help || argc < 1)
        return 0;
    if (!strcmp(argv[0], "user"))
        fputs(user_help, stdout);
    else if (!strcmp(argv[0], "acl"))
        fputs(acl_help, stdout);
    else
        return 0;
    return 1;
}

int sl_cli_auth(sluice_conf *conf, int argc, char **argv, int *handled)
{
    *handled = 0;
    if (argc < 1)
        return EX_OK;
    if (!strcmp(argv[0], "user")) {
        *handled = 1;
        return cmd_user(conf, argc - 1, argv + 1);
    }
    if (!strcmp(argv[0], "acl")) {
        *handled = 1;
        return cmd_acl(conf, argc - 1, argv + 1);
    }
    return EX_OK;
}
