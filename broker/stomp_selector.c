/*
 * stomp_selector.c - JMS message selectors: compile the text of a
 * `selector` header once, at SUBSCRIBE, into a tree; test each message
 * against it.
 *
 * The language is the SQL-92 subset JMS 1.1 (section 3.8) defines, as
 * ActiveMQ implements it:
 *   - literals: 'strings' ('' is a quote), numbers (12, -3, 1.5, 2E3),
 *     TRUE, FALSE; identifiers name message headers;
 *   - comparison = <> < <= > >=, arithmetic + - * / and unary - +,
 *     [NOT] BETWEEN a AND b, [NOT] IN ('a', 'b'), [NOT] LIKE 'p%_'
 *     [ESCAPE 'c'], IS [NOT] NULL, AND, OR, NOT, parentheses;
 *   - keywords in any case, identifiers case-sensitive.
 * Three-valued logic: a missing header is NULL, and any comparison or
 * arithmetic with NULL is unknown; NOT unknown is unknown, FALSE AND
 * unknown is FALSE, TRUE OR unknown is TRUE. A message matches only when
 * the whole selector is TRUE.
 *
 * STOMP header values are strings. A string compared with a number or
 * used in arithmetic is read as a number when it is one (so `amount > 10`
 * works on the header amount:25), and the comparison is unknown when it
 * is not; a string compared with TRUE/FALSE is read as a boolean the same
 * way. Strings compare with = and <> only, as in JMS.
 *
 * Bounds: nesting deeper than SEL_MAX_DEPTH is refused at compile time,
 * so evaluation recursion is bounded too.
 */
#include "broker/stomp_selector.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEL_MAX_DEPTH 64

enum {
    N_STR,
    N_NUM,
    N_BOOL,
    N_IDENT,
    N_NOT,
    N_AND,
    N_OR,
    N_EQ,
    N_NE,
    N_LT,
    N_LE,
    N_GT,
    N_GE,
    N_ADD,
    N_SUB,
    N_MUL,
    N_DIV,
    N_NEG,
    N_BETWEEN, /* a BETWEEN b AND c: kids a, b, c */
    N_IN,      /* a IN (strs): kid a, strs */
    N_LIKE,    /* a LIKE pattern: kid a, str = pattern, esc */
    N_ISNULL   /* a IS NULL: kid a */
};

typedef struct node {
    int op;
    int neg; /* NOT BETWEEN, NOT IN, NOT LIKE, IS NOT NULL */
    struct node *k[3];
    char *str; /* N_STR, N_IDENT, N_LIKE pattern */
    double num;
    int b;
    char **strs; /* N_IN */
    size_t nstrs;
    int esc; /* N_LIKE escape character, or -1 */
} node;

struct sl_selector {
    node *root;
};

/* ---- parsing ------------------------------------------------------------ */

typedef struct parser {
    const char *s, *p;
    char *err;
    size_t errlen;
    int failed;
    int depth;
} parser;

static void fail(parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(parser *ps, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (ps->failed)
        return;
    ps->failed = 1;
    n = snprintf(ps->err, ps->errlen,
                 "at character %d: ", (int)(ps->p - ps->s) + 1);
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void node_free(node *n)
{
    size_t i;
    if (!n)
        return;
    for (i = 0; i < 3; i++)
        node_free(n->k[i]);
    free(n->str);
    for (i = 0; i < n->nstrs; i++)
        free(n->strs[i]);
    free(n->strs);
    free(n);
}

static node *mk(parser *ps, int op, node *a, node *b)
{
    node *n = calloc(1, sizeof(*n));
    if (!n) {
        fail(ps, "out of memory");
        node_free(a);
        node_free(b);
        return NULL;
    }
    n->op = op;
    n->k[0] = a;
    n->k[1] = b;
    n->esc = -1;
    return n;
}

static void skip_ws(parser *ps)
{
    while (*ps->p && isspace((unsigned char)*ps->p))
        ps->p++;
}

static int ident_start(int c)
{
    return isalpha(c) || c == '_' || c == '$';
}

static int ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '$';
}

/* Is the next token the keyword kw (any case)? Consumes it if so. */
static int kw(parser *ps, const char *w)
{
    size_t n = strlen(w);
    skip_ws(ps);
    if (strncasecmp(ps->p, w, n) == 0 && !ident_char((unsigned char)ps->p[n])) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static int sym(parser *ps, const char *w)
{
    size_t n = strlen(w);
    skip_ws(ps);
    if (strncmp(ps->p, w, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static int is_keyword(const char *p, size_t n)
{
    static const char *const kws[] = {"AND",    "OR",   "NOT",   "BETWEEN",
                                      "IN",     "LIKE", "IS",    "NULL",
                                      "ESCAPE", "TRUE", "FALSE", NULL};
    size_t i;
    for (i = 0; kws[i]; i++) {
        if (strlen(kws[i]) == n && strncasecmp(p, kws[i], n) == 0)
            return 1;
    }
    return 0;
}

/* A 'string' literal (after skip_ws, at the quote); malloc'd, or NULL. */
static char *string_lit(parser *ps)
{
    const char *q;
    char *out, *w;
    size_t n = 0;
    skip_ws(ps);
    if (*ps->p != '\'') {
        fail(ps, "expected a 'string'");
        return NULL;
    }
    for (q = ps->p + 1;; q++) {
        if (!*q) {
            fail(ps, "unterminated string");
            return NULL;
        }
        if (*q == '\'') {
            if (q[1] != '\'')
                break;
            q++;
        }
        n++;
    }
    out = malloc(n + 1);
    if (!out) {
        fail(ps, "out of memory");
        return NULL;
    }
    w = out;
    for (q = ps->p + 1; *q != '\'' || q[1] == '\''; q++) {
        if (*q == '\'')
            q++;
        *w++ = *q;
    }
    *w = 0;
    ps->p = q + 1;
    return out;
}

static node *p_or(parser *ps);

static node *p_primary(parser *ps)
{
    node *n;
    skip_ws(ps);
    if (ps->failed)
        return NULL;
    if (*ps->p == '(') {
        ps->p++;
        if (++ps->depth > SEL_MAX_DEPTH) {
            fail(ps, "nested more than %d deep", SEL_MAX_DEPTH);
            return NULL;
        }
        n = p_or(ps);
        ps->depth--;
        if (n && !sym(ps, ")")) {
            fail(ps, "expected ')'");
            node_free(n);
            return NULL;
        }
        return n;
    }
    if (*ps->p == '\'') {
        char *s = string_lit(ps);
        if (!s)
            return NULL;
        n = mk(ps, N_STR, NULL, NULL);
        if (!n) {
            free(s);
            return NULL;
        }
        n->str = s;
        return n;
    }
    if (isdigit((unsigned char)*ps->p) ||
        (*ps->p == '.' && isdigit((unsigned char)ps->p[1]))) {
        char *end;
        double v = strtod(ps->p, &end);
        if (end == ps->p || ident_start((unsigned char)*end)) {
            fail(ps, "invalid number");
            return NULL;
        }
        ps->p = end;
        n = mk(ps, N_NUM, NULL, NULL);
        if (n)
            n->num = v;
        return n;
    }
    if (ident_start((unsigned char)*ps->p)) {
        const char *b = ps->p;
        size_t len;
        while (ident_char((unsigned char)*ps->p))
            ps->p++;
        len = (size_t)(ps->p - b);
        if (len == 4 && strncasecmp(b, "TRUE", 4) == 0) {
            n = mk(ps, N_BOOL, NULL, NULL);
            if (n)
                n->b = 1;
            return n;
        }
        if (len == 5 && strncasecmp(b, "FALSE", 5) == 0) {
            n = mk(ps, N_BOOL, NULL, NULL);
            if (n)
                n->b = 0;
            return n;
        }
        if (is_keyword(b, len)) {
            ps->p = b;
            fail(ps, "unexpected keyword '%.*s'", (int)len, b);
            return NULL;
        }
        n = mk(ps, N_IDENT, NULL, NULL);
        if (!n)
            return NULL;
        n->str = strndup(b, len);
        if (!n->str) {
            node_free(n);
            fail(ps, "out of memory");
            return NULL;
        }
        return n;
    }
    if (!*ps->p)
        fail(ps, "unexpected end of selector");
    else
        fail(ps, "unexpected '%c'", *ps->p);
    return NULL;
}

static node *p_unary(parser *ps)
{
    node *n;
    if (sym(ps, "-")) {
        if (++ps->depth > SEL_MAX_DEPTH) {
            fail(ps, "nested more than %d deep", SEL_MAX_DEPTH);
            return NULL;
        }
        n = p_unary(ps);
        ps->depth--;
        return n ? mk(ps, N_NEG, n, NULL) : NULL;
    }
    if (sym(ps, "+"))
        return p_unary(ps);
    return p_primary(ps);
}

static node *p_mul(parser *ps)
{
    node *a = p_unary(ps);
    while (a && !ps->failed) {
        int op;
        if (sym(ps, "*"))
            op = N_MUL;
        else if (sym(ps, "/"))
            op = N_DIV;
        else
            break;
        node *b = p_unary(ps);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = mk(ps, op, a, b);
    }
    return a;
}

static node *p_add(parser *ps)
{
    node *a = p_mul(ps);
    while (a && !ps->failed) {
        int op;
        if (sym(ps, "+"))
            op = N_ADD;
        else if (sym(ps, "-"))
            op = N_SUB;
        else
            break;
        node *b = p_mul(ps);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = mk(ps, op, a, b);
    }
    return a;
}

static node *p_cmp(parser *ps)
{
    node *a = p_add(ps), *b, *n;
    int neg = 0, op = -1;
    if (!a)
        return NULL;
    skip_ws(ps);
    if (sym(ps, "<>"))
        op = N_NE;
    else if (sym(ps, "<="))
        op = N_LE;
    else if (sym(ps, ">="))
        op = N_GE;
    else if (sym(ps, "="))
        op = N_EQ;
    else if (sym(ps, "<"))
        op = N_LT;
    else if (sym(ps, ">"))
        op = N_GT;
    if (op >= 0) {
        b = p_add(ps);
        if (!b) {
            node_free(a);
            return NULL;
        }
        return mk(ps, op, a, b);
    }
    if (kw(ps, "IS")) {
        neg = kw(ps, "NOT");
        if (!kw(ps, "NULL")) {
            fail(ps, "expected NULL after IS");
            node_free(a);
            return NULL;
        }
        n = mk(ps, N_ISNULL, a, NULL);
        if (n)
            n->neg = neg;
        return n;
    }
    {
        const char *save = ps->p;
        neg = kw(ps, "NOT");
        if (kw(ps, "BETWEEN")) {
            node *lo = p_add(ps), *hi = NULL;
            if (lo && !kw(ps, "AND"))
                fail(ps, "expected AND in BETWEEN");
            if (lo && !ps->failed)
                hi = p_add(ps);
            if (!lo || !hi || ps->failed) {
                node_free(a);
                node_free(lo);
                node_free(hi);
                return NULL;
            }
            n = mk(ps, N_BETWEEN, a, lo);
            if (!n) {
                node_free(hi);
                return NULL;
            }
            n->k[2] = hi;
            n->neg = neg;
            return n;
        }
        if (kw(ps, "IN")) {
            n = mk(ps, N_IN, a, NULL);
            if (!n)
                return NULL;
            n->neg = neg;
            if (!sym(ps, "(")) {
                fail(ps, "expected '(' after IN");
                node_free(n);
                return NULL;
            }
            do {
                char *s = string_lit(ps), **ns;
                if (!s) {
                    node_free(n);
                    return NULL;
                }
                ns = realloc(n->strs, (n->nstrs + 1) * sizeof(*ns));
                if (!ns) {
                    free(s);
                    fail(ps, "out of memory");
                    node_free(n);
                    return NULL;
                }
                n->strs = ns;
                n->strs[n->nstrs++] = s;
            } while (sym(ps, ","));
            if (!sym(ps, ")")) {
                fail(ps, "expected ')' closing IN");
                node_free(n);
                return NULL;
            }
            return n;
        }
        if (kw(ps, "LIKE")) {
            n = mk(ps, N_LIKE, a, NULL);
            if (!n)
                return NULL;
            n->neg = neg;
            n->str = string_lit(ps);
            if (!n->str) {
                node_free(n);
                return NULL;
            }
            if (kw(ps, "ESCAPE")) {
                char *e = string_lit(ps);
                if (!e || strlen(e) != 1) {
                    if (e)
                        fail(ps, "ESCAPE takes one character");
                    free(e);
                    node_free(n);
                    return NULL;
                }
                n->esc = (unsigned char)e[0];
                free(e);
            }
            return n;
        }
        if (neg) {
            ps->p = save;
            fail(ps, "expected BETWEEN, IN or LIKE after NOT");
            node_free(a);
            return NULL;
        }
    }
    return a;
}

static node *p_not(parser *ps)
{
    node *n;
    if (kw(ps, "NOT")) {
        if (++ps->depth > SEL_MAX_DEPTH) {
            fail(ps, "nested more than %d deep", SEL_MAX_DEPTH);
            return NULL;
        }
        n = p_not(ps);
        ps->depth--;
        return n ? mk(ps, N_NOT, n, NULL) : NULL;
    }
    return p_cmp(ps);
}

static node *p_and(parser *ps)
{
    node *a = p_not(ps);
    while (a && !ps->failed && kw(ps, "AND")) {
        node *b = p_not(ps);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = mk(ps, N_AND, a, b);
    }
    return a;
}

static node *p_or(parser *ps)
{
    node *a = p_and(ps);
    while (a && !ps->failed && kw(ps, "OR")) {
        node *b = p_and(ps);
        if (!b) {
            node_free(a);
            return NULL;
        }
        a = mk(ps, N_OR, a, b);
    }
    return a;
}

sl_selector *sl_selector_compile(const char *text, char *err, size_t errlen)
{
    parser ps = {text, text, err, errlen, 0, 0};
    sl_selector *s;
    node *root = p_or(&ps);
    skip_ws(&ps);
    if (root && !ps.failed && *ps.p)
        fail(&ps, "unexpected '%.20s'", ps.p);
    if (!root || ps.failed) {
        if (!ps.failed)
            fail(&ps, "invalid selector");
        node_free(root);
        return NULL;
    }
    s = malloc(sizeof(*s));
    if (!s) {
        node_free(root);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->root = root;
    return s;
}

void sl_selector_free(sl_selector *s)
{
    if (!s)
        return;
    node_free(s->root);
    free(s);
}

/* ---- evaluation --------------------------------------------------------- */

enum { T_FALSE = 0, T_TRUE = 1, T_UNKNOWN = 2 };
enum { V_NULL, V_BOOL, V_NUM, V_STR };

typedef struct val {
    int t;
    double n;
    int b;
    const char *s;
} val;

typedef struct ectx {
    sl_selector_lookup lookup;
    void *arg;
    /* header values borrowed from lookup are copied here (the lookup's
     * buffer is reused by the next call); at most one per identifier
     * node, freed after the match */
    char **owned;
    size_t nowned, cap;
} ectx;

static val eval(ectx *x, const node *n);

static int str_num(const char *s, double *out)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return 0;
    *out = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    return *end == 0 && isfinite(*out);
}

/* v as a number: 1, or 0 when it is none (NULL, bool, non-numeric). */
static int as_num(val v, double *out)
{
    if (v.t == V_NUM) {
        *out = v.n;
        return 1;
    }
    if (v.t == V_STR)
        return str_num(v.s, out);
    return 0;
}

/* v as a truth value. */
static int as_truth(val v)
{
    if (v.t == V_BOOL)
        return v.b ? T_TRUE : T_FALSE;
    if (v.t == V_STR) {
        if (strcasecmp(v.s, "true") == 0)
            return T_TRUE;
        if (strcasecmp(v.s, "false") == 0)
            return T_FALSE;
    }
    return T_UNKNOWN;
}

static val v_null(void)
{
    val v = {V_NULL, 0, 0, NULL};
    return v;
}

static val v_truth(int t)
{
    val v = {V_BOOL, 0, t == T_TRUE, NULL};
    if (t == T_UNKNOWN)
        v.t = V_NULL;
    return v;
}

static val v_num(double d)
{
    val v = {V_NUM, d, 0, NULL};
    return v;
}

/* Equality of two non-NULL values: T_TRUE/T_FALSE/T_UNKNOWN. */
static int eq(val a, val b)
{
    double x, y;
    if (a.t == V_STR && b.t == V_STR)
        return strcmp(a.s, b.s) == 0 ? T_TRUE : T_FALSE;
    if (a.t == V_BOOL || b.t == V_BOOL) {
        int ta = as_truth(a), tb = as_truth(b);
        if (ta == T_UNKNOWN || tb == T_UNKNOWN)
            return T_UNKNOWN;
        return ta == tb ? T_TRUE : T_FALSE;
    }
    if (as_num(a, &x) && as_num(b, &y))
        return x == y ? T_TRUE : T_FALSE;
    return T_UNKNOWN;
}

/* SQL LIKE: % any run, _ one character, esc makes the next literal. */
static int like(const char *s, const char *p, int esc)
{
    for (; *p; p++) {
        if (esc >= 0 && (unsigned char)*p == esc && p[1]) {
            p++;
            if (*s != *p)
                return 0;
            s++;
        } else if (*p == '%') {
            while (p[1] == '%')
                p++;
            if (!p[1])
                return 1;
            for (; *s; s++) {
                if (like(s, p + 1, esc))
                    return 1;
            }
            return like(s, p + 1, esc);
        } else if (*p == '_') {
            if (!*s)
                return 0;
            s++;
        } else {
            if (*s != *p)
                return 0;
            s++;
        }
    }
    return *s == 0;
}

static int truth(ectx *x, const node *n)
{
    return as_truth(eval(x, n));
}

static val eval(ectx *x, const node *n)
{
    val a, b, c;
    double p, q, r;
    int ta, tb, t;
    size_t i;
    switch (n->op) {
    case N_STR: {
        val v = {V_STR, 0, 0, n->str};
        return v;
    }
    case N_NUM:
        return v_num(n->num);
    case N_BOOL:
        return v_truth(n->b ? T_TRUE : T_FALSE);
    case N_IDENT: {
        const char *s = x->lookup(x->arg, n->str);
        char *copy;
        val v = {V_STR, 0, 0, NULL};
        if (!s)
            return v_null();
        if (x->nowned == x->cap) {
            size_t nc = x->cap ? x->cap * 2 : 8;
            char **no = realloc(x->owned, nc * sizeof(*no));
            if (!no)
                return v_null();
            x->owned = no;
            x->cap = nc;
        }
        copy = strdup(s);
        if (!copy)
            return v_null();
        x->owned[x->nowned++] = copy;
        v.s = copy;
        return v;
    }
    case N_NOT:
        t = truth(x, n->k[0]);
        return v_truth(t == T_UNKNOWN ? T_UNKNOWN
                                      : (t == T_TRUE ? T_FALSE : T_TRUE));
    case N_AND:
        ta = truth(x, n->k[0]);
        if (ta == T_FALSE)
            return v_truth(T_FALSE);
        tb = truth(x, n->k[1]);
        if (tb == T_FALSE)
            return v_truth(T_FALSE);
        return v_truth(ta == T_TRUE && tb == T_TRUE ? T_TRUE : T_UNKNOWN);
    case N_OR:
        ta = truth(x, n->k[0]);
        if (ta == T_TRUE)
            return v_truth(T_TRUE);
        tb = truth(x, n->k[1]);
        if (tb == T_TRUE)
            return v_truth(T_TRUE);
        return v_truth(ta == T_FALSE && tb == T_FALSE ? T_FALSE : T_UNKNOWN);
    case N_EQ:
    case N_NE:
        a = eval(x, n->k[0]);
        b = eval(x, n->k[1]);
        if (a.t == V_NULL || b.t == V_NULL)
            return v_null();
        t = eq(a, b);
        if (n->op == N_NE && t != T_UNKNOWN)
            t = t == T_TRUE ? T_FALSE : T_TRUE;
        return v_truth(t);
    case N_LT:
    case N_LE:
    case N_GT:
    case N_GE:
        a = eval(x, n->k[0]);
        b = eval(x, n->k[1]);
        if (!as_num(a, &p) || !as_num(b, &q))
            return v_null();
        t = n->op == N_LT   ? p < q
            : n->op == N_LE ? p <= q
            : n->op == N_GT ? p > q
                            : p >= q;
        return v_truth(t ? T_TRUE : T_FALSE);
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_DIV:
        a = eval(x, n->k[0]);
        b = eval(x, n->k[1]);
        if (!as_num(a, &p) || !as_num(b, &q))
            return v_null();
        if (n->op == N_DIV && q == 0)
            return v_null();
        r = n->op == N_ADD   ? p + q
            : n->op == N_SUB ? p - q
            : n->op == N_MUL ? p * q
                             : p / q;
        return v_num(r);
    case N_NEG:
        a = eval(x, n->k[0]);
        if (!as_num(a, &p))
            return v_null();
        return v_num(-p);
    case N_BETWEEN:
        a = eval(x, n->k[0]);
        b = eval(x, n->k[1]);
        c = eval(x, n->k[2]);
        if (!as_num(a, &p) || !as_num(b, &q) || !as_num(c, &r))
            return v_null();
        t = p >= q && p <= r;
        return v_truth((t ^ n->neg) ? T_TRUE : T_FALSE);
    case N_IN:
        a = eval(x, n->k[0]);
        if (a.t != V_STR)
            return v_null();
        t = 0;
        for (i = 0; i < n->nstrs && !t; i++)
            t = strcmp(a.s, n->strs[i]) == 0;
        return v_truth((t ^ n->neg) ? T_TRUE : T_FALSE);
    case N_LIKE:
        a = eval(x, n->k[0]);
        if (a.t != V_STR)
            return v_null();
        t = like(a.s, n->str, n->esc);
        return v_truth((t ^ n->neg) ? T_TRUE : T_FALSE);
    case N_ISNULL:
        a = eval(x, n->k[0]);
        t = a.t == V_NULL;
        return v_truth((t ^ n->neg) ? T_TRUE : T_FALSE);
    }
    return v_null();
}

int sl_selector_match(const sl_selector *s, sl_selector_lookup lookup,
                      void *arg)
{
    ectx x;
    int t;
    size_t i;
    memset(&x, 0, sizeof(x));
    x.lookup = lookup;
    x.arg = arg;
    t = truth(&x, s->root);
    for (i = 0; i < x.nowned; i++)
        free(x.owned[i]);
    free(x.owned);
    return t == T_TRUE;
}
