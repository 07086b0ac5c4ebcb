/*
 * log.h - the one logging macro.
 *
 *   sl_log(SL_WARN, "conn", "peer %s: frame of %u bytes exceeds max", ...);
 *
 * The level is checked before any formatting. Output is one line per event:
 *   2026-11-25T11:50:02.123Z WARN conn peer 127.0.0.1:5555: ...
 * Name the peer, topic, partition and offset involved in the message.
 * @thread any (each line is written with one write(2)).
 */
#ifndef SL_LOG_H
#define SL_LOG_H

enum sl_log_level {
    SL_DEBUG = 0,
    SL_INFO = 1,
    SL_WARN = 2,
    SL_ERROR = 3,
    SL_NONE = 4
};

extern int sl_log_level;

/* on = 1: one JSON object per line instead of text:
 *   {"ts":"2026-11-25T11:50:02.123Z","level":"WARN","subsys":"conn",
 *    "msg":"peer 127.0.0.1:5555: ..."}
 * Set at start-up (before other threads log). */
void sl_log_set_json(int on);

void sl_log_write(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parse "debug|info|warn|error|none"; returns -1 if unknown. */
int sl_log_parse_level(const char *s);
/* Where lines go (default: 2 = stderr). */
void sl_log_set_fd(int fd);
/* The descriptor lines go to (for a writer that must not call sl_log). */
int sl_log_fd(void);
/* Append lines to the file at path (created 0644), remembered for
 * sl_log_reopen. 0 or -1 (errno; lines keep going where they went). */
int sl_log_set_file(const char *path);
/* Reopen the file of sl_log_set_file (after logrotate moved it; SIGHUP).
 * 0, or -1 when lines go to a descriptor (stderr) rather than a file. */
int sl_log_reopen(void);

#define sl_log(level, subsys, ...)                                             \
    do {                                                                       \
        if ((level) >= sl_log_level)                                           \
            sl_log_write((level), (subsys), __VA_ARGS__);                      \
    } while (0)

#endif
