/*
 * main.c - sluiced: argv -> config -> server start -> ready line -> run.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a fatal error at run time,
 * 2 for bad settings, 3 when the data directory is locked by another
 * sluiced, 4 for other start-up failures (cannot listen, cannot open).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/pl_vfs.h"
#include "broker/server.h"
#include "protocol/log.h"
#include "storage/powerloss.h"

/* Descriptors: a partition holds one (its active segment) and each
 * connection one, so the soft limit (often 1024) is raised to the hard
 * limit at start, as nginx's worker_rlimit_nofile and most brokers do.
 * Best effort: the limit stays what it was when that fails. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        sl_log(SL_DEBUG, "server", "descriptor limit raised from %llu to %llu",
               (unsigned long long)old, (unsigned long long)rl.rlim_max);
}

/*
 * glibc's malloc gives freed memory at the top of the heap back to the
 * system once more than M_TRIM_THRESHOLD is free there, and serves blocks
 * from M_MMAP_THRESHOLD up with mmap, unmapped again when freed; both start
 * at 128 KiB and follow only the largest block freed so far. The broker's
 * input comes and goes in blocks of 64 KiB to 1 MiB (a produced batch,
 * pulled up whole), so it gave memory back and faulted it in again all the
 * time: 3,000-20,000 page faults of the event loop per 2 M records of
 * 100 B (issue 20; up to a sixth of the loop's time, and more on a VM
 * whose host takes freed memory back). Blocks up to 4 MiB now come from
 * the heap, and up to 64 MiB free at its top stays with the process (idle
 * partitions and closed connections still hand memory back through
 * malloc_trim). GLIBC_TUNABLES naming either setting wins.
 */
static void malloc_setup(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && (strstr(t, "malloc.trim_threshold") ||
              strstr(t, "malloc.mmap_threshold")))
        return;
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

int main(int argc, char **argv)
{
    sl_config cfg;
    enum sl_config_action act;
    sl_broker *b;
    char err[1024];
    sl_err rc;

    sl_config_init(&cfg);
    rc = sl_config_parse_args(&cfg, argc, argv, &act, err, sizeof(err));
    if (rc != SL_OK) {
        fprintf(stderr, "sluiced: %s\n", err);
        sl_config_fini(&cfg);
        return 2;
    }
    switch (act) {
    case SL_CONFIG_HELP:
        sl_config_print_help(stdout, "sluiced");
        sl_config_fini(&cfg);
        return 0;
    case SL_CONFIG_VERSION:
        printf("sluiced 0.1.0\n");
        sl_config_fini(&cfg);
        return 0;
    case SL_CONFIG_DUMP_MD:
        sl_config_dump_md(stdout);
        sl_config_fini(&cfg);
        return 0;
    case SL_CONFIG_DUMP_CONF:
        sl_config_dump_conf(stdout, &cfg);
        sl_config_fini(&cfg);
        return 0;
    case SL_CONFIG_RUN:
        break;
    }
    if (cfg.log_file && cfg.log_file[0] && sl_log_set_file(cfg.log_file) != 0) {
        fprintf(stderr, "sluiced: log-file: cannot open %s: %s\n", cfg.log_file,
                strerror(errno));
        sl_config_fini(&cfg);
        return 2;
    }
    /* Test mode only (storage/powerloss.h): cut power at a chosen I/O
     * operation. Installed before anything is opened. */
    if (getenv("SLUICE_POWERLOSS")) {
        if (sl_powerloss_install(getenv("SLUICE_POWERLOSS"), err,
                                 sizeof(err)) != SL_OK ||
            sl_pl_vfs_register() != 0) {
            fprintf(stderr, "sluiced: %s\n", err);
            sl_config_fini(&cfg);
            return 2;
        }
        sl_log(SL_WARN, "powerloss",
               "TEST MODE: SLUICE_POWERLOSS=%s: this process will drop "
               "unsynced writes and exit %d at a chosen I/O operation",
               getenv("SLUICE_POWERLOSS"), SL_POWERLOSS_EXIT);
    }
    raise_nofile();
    malloc_setup();
    /* The data directory holds every message and the users' keys: what
     * sluiced creates is for its own user only (directories 0700, files
     * 0600; issue 16, docs/security.md). */
    umask(077);
    rc = sl_server_start(&cfg, &b, err, sizeof(err));
    if (rc != SL_OK) {
        fprintf(stderr, "sluiced: %s\n", err);
        sl_log(SL_ERROR, "server", "cannot start: %s", err);
        return rc == SL_ERR_BUSY ? 3 : 4;
    }
    printf("sluiced ready binary=%s stomp=%s http=%s", sl_server_binary_addr(b),
           sl_server_stomp_addr(b), sl_server_http_addr(b));
    /* the optional listeners' fields only when they are on */
    if (sl_server_ws_addr(b)) /* stomp-ws-listen */
        printf(" stomp-ws=%s", sl_server_ws_addr(b));
    if (sl_server_binary_tls_addr(b))
        printf(" tls=%s", sl_server_binary_tls_addr(b));
    if (sl_server_stomp_tls_addr(b))
        printf(" stomp-tls=%s", sl_server_stomp_tls_addr(b));
    if (sl_server_wss_addr(b))
        printf(" stomp-wss=%s", sl_server_wss_addr(b));
    if (sl_server_http_tls_addr(b))
        printf(" http-tls=%s", sl_server_http_tls_addr(b));
    printf(" pid=%ld\n", (long)getpid());
    fflush(stdout);
    return sl_server_run(b);
}
