/*
 * json.h - a small JSON writer into an evbuffer, for the management API
 * (broker/admin.c) and the HTTP listener (broker/http.c).
 *
 *     sl_jw j;
 *     sl_jw_init(&j, buf);
 *     sl_jw_obj(&j);
 *       sl_jw_key(&j, "name");  sl_jw_str(&j, "orders");
 *       sl_jw_key(&j, "parts"); sl_jw_arr(&j); sl_jw_i64(&j, 3); sl_jw_end(&j);
 *     sl_jw_end(&j);
 *
 * Commas are placed by the writer. Strings are escaped; bytes that are not
 * valid UTF-8 are written as \u00XX (one per byte), so the output is always
 * valid JSON whatever a record holds. Nesting deeper than SL_JW_DEPTH is a
 * programming error (asserted).
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define SL_JW_DEPTH 16

typedef struct sl_jw {
    struct evbuffer *b; /* borrowed */
    int depth;
    int first[SL_JW_DEPTH];  /* nothing written yet at this level */
    char close[SL_JW_DEPTH]; /* '}' or ']' */
    int after_key;
} sl_jw;

void sl_jw_init(sl_jw *j, struct evbuffer *b);
void sl_jw_obj(sl_jw *j);
void sl_jw_arr(sl_jw *j);
void sl_jw_end(sl_jw *j); /* closes the innermost object or array */
void sl_jw_key(sl_jw *j, const char *k);
void sl_jw_str(sl_jw *j, const char *s); /* NULL -> null */
void sl_jw_strn(sl_jw *j, const void *p, size_t n);
void sl_jw_i64(sl_jw *j, int64_t v);
void sl_jw_f64(sl_jw *j, double v);
void sl_jw_bool(sl_jw *j, int v);
void sl_jw_null(sl_jw *j);
/* "key": value shorthands */
void sl_jw_kstr(sl_jw *j, const char *k, const char *s);
void sl_jw_ki64(sl_jw *j, const char *k, int64_t v);

/* Append s escaped as a JSON string (with quotes) to b. */
void sl_json_escape(struct evbuffer *b, const void *p, size_t n);

#endif
