/*
 * fuzz_config.c - the sluiced config file parser (sl_config_load_file)
 * on fuzzed files. Whatever it accepts must survive a round trip: the
 * effective settings dumped as a config file (sl_config_dump_conf) load
 * again and dump to the same text.
 */
#include "tests/fuzz/fuzz_common.h"

#include "broker/config.h"
#include "protocol/log.h"

static char *dump(const sl_config *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        abort();
    sl_config_dump_conf(f, cfg);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_config cfg, cfg2;
    char path[64], err[1024];
    int fd = fz_memfile(data, size, path, sizeof(path));
    int lvl = sl_log_level;

    sl_config_init(&cfg);
    if (sl_config_load_file(&cfg, path, err, sizeof(err)) == SL_OK) {
        size_t l1, l2;
        char *d1 = dump(&cfg, &l1), *d2;
        int fd2 = fz_memfile((const uint8_t *)d1, l1, path, sizeof(path));
        sl_config_init(&cfg2);
        if (sl_config_load_file(&cfg2, path, err, sizeof(err)) != SL_OK) {
            fprintf(stderr, "dumped config does not load: %s\n", err);
            abort();
        }
        d2 = dump(&cfg2, &l2);
        if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
            fprintf(stderr, "config dump is not stable\n");
            abort();
        }
        free(d1);
        free(d2);
        sl_config_fini(&cfg2);
        close(fd2);
    } else {
        fz_touch(err, strlen(err));
    }
    sl_config_fini(&cfg);
    sl_log_level = lvl;
    close(fd);
    return 0;
}
