/*
 * stomp_frame.c - STOMP frame parser and encoder (see stomp_frame.h).
 *
 * The parser is a byte-driven state machine over one buffer:
 *
 *   IDLE  --first byte that is not LF/CR/NUL-->  LINE (command line)
 *   LINE  --LF--> next header line, or, on an empty line, the body:
 *           BODY_LEN (content-length n: copy n bytes, then BODY_NUL_END)
 *           BODY_NUL (no content-length: copy up to the first NUL)
 *   DONE  the frame is handed out; the next call resets to IDLE.
 *   ERROR sticky.
 *
 * Lines are copied without their LF; a trailing CR is dropped; a NUL is
 * written where the LF was, so names and values are C strings in place.
 * Headers are recorded as offsets (the buffer may move while it grows) and
 * turned into pointers when the frame is complete. Every byte counts
 * against the frame limit as it arrives, every line byte against the line
 * limit, so an oversized frame is refused before its body is read.
 *
 * A frame that is whole in the bytes given and in the plain form (LF line
 * ends, ASCII headers without escapes, within the limits) is taken in one
 * pass and one copy instead (whole_frame); anything else is left to the
 * state machine, which then decides as if that path did not exist
 * (tests/unit/test_stomp_frame.c compares the two).
 */
#include "broker/stomp_frame.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_IDLE = 0,
    ST_LINE,
    ST_BODY_LEN,
    ST_BODY_NUL_END,
    ST_BODY_NUL,
    ST_DONE,
    ST_ERROR,
};

static const char *const cmd_names[SL_STOMP_CMD__END] = {
    [SL_STOMP_CMD_NONE] = NULL,
    [SL_STOMP_CONNECT] = "CONNECT",
    [SL_STOMP_STOMP] = "STOMP",
    [SL_STOMP_SEND] = "SEND",
    [SL_STOMP_SUBSCRIBE] = "SUBSCRIBE",
    [SL_STOMP_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [SL_STOMP_ACK] = "ACK",
    [SL_STOMP_NACK] = "NACK",
    [SL_STOMP_BEGIN] = "BEGIN",
    [SL_STOMP_COMMIT] = "COMMIT",
    [SL_STOMP_ABORT] = "ABORT",
    [SL_STOMP_DISCONNECT] = "DISCONNECT",
    [SL_STOMP_CONNECTED] = "CONNECTED",
    [SL_STOMP_MESSAGE] = "MESSAGE",
    [SL_STOMP_RECEIPT] = "RECEIPT",
    [SL_STOMP_ERROR] = "ERROR",
};

const char *sl_stomp_cmd_name(int cmd)
{
    if (cmd <= SL_STOMP_CMD_NONE || cmd >= SL_STOMP_CMD__END)
        return NULL;
    return cmd_names[cmd];
}

int sl_stomp_cmd_parse(const char *s, size_t len)
{
    int i;
    /* by first byte and length before comparing: once per frame */
    for (i = SL_STOMP_CMD_NONE + 1; i < SL_STOMP_CMD__END; i++) {
        if (len > 0 && cmd_names[i][0] == s[0] && strlen(cmd_names[i]) == len &&
            memcmp(cmd_names[i], s, len) == 0)
            return i;
    }
    return SL_STOMP_CMD_NONE;
}

const sl_stomp_header *sl_stomp_frame_get_n(const sl_stomp_frame *f,
                                            const char *name, size_t n)
{
    uint32_t i;
    for (i = 0; i < f->header_count; i++) {
        if (f->headers[i].name_len == n &&
            memcmp(f->headers[i].name, name, n) == 0)
            return &f->headers[i];
    }
    return NULL;
}

void sl_stomp_parser_init(sl_stomp_parser *p, const sl_stomp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    if (lim) {
        p->lim = *lim;
    } else {
        p->lim.max_frame = SL_STOMP_DEFAULT_MAX_FRAME;
        p->lim.max_headers = SL_STOMP_DEFAULT_MAX_HEADERS;
        p->lim.max_header_len = SL_STOMP_DEFAULT_MAX_HEADER_LEN;
    }
    p->version = SL_STOMP_V10;
    p->state = ST_IDLE;
    p->content_length = -1;
}

void sl_stomp_parser_fini(sl_stomp_parser *p)
{
    free(p->buf);
    free(p->hoff);
    free(p->hout);
    p->buf = NULL;
    p->hoff = NULL;
    p->hout = NULL;
}

void sl_stomp_parser_set_version(sl_stomp_parser *p, int version)
{
    p->version = version;
}

/* A printable, bounded sample of untrusted bytes for an error message. */
static void sample(char *dst, size_t dstsz, const uint8_t *s, size_t n)
{
    size_t i, o = 0;
    for (i = 0; i < n && o + 5 < dstsz; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'')
            dst[o++] = (char)s[i];
        else
            o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", s[i]);
    }
    if (i < n && o + 4 < dstsz) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o < dstsz ? o : dstsz - 1] = 0;
}

static int fail(sl_stomp_parser *p, int perr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(sl_stomp_parser *p, int perr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
    va_end(ap);
    p->perr = perr;
    p->state = ST_ERROR;
    return SL_STOMP_PERROR;
}

static int fail_frame_size(sl_stomp_parser *p)
{
    return fail(p, SL_STOMP_PERR_FRAME_TOO_LARGE,
                "frame exceeds the size limit of %zu bytes "
                "(stomp-max-frame)",
                p->lim.max_frame);
}

static int fail_line_len(sl_stomp_parser *p)
{
    return fail(p, SL_STOMP_PERR_HEADER_TOO_LONG,
                "header line exceeds the length limit of %zu bytes "
                "(stomp-max-header-length)",
                p->lim.max_header_len);
}

/* Make room for n more bytes in buf. Returns 0 or -1 (out of memory). */
static int reserve(sl_stomp_parser *p, size_t n)
{
    size_t need = p->len + n, cap;
    uint8_t *nb;
    if (need <= p->cap)
        return 0;
    cap = p->cap ? p->cap : 256;
    while (cap < need)
        cap *= 2;
    nb = realloc(p->buf, cap);
    if (!nb)
        return -1;
    p->buf = nb;
    p->cap = cap;
    return 0;
}

static void reset_frame(sl_stomp_parser *p)
{
    p->len = 0;
    p->line_start = 0;
    p->cmd = SL_STOMP_CMD_NONE;
    p->nhdr = 0;
    p->body_start = 0;
    p->content_length = -1;
    p->state = ST_IDLE;
}

/* Decode escapes in place over [off, off+len). Returns the decoded length
 * or -1 on an undefined escape (p's error set). */
static int64_t unescape(sl_stomp_parser *p, size_t off, size_t len)
{
    uint8_t *s = p->buf + off;
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (i + 1 >= len) {
            fail(p, SL_STOMP_PERR_MALFORMED,
                 "invalid escape: a header ends with a backslash");
            return -1;
        }
        i++;
        if (s[i] == 'n') {
            s[o++] = '\n';
        } else if (s[i] == 'c') {
            s[o++] = ':';
        } else if (s[i] == '\\') {
            s[o++] = '\\';
        } else if (s[i] == 'r' && p->version >= SL_STOMP_V12) {
            s[o++] = '\r';
        } else {
            /* \r is undefined in 1.1, like any other escape */
            char smp[16];
            sample(smp, sizeof(smp), &s[i], 1);
            fail(p, SL_STOMP_PERR_MALFORMED,
                 "invalid escape sequence '\\%s' in a header (STOMP %d.%d)",
                 smp, p->version / 10, p->version % 10);
            return -1;
        }
    }
    return (int64_t)o;
}

/* Offset of the first byte that breaks UTF-8 in s[0, n) (overlong forms,
 * surrogates and code points past U+10FFFF included), or -1 if valid. */
static int64_t utf8_bad(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return (int64_t)i;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return (int64_t)i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (int64_t)i;
        i += k + 1;
    }
    return -1;
}

/* STOMP 1.1 and 1.2: "Only the UTF-8 encoding is supported for frame
 * headers" -- refuse anything else, naming the header and the byte (issue
 * 18, finding 13). 1.0 did not say, and is left alone. */
static int check_utf8(sl_stomp_parser *p, size_t off, size_t len,
                      const char *what)
{
    int64_t bad;
    char smp[64];
    if (p->version < SL_STOMP_V11)
        return 0;
    bad = utf8_bad(p->buf + off, len);
    if (bad < 0)
        return 0;
    sample(smp, sizeof(smp), p->buf + off, len);
    return fail(p, SL_STOMP_PERR_MALFORMED,
                "header %s '%s' is not valid UTF-8 (byte 0x%02x at %lld); "
                "STOMP %d.%d headers must be UTF-8",
                what, smp, p->buf[off + (size_t)bad], (long long)bad,
                p->version / 10, p->version % 10);
}

static int escaping(const sl_stomp_parser *p)
{
    return p->version >= SL_STOMP_V11 && p->cmd != SL_STOMP_CONNECT &&
           p->cmd != SL_STOMP_STOMP && p->cmd != SL_STOMP_CONNECTED;
}

static int parse_content_length(sl_stomp_parser *p, const char *v, size_t vlen,
                                int64_t *out)
{
    size_t i;
    uint64_t n = 0;
    char smp[64];
    if (vlen == 0 || vlen > 19)
        goto bad;
    for (i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            goto bad;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = (int64_t)n;
    return 0;
bad:
    sample(smp, sizeof(smp), (const uint8_t *)v, vlen);
    return fail(p, SL_STOMP_PERR_MALFORMED, "invalid content-length '%s'", smp);
}

/* A complete line sits at [line_start, len) (LF not copied). */
static int end_of_line(sl_stomp_parser *p)
{
    size_t ls = p->line_start, ll = p->len - ls;
    uint8_t *line = p->buf + ls;
    if (ll > 0 && line[ll - 1] == '\r') {
        ll--;
        p->len--;
    }
    if (ll > p->lim.max_header_len)
        return fail_line_len(p);
    if (p->cmd == SL_STOMP_CMD_NONE) {
        char smp[64];
        p->cmd = sl_stomp_cmd_parse((const char *)line, ll);
        if (p->cmd == SL_STOMP_CMD_NONE) {
            sample(smp, sizeof(smp), line, ll);
            return fail(p, SL_STOMP_PERR_UNKNOWN_COMMAND,
                        "unknown command '%s'", smp);
        }
        p->len = ls; /* the command is not kept in buf */
        p->line_start = p->len;
        return 0;
    }
    if (ll == 0) {
        /* blank line: headers done */
        uint32_t i;
        p->content_length = -1;
        for (i = 0; i < p->nhdr; i++) {
            sl_stomp_hoff *h = &p->hoff[i];
            if (h->name_len == 14 &&
                memcmp(p->buf + h->name_off, "content-length", 14) == 0) {
                int64_t n = 0;
                if (parse_content_length(p, (const char *)p->buf + h->value_off,
                                         h->value_len, &n) != 0)
                    return SL_STOMP_PERROR;
                p->content_length = n;
                break;
            }
        }
        p->body_start = p->len;
        if (p->content_length >= 0) {
            /* bytes so far + body + NUL must fit the limit */
            if ((uint64_t)p->content_length + 1 > p->lim.max_frame ||
                p->fsize + (size_t)p->content_length + 1 > p->lim.max_frame)
                return fail_frame_size(p);
            if (reserve(p, (size_t)p->content_length + 1) != 0)
                return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
            p->state = ST_BODY_LEN;
        } else {
            p->state = ST_BODY_NUL;
        }
        return 0;
    }
    {
        uint8_t *colon = memchr(line, ':', ll);
        sl_stomp_hoff h;
        int64_t nl, vl;
        if (!colon) {
            char smp[64];
            sample(smp, sizeof(smp), line, ll);
            return fail(p, SL_STOMP_PERR_MALFORMED,
                        "malformed header line (no ':'): '%s'", smp);
        }
        if (p->nhdr >= p->lim.max_headers)
            return fail(p, SL_STOMP_PERR_TOO_MANY_HEADERS,
                        "header count exceeds the limit of %u "
                        "(stomp-max-headers)",
                        p->lim.max_headers);
        h.name_off = (uint32_t)ls;
        nl = colon - line;
        h.value_off = (uint32_t)(ls + (size_t)nl + 1);
        vl = (int64_t)ll - nl - 1;
        if (escaping(p)) {
            nl = unescape(p, h.name_off, (size_t)nl);
            if (nl < 0)
                return SL_STOMP_PERROR;
            vl = unescape(p, h.value_off, (size_t)vl);
            if (vl < 0)
                return SL_STOMP_PERROR;
        }
        if (check_utf8(p, h.name_off, (size_t)nl, "name") != 0 ||
            check_utf8(p, h.value_off, (size_t)vl, "value") != 0)
            return SL_STOMP_PERROR;
        h.name_len = (uint32_t)nl;
        h.value_len = (uint32_t)vl;
        p->buf[h.name_off + h.name_len] = 0;
        /* the value ends where the line ended (+1 for the NUL we add) */
        if (p->nhdr == p->hcap) {
            uint32_t nc = p->hcap ? p->hcap * 2 : 16;
            sl_stomp_hoff *n = realloc(p->hoff, nc * sizeof(*n));
            if (!n)
                return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
            p->hoff = n;
            p->hcap = nc;
        }
        p->hoff[p->nhdr++] = h;
        p->len = ls + ll;
        if (reserve(p, 1) != 0)
            return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
        p->buf[h.value_off + h.value_len] = 0;
        p->buf[p->len++] = 0;
        p->line_start = p->len;
    }
    return 0;
}

static int finish(sl_stomp_parser *p, sl_stomp_frame *f)
{
    uint32_t i;
    if (p->nhdr > p->hout_cap) {
        sl_stomp_header *n = realloc(p->hout, p->nhdr * sizeof(*n));
        if (!n)
            return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
        p->hout = n;
        p->hout_cap = p->nhdr;
    }
    for (i = 0; i < p->nhdr; i++) {
        p->hout[i].name = (const char *)p->buf + p->hoff[i].name_off;
        p->hout[i].name_len = p->hoff[i].name_len;
        p->hout[i].value = (const char *)p->buf + p->hoff[i].value_off;
        p->hout[i].value_len = p->hoff[i].value_len;
    }
    p->buf[p->len] = 0; /* reserved by the callers */
    f->cmd = p->cmd;
    f->headers = p->hout;
    f->header_count = p->nhdr;
    f->body = p->buf + p->body_start;
    f->body_len = p->len - p->body_start;
    f->has_content_length = p->content_length >= 0;
    p->state = ST_DONE;
    return SL_STOMP_FRAME;
}

/* Bytes the whole-frame path (whole_frame) leaves to the state machine
 * when they appear before a frame's body: CR, NUL, a backslash (escapes),
 * anything past ASCII (UTF-8 checks). LF and ':' split lines. */
enum { WF_PLAIN = 0, WF_LF, WF_COLON, WF_SLOW };
static const uint8_t wf_class[128] = {
    [0] = WF_SLOW,    ['\n'] = WF_LF,   ['\r'] = WF_SLOW,
    [':'] = WF_COLON, ['\\'] = WF_SLOW,
};

/*
 * The whole-frame path: a frame that starts at d and is whole in d[0..n),
 * in the plain form almost every client writes (LF line ends, no escapes,
 * ASCII headers, within every limit), is taken in one pass over its
 * header block and one copy, instead of line by line (two memchr calls, a
 * copy, an unescape and two UTF-8 checks a line: most of what a relayed
 * or queue consumer's one-line ACK costs to parse). Anything else -- a
 * CR, an escape, a byte past ASCII, a line without ':', a limit reached,
 * an unknown command, a bad content-length, a frame not whole yet --
 * returns 0 having changed nothing, and the state machine takes the same
 * bytes, so it alone decides the errors and their messages. 1: *f is the
 * frame, *used its bytes (through the NUL).
 */
static int whole_frame(sl_stomp_parser *p, const uint8_t *d, size_t n,
                       size_t *used, sl_stomp_frame *f)
{
    size_t k, ls = 0, colon = 0, hdr_end = 0, body_len, total;
    size_t lim = n < p->lim.max_frame ? n : p->lim.max_frame;
    uint32_t nh = 0, i;
    int64_t cl = -1;
    int cmd = SL_STOMP_CMD_NONE;
    for (k = 0; k < lim; k++) {
        uint8_t c = d[k] < 0x80 ? wf_class[d[k]] : WF_SLOW;
        if (c == WF_PLAIN)
            continue;
        if (c == WF_COLON) {
            if (!colon)
                colon = k + 1; /* the first ':' of the line, + 1 */
            continue;
        }
        if (c == WF_SLOW)
            return 0;
        /* LF: the line d[ls..k) */
        if (k - ls > p->lim.max_header_len)
            return 0;
        if (cmd == SL_STOMP_CMD_NONE) {
            cmd = sl_stomp_cmd_parse((const char *)d, k);
            if (cmd == SL_STOMP_CMD_NONE)
                return 0;
        } else if (k == ls) {
            hdr_end = k + 1; /* the blank line */
            break;
        } else {
            sl_stomp_hoff *h;
            if (!colon || nh >= p->lim.max_headers)
                return 0;
            if (nh == p->hcap) {
                uint32_t nc = p->hcap ? p->hcap * 2 : 16;
                sl_stomp_hoff *x = realloc(p->hoff, nc * sizeof(*x));
                if (!x)
                    return 0;
                p->hoff = x;
                p->hcap = nc;
            }
            h = &p->hoff[nh++];
            h->name_off = (uint32_t)ls;
            h->name_len = (uint32_t)(colon - 1 - ls);
            h->value_off = (uint32_t)colon;
            h->value_len = (uint32_t)(k - colon);
        }
        ls = k + 1;
        colon = 0;
    }
    if (!hdr_end)
        return 0; /* not whole, past the frame limit, or not plain */
    for (i = 0; i < nh; i++) {
        const sl_stomp_hoff *h = &p->hoff[i];
        if (h->name_len == 14 &&
            memcmp(d + h->name_off, "content-length", 14) == 0) {
            size_t j;
            if (h->value_len == 0 || h->value_len > 18)
                return 0;
            cl = 0;
            for (j = 0; j < h->value_len; j++) {
                uint8_t c = d[h->value_off + j];
                if (c < '0' || c > '9')
                    return 0;
                cl = cl * 10 + (c - '0');
            }
            break;
        }
    }
    if (cl >= 0) {
        if ((uint64_t)cl >= n - hdr_end || d[hdr_end + (size_t)cl] != 0)
            return 0;
        body_len = (size_t)cl;
    } else {
        const uint8_t *z = memchr(d + hdr_end, 0, n - hdr_end);
        if (!z)
            return 0;
        body_len = (size_t)(z - (d + hdr_end));
    }
    total = hdr_end + body_len + 1;
    if (total > p->lim.max_frame || reserve(p, total) != 0)
        return 0;
    if (nh > p->hout_cap) { /* so that finish cannot fail */
        sl_stomp_header *x = realloc(p->hout, nh * sizeof(*x));
        if (!x)
            return 0;
        p->hout = x;
        p->hout_cap = nh;
    }
    memcpy(p->buf, d, total);
    /* names and values as C strings in place: the ':' and the LF go */
    for (i = 0; i < nh; i++) {
        const sl_stomp_hoff *h = &p->hoff[i];
        p->buf[h->name_off + h->name_len] = 0;
        p->buf[h->value_off + h->value_len] = 0;
    }
    p->cmd = cmd;
    p->nhdr = nh;
    p->content_length = cl;
    p->body_start = hdr_end;
    p->len = hdr_end + body_len; /* the frame's NUL ends the body */
    p->fsize = total;
    *used = total;
    return finish(p, f);
}

int sl_stomp_parse(sl_stomp_parser *p, const uint8_t *data, size_t len,
                   size_t *used, sl_stomp_frame *f)
{
    size_t i = 0;
    int rc;

    if (p->state == ST_ERROR) {
        *used = 0;
        return SL_STOMP_PERROR;
    }
    if (p->state == ST_DONE)
        reset_frame(p);

    while (i < len) {
        switch (p->state) {
        case ST_IDLE:
            if (data[i] == '\n' || data[i] == '\r' || data[i] == 0) {
                i++; /* heart-beat or padding between frames */
                break;
            }
            p->fsize = 0;
            if (p->len == 0 && !p->no_whole &&
                whole_frame(p, data + i, len - i, used, f) == SL_STOMP_FRAME) {
                *used += i;
                return SL_STOMP_FRAME;
            }
            p->state = ST_LINE;
            break;
        case ST_LINE: {
            const uint8_t *nlp = memchr(data + i, '\n', len - i);
            size_t n = nlp ? (size_t)(nlp - (data + i)) : len - i;
            size_t line_len = p->len - p->line_start + n;
            /* one byte of slack for the CR of a CR LF; end_of_line
             * checks the exact length */
            if (line_len > p->lim.max_header_len + 1) {
                *used = i;
                return fail_line_len(p);
            }
            if (p->fsize + n + (nlp ? 1 : 0) > p->lim.max_frame) {
                *used = i;
                return fail_frame_size(p);
            }
            if (memchr(data + i, 0, n)) {
                *used = i;
                return fail(p, SL_STOMP_PERR_MALFORMED,
                            "NUL byte in a command or header line");
            }
            if (reserve(p, n + 1) != 0) {
                *used = i;
                return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
            }
            memcpy(p->buf + p->len, data + i, n);
            p->len += n;
            p->fsize += n;
            i += n;
            if (nlp) {
                i++;
                p->fsize++;
                if (end_of_line(p) != 0) {
                    *used = i;
                    return SL_STOMP_PERROR;
                }
            }
            break;
        }
        case ST_BODY_LEN: {
            size_t have = p->len - p->body_start;
            size_t want = (size_t)p->content_length - have;
            size_t n = len - i < want ? len - i : want;
            memcpy(p->buf + p->len, data + i, n); /* reserved */
            p->len += n;
            p->fsize += n;
            i += n;
            if (p->len - p->body_start == (size_t)p->content_length)
                p->state = ST_BODY_NUL_END;
            break;
        }
        case ST_BODY_NUL_END:
            if (data[i] != 0) {
                *used = i;
                return fail(p, SL_STOMP_PERR_MALFORMED,
                            "frame body is not terminated by a NUL after "
                            "its content-length of %" PRId64 " bytes",
                            p->content_length);
            }
            i++;
            p->fsize++;
            *used = i;
            return finish(p, f);
        case ST_BODY_NUL: {
            const uint8_t *z = memchr(data + i, 0, len - i);
            size_t n = z ? (size_t)(z - (data + i)) : len - i;
            if (p->fsize + n + 1 > p->lim.max_frame) {
                *used = i;
                return fail_frame_size(p);
            }
            if (reserve(p, n + 1) != 0) {
                *used = i;
                return fail(p, SL_STOMP_PERR_MALFORMED, "out of memory");
            }
            memcpy(p->buf + p->len, data + i, n);
            p->len += n;
            p->fsize += n;
            i += n;
            if (z) {
                i++;
                p->fsize++;
                *used = i;
                return finish(p, f);
            }
            break;
        }
        default:
            *used = i;
            return SL_STOMP_PERROR;
        }
    }
    rc = SL_STOMP_NEED_MORE;
    *used = i;
    return rc;
}

/* ---- encoding ------------------------------------------------------- */

void sl_stomp_enc_begin(sl_stomp_enc *e, sl_wb *wb, int version, int cmd)
{
    const char *name = sl_stomp_cmd_name(cmd);
    e->wb = wb;
    e->version = version;
    e->escape = version >= SL_STOMP_V11 && cmd != SL_STOMP_CONNECT &&
                cmd != SL_STOMP_STOMP && cmd != SL_STOMP_CONNECTED;
    sl_wb_put(wb, name, strlen(name));
    sl_wb_put(wb, "\n", 1);
}

/* Bytes that may need replacing in a header: NUL, LF, CR, ':' and '\\'. */
static int plain(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= '\r' || c == ':' || c == '\\')
            return 0;
    }
    return 1;
}

static void put_escaped(sl_stomp_enc *e, const char *s, size_t n, int is_name)
{
    size_t i, run = 0;
    if (plain(s, n)) { /* the common case: one copy */
        sl_wb_put(e->wb, s, n);
        return;
    }
    for (i = 0; i < n; i++) {
        const char *rep = NULL;
        char c = s[i];
        if (c == 0) {
            rep = " "; /* a NUL would end the frame early */
        } else if (e->escape) {
            if (c == '\\')
                rep = "\\\\";
            else if (c == '\n')
                rep = "\\n";
            else if (c == ':')
                rep = "\\c";
            else if (c == '\r' && e->version >= SL_STOMP_V12)
                rep = "\\r";
            else if (c == '\r')
                rep = " "; /* 1.1 has no escape for CR */
        } else {
            if (c == '\n' || c == '\r')
                rep = " ";
            else if (c == ':' && is_name)
                rep = "_";
        }
        if (!rep)
            continue;
        sl_wb_put(e->wb, s + run, i - run);
        sl_wb_put(e->wb, rep, strlen(rep));
        run = i + 1;
    }
    sl_wb_put(e->wb, s + run, n - run);
}

void sl_stomp_enc_header(sl_stomp_enc *e, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
    if (plain(name, name_len) && plain(value, value_len)) {
        /* the common case (every MESSAGE has a dozen): one reservation */
        uint8_t *d = sl_wb_reserve(e->wb, name_len + value_len + 2);
        if (!d)
            return;
        memcpy(d, name, name_len);
        d[name_len] = ':';
        memcpy(d + name_len + 1, value, value_len);
        d[name_len + 1 + value_len] = '\n';
        e->wb->len += name_len + value_len + 2;
        return;
    }
    put_escaped(e, name, name_len, 1);
    sl_wb_put(e->wb, ":", 1);
    put_escaped(e, value, value_len, 0);
    sl_wb_put(e->wb, "\n", 1);
}

void sl_stomp_enc_header_s(sl_stomp_enc *e, const char *name, const char *value)
{
    sl_stomp_enc_header(e, name, strlen(name), value, strlen(value));
}

size_t sl_u64_dec(char *b, uint64_t v)
{
    char t[20];
    size_t n = 0, i;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        b[i] = t[n - 1 - i];
    b[n] = 0;
    return n;
}

void sl_stomp_enc_header_u(sl_stomp_enc *e, const char *name, uint64_t v)
{
    char b[24];
    size_t n = sl_u64_dec(b, v);
    sl_stomp_enc_header(e, name, strlen(name), b, n);
}

void sl_stomp_enc_end(sl_stomp_enc *e, const void *body, size_t len)
{
    sl_wb_put(e->wb, "\n", 1);
    if (len)
        sl_wb_put(e->wb, body, len);
    sl_wb_u8(e->wb, 0);
}
