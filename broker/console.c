/*
 * console.c - look-up in the embedded console files (console.h).
 */
#include "broker/console.h"

#include <string.h>

/* console_assets.c (generated at build time from broker/console/) */
extern const sl_console_file sl_console_files[];
extern const size_t sl_console_nfiles;

const sl_console_file *sl_console_find(const char *path)
{
    if (!strcmp(path, "/"))
        path = "/index.html";
    for (size_t i = 0; i < sl_console_nfiles; i++)
        if (!strcmp(sl_console_files[i].path, path))
            return &sl_console_files[i];
    return NULL;
}
