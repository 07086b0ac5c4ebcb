#include "protocol/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int sl_log_level = SL_INFO;
static int log_fd = 2;
static int log_json;

void sl_log_set_json(int on)
{
    log_json = on;
}

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static char log_path[4096]; /* sl_log_set_file; empty = log_fd as set */

void sl_log_set_fd(int fd)
{
    log_fd = fd;
}

int sl_log_fd(void)
{
    return log_fd;
}

int sl_log_set_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    snprintf(log_path, sizeof(log_path), "%s", path);
    if (log_fd > 2) {
        /* reopen: the new file takes the old descriptor's number at once
         * (dup2 is atomic), so a line written by another thread meanwhile
         * goes to one file or the other, never to a closed descriptor */
        int rc = dup2(fd, log_fd);
        close(fd);
        return rc < 0 ? -1 : 0;
    }
    log_fd = fd;
    return 0;
}

int sl_log_reopen(void)
{
    if (!log_path[0])
        return -1;
    return sl_log_set_file(log_path);
}

int sl_log_parse_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error",
                                        "none"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void sl_log_write(int level, const char *subsys, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int w;

    if (level < SL_DEBUG || level > SL_ERROR)
        level = SL_ERROR;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s ",
                 ts.tv_nsec / 1000000, level_names[level], subsys);
    if (w > 0)
        n += (size_t)w;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w > 0)
        n +=
            (size_t)w < sizeof(line) - n - 1 ? (size_t)w : sizeof(line) - n - 2;
    /* One line per event: fold embedded newlines. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (log_json) {
        /* the text line's parts, as one JSON object (message escaped) */
        char js[2048 * 6 + 160];
        size_t k = 0, msg_at = 0, sp = 0;
        for (size_t i = 0; i < n && sp < 3; i++)
            if (line[i] == ' ' && ++sp == 3)
                msg_at = i + 1;
        line[n] = 0;
        k = (size_t)snprintf(js, sizeof(js),
                             "{\"ts\":\"%.24s\",\"level\":\"%s\","
                             "\"subsys\":\"",
                             line, level_names[level]);
        for (const char *p = subsys; *p && k < 200; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                js[k++] = *p;
        k += (size_t)snprintf(js + k, sizeof(js) - k, "\",\"msg\":\"");
        for (size_t i = msg_at; i < n; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c == '"' || c == '\\') {
                js[k++] = '\\';
                js[k++] = (char)c;
            } else if (c < 0x20 || c == 0x7f) {
                k += (size_t)snprintf(js + k, sizeof(js) - k, "\\u%04x", c);
            } else {
                js[k++] = (char)c;
            }
        }
        k += (size_t)snprintf(js + k, sizeof(js) - k, "\"}\n");
        if (write(log_fd, js, k) < 0) {
            /* nowhere left to report it */
        }
        return;
    }
    line[n++] = '\n';
    if (write(log_fd, line, n) < 0) {
        /* nowhere left to report it */
    }
}
