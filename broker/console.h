/*
 * console.h - the web console's static files (broker/console/), compiled
 * into sluiced by a CMake step (cmake/embed.cmake writes console_assets.c
 * with one C array per file): nothing is read from disk or fetched from
 * the internet at run time.
 */
#ifndef SL_CONSOLE_H
#define SL_CONSOLE_H

#include <stddef.h>

typedef struct sl_console_file {
    const char *path;  /* "/index.html" */
    const char *ctype; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
} sl_console_file;

/* The file served at path ("/" = "/index.html"), or NULL. */
const sl_console_file *sl_console_find(const char *path);

#endif
