/*
 * json.c - the JSON writer of json.h.
 */
#include "broker/json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void sl_jw_init(sl_jw *j, struct evbuffer *b)
{
    memset(j, 0, sizeof(*j));
    j->b = b;
    j->first[0] = 1;
}

/* Before a value or a key: the comma, unless first or right after a key. */
static void sep(sl_jw *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth])
        evbuffer_add(j->b, ",", 1);
    j->first[j->depth] = 0;
}

static void open_(sl_jw *j, char c)
{
    sep(j);
    evbuffer_add(j->b, &c, 1);
    assert(j->depth + 1 < SL_JW_DEPTH);
    j->depth++;
    j->first[j->depth] = 1;
    j->close[j->depth] = c == '{' ? '}' : ']';
}

void sl_jw_obj(sl_jw *j)
{
    open_(j, '{');
}

void sl_jw_arr(sl_jw *j)
{
    open_(j, '[');
}

void sl_jw_end(sl_jw *j)
{
    assert(j->depth > 0);
    evbuffer_add(j->b, &j->close[j->depth], 1);
    j->depth--;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n) /* truncated sequence */
            return 0;
        for (size_t m = 1; m <= k; m++) {
            if ((s[i + m] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + m] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

void sl_json_escape(struct evbuffer *b, const void *p, size_t n)
{
    const unsigned char *s = p;
    int valid = utf8_valid(s, n);
    size_t run = 0; /* bytes copied as they are, pending */
    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        char esc[8];
        const char *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !valid)) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            e = esc;
        }
        if (!e) {
            run++;
            continue;
        }
        if (run)
            evbuffer_add(b, s + i - run, run);
        run = 0;
        evbuffer_add(b, e, strlen(e));
    }
    if (run)
        evbuffer_add(b, s + n - run, run);
    evbuffer_add(b, "\"", 1);
}

void sl_jw_key(sl_jw *j, const char *k)
{
    sep(j);
    sl_json_escape(j->b, k, strlen(k));
    evbuffer_add(j->b, ":", 1);
    j->after_key = 1;
}

void sl_jw_str(sl_jw *j, const char *s)
{
    if (!s) {
        sl_jw_null(j);
        return;
    }
    sl_jw_strn(j, s, strlen(s));
}

void sl_jw_strn(sl_jw *j, const void *p, size_t n)
{
    sep(j);
    sl_json_escape(j->b, p, n);
}

void sl_jw_i64(sl_jw *j, int64_t v)
{
    sep(j);
    evbuffer_add_printf(j->b, "%" PRId64, v);
}

void sl_jw_f64(sl_jw *j, double v)
{
    sep(j);
    if (isfinite(v))
        evbuffer_add_printf(j->b, "%.6g", v);
    else
        evbuffer_add(j->b, "null", 4);
}

void sl_jw_bool(sl_jw *j, int v)
{
    sep(j);
    evbuffer_add_printf(j->b, "%s", v ? "true" : "false");
}

void sl_jw_null(sl_jw *j)
{
    sep(j);
    evbuffer_add(j->b, "null", 4);
}

void sl_jw_kstr(sl_jw *j, const char *k, const char *s)
{
    sl_jw_key(j, k);
    sl_jw_str(j, s);
}

void sl_jw_ki64(sl_jw *j, const char *k, int64_t v)
{
    sl_jw_key(j, k);
    sl_jw_i64(j, v);
}
