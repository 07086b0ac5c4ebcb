/*
 * stomp_frame.h - STOMP 1.0/1.1/1.2 frame parser and encoder.
 *
 * Pure code: bytes in, frames out (and frames in, bytes out). No sockets,
 * no libevent, so it is unit-tested and fuzzable on its own
 * (tests/unit/test_stomp_frame.c).
 *
 * Frame grammar accepted (STOMP 1.2 section "Augmented BNF", made lenient
 * where real clients differ):
 *
 *   frame   = command EOL *(header EOL) EOL body NUL *EOL
 *   EOL     = [CR] LF          (CR LF accepted in every version)
 *   header  = name ":" value   (name up to the first ':')
 *
 * - Between frames any number of EOLs (heart-beats) and stray NULs are
 *   skipped.
 * - content-length (the first one) is authoritative: the body is exactly
 *   that many bytes, may contain NULs, and must be followed by a NUL.
 *   Without it the body runs to the first NUL.
 * - Header escaping (\r \n \c \\, \r in 1.2 only) is decoded for versions
 *   1.1 and 1.2 except in CONNECT, STOMP and CONNECTED frames; an undefined
 *   escape is a fatal error, as the specification requires. 1.0 has none.
 * - Repeated headers are all kept in order; sl_stomp_frame_get() returns
 *   the first, which is the one that counts.
 * - Limits (frame size, header count, one header line's length) are checked
 *   as bytes arrive: a violation is reported at once, naming the limit,
 *   without waiting for the rest of the frame or for the body. A
 *   content-length larger than the frame limit fails when the blank line
 *   after the headers arrives.
 *
 * Ownership: the parser owns one growing buffer (bounded by the frame
 * limit); a returned frame borrows from it until the next call on the
 * parser. Header names, values and the body are NUL-terminated in that
 * buffer (body_len excludes the terminator), so they can be used as C
 * strings when they contain no NUL.
 */
#ifndef SL_STOMP_FRAME_H
#define SL_STOMP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/rd.h"

enum sl_stomp_cmd {
    SL_STOMP_CMD_NONE = 0,
    /* client frames */
    SL_STOMP_CONNECT,
    SL_STOMP_STOMP,
    SL_STOMP_SEND,
    SL_STOMP_SUBSCRIBE,
    SL_STOMP_UNSUBSCRIBE,
    SL_STOMP_ACK,
    SL_STOMP_NACK,
    SL_STOMP_BEGIN,
    SL_STOMP_COMMIT,
    SL_STOMP_ABORT,
    SL_STOMP_DISCONNECT,
    /* server frames */
    SL_STOMP_CONNECTED,
    SL_STOMP_MESSAGE,
    SL_STOMP_RECEIPT,
    SL_STOMP_ERROR,
    SL_STOMP_CMD__END
};

/* Protocol versions, as negotiated. */
enum sl_stomp_ver { SL_STOMP_V10 = 10, SL_STOMP_V11 = 11, SL_STOMP_V12 = 12 };

/* "CONNECT", ... ; NULL for an out-of-range value. */
const char *sl_stomp_cmd_name(int cmd);
/* The command for a name of len bytes, or SL_STOMP_CMD_NONE. */
int sl_stomp_cmd_parse(const char *s, size_t len);

/* Defaults follow ActiveMQ's (maxHeaders 1000, maxHeaderLength 10 KiB). */
#define SL_STOMP_DEFAULT_MAX_FRAME (16u * 1024 * 1024)
#define SL_STOMP_DEFAULT_MAX_HEADERS 1000u
#define SL_STOMP_DEFAULT_MAX_HEADER_LEN 10240u

typedef struct sl_stomp_limits {
    size_t max_frame;      /* command + headers + body bytes */
    uint32_t max_headers;  /* header lines per frame */
    size_t max_header_len; /* bytes of one header (or command) line */
} sl_stomp_limits;

typedef struct sl_stomp_header {
    const char *name; /* borrowed from the parser, NUL-terminated */
    size_t name_len;
    const char *value; /* decoded (unescaped), NUL-terminated */
    size_t value_len;
} sl_stomp_header;

typedef struct sl_stomp_frame {
    int cmd;                  /* enum sl_stomp_cmd */
    sl_stomp_header *headers; /* in arrival order; borrowed */
    uint32_t header_count;
    const uint8_t *body; /* borrowed; body[body_len] == 0 */
    size_t body_len;
    int has_content_length;
} sl_stomp_frame;

/* First header called name (n bytes), or NULL. */
const sl_stomp_header *sl_stomp_frame_get_n(const sl_stomp_frame *f,
                                            const char *name, size_t n);
/* First header called name, or NULL. Inline: a literal name's length is
 * known when compiling (a frame handler asks for several). */
static inline const sl_stomp_header *sl_stomp_frame_get(const sl_stomp_frame *f,
                                                        const char *name)
{
    return sl_stomp_frame_get_n(f, name, __builtin_strlen(name));
}
/* Value of the first header called name, or NULL. */
static inline const char *sl_stomp_frame_value(const sl_stomp_frame *f,
                                               const char *name)
{
    const sl_stomp_header *h = sl_stomp_frame_get(f, name);
    return h ? h->value : NULL;
}

/* What the limit violations are called in errors (and in the ERROR frame's
 * message header): "frame too large", ... Each error string names the
 * limit and its value, e.g.
 *   "header count exceeds the limit of 1000 (stomp-max-headers)". */
enum sl_stomp_perr {
    SL_STOMP_PERR_NONE = 0,
    SL_STOMP_PERR_FRAME_TOO_LARGE,
    SL_STOMP_PERR_TOO_MANY_HEADERS,
    SL_STOMP_PERR_HEADER_TOO_LONG,
    SL_STOMP_PERR_UNKNOWN_COMMAND,
    SL_STOMP_PERR_MALFORMED,
};

typedef struct sl_stomp_hoff {
    uint32_t name_off, name_len, value_off, value_len;
} sl_stomp_hoff;

typedef struct sl_stomp_parser {
    sl_stomp_limits lim;
    int version; /* escaping of frames parsed from now on */
    int state;
    uint8_t *buf; /* owned: the frame being assembled */
    size_t len, cap;
    size_t line_start;   /* offset of the current line in buf */
    int cmd;             /* of the frame being assembled */
    sl_stomp_hoff *hoff; /* owned */
    uint32_t nhdr, hcap;
    size_t body_start;
    size_t fsize;           /* raw bytes of this frame so far */
    int64_t content_length; /* -1 when absent */
    sl_stomp_header *hout;  /* owned: handed out with the frame */
    uint32_t hout_cap;
    int perr; /* enum sl_stomp_perr, sticky */
    char errstr[256];
    int no_whole; /* tests: no whole-frame path (stomp_frame.c) */
} sl_stomp_parser;

/* lim may be NULL (defaults). version starts at 1.0 (no escaping); the
 * session raises it after CONNECTED. */
void sl_stomp_parser_init(sl_stomp_parser *p, const sl_stomp_limits *lim);
void sl_stomp_parser_fini(sl_stomp_parser *p);
void sl_stomp_parser_set_version(sl_stomp_parser *p, int version);

enum sl_stomp_parse_rc {
    SL_STOMP_NEED_MORE = 0, /* all bytes consumed, no frame yet */
    SL_STOMP_FRAME = 1,     /* *f is a frame; *used bytes were consumed */
    SL_STOMP_PERROR = -1,   /* p->perr / p->errstr say why; sticky */
};

/*
 * Feed len bytes. Returns SL_STOMP_FRAME when a frame completed after
 * consuming *used bytes (call again with the rest), SL_STOMP_NEED_MORE when
 * all len bytes were consumed (*used = len), SL_STOMP_PERROR on a protocol
 * error (the connection must be closed after an ERROR frame; *used is the
 * number of bytes consumed up to the error). *f borrows from p until the
 * next call on p. @thread loop (any, as long as one thread owns p)
 */
int sl_stomp_parse(sl_stomp_parser *p, const uint8_t *data, size_t len,
                   size_t *used, sl_stomp_frame *f);

/* ---- encoding ------------------------------------------------------- */

typedef struct sl_stomp_enc {
    sl_wb *wb;   /* borrowed */
    int version; /* escaping rule */
    int escape;  /* 1 when headers are escaped in this frame */
} sl_stomp_enc;

/* Start a frame: writes "COMMAND\n". Headers are escaped for versions 1.1
 * and 1.2 unless cmd is CONNECT, STOMP or CONNECTED. In 1.0 (no escaping)
 * CR and LF in values, and ':' in names, are replaced by ' ' and '_' so a
 * header can never break the framing. */
void sl_stomp_enc_begin(sl_stomp_enc *e, sl_wb *wb, int version, int cmd);
void sl_stomp_enc_header(sl_stomp_enc *e, const char *name, size_t name_len,
                         const char *value, size_t value_len);
void sl_stomp_enc_header_s(sl_stomp_enc *e, const char *name,
                           const char *value);
void sl_stomp_enc_header_u(sl_stomp_enc *e, const char *name, uint64_t v);
/* Decimal digits of v into b (at least 21 bytes), NUL-terminated; returns
 * the number of digits. */
size_t sl_u64_dec(char *b, uint64_t v);
/* Write the blank line, the body (may be NULL when len is 0) and the NUL.
 * The caller adds content-length when it wants one. */
void sl_stomp_enc_end(sl_stomp_enc *e, const void *body, size_t len);

#endif
