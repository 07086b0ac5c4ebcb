/*
 * test_stomp_selector.c - JMS selectors (stomp_selector.c): the SQL-92
 * subset, three-valued logic, STOMP's string-valued headers, refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/stomp_selector.h"

/* Headers of the message under test: "name=value" strings. */
static const char *const msg[] = {"color=red", "size=10",    "price=2.5",
                                  "flag=true", "name=a_b%c", "type=created",
                                  "empty=",    NULL};

static const char *lookup(void *arg, const char *name)
{
    const char *const *h = arg;
    size_t n = strlen(name);
    for (; *h; h++) {
        if (strncmp(*h, name, n) == 0 && (*h)[n] == '=')
            return *h + n + 1;
    }
    return NULL;
}

/* 1 match, 0 no match, -1 refused */
static int sel(const char *text)
{
    char err[200];
    sl_selector *s = sl_selector_compile(text, err, sizeof(err));
    int r;
    if (!s)
        return -1;
    r = sl_selector_match(s, lookup, (void *)msg);
    sl_selector_free(s);
    return r;
}

static void test_comparisons(void **state)
{
    (void)state;
    assert_int_equal(sel("color = 'red'"), 1);
    assert_int_equal(sel("color = 'blue'"), 0);
    assert_int_equal(sel("color <> 'blue'"), 1);
    assert_int_equal(sel("size > 5"), 1);
    assert_int_equal(sel("size >= 10"), 1);
    assert_int_equal(sel("size < 10"), 0);
    assert_int_equal(sel("size <= 10.0"), 1);
    assert_int_equal(sel("size = 10"), 1);
    assert_int_equal(sel("price * 4 = size"), 1);
    assert_int_equal(sel("size - 2 * 3 = 4"), 1);
    assert_int_equal(sel("(size - 2) * 3 = 24"), 1);
    assert_int_equal(sel("-size < 0"), 1);
    assert_int_equal(sel("size / 4 = 2.5"), 1);
    assert_int_equal(sel("2E1 > size"), 1);
    assert_int_equal(sel("flag = TRUE"), 1);
    assert_int_equal(sel("flag"), 1);
    assert_int_equal(sel("NOT flag"), 0);
    /* strings compare with = and <> only; a non-numeric string in a
     * numeric comparison is unknown */
    assert_int_equal(sel("color > 5"), 0);
    assert_int_equal(sel("NOT (color > 5)"), 0);
}

static void test_logic_and_null(void **state)
{
    (void)state;
    assert_int_equal(sel("color = 'red' AND size > 5"), 1);
    assert_int_equal(sel("color = 'red' AND size > 50"), 0);
    assert_int_equal(sel("color = 'blue' OR size > 5"), 1);
    /* missing header: unknown, never TRUE ... */
    assert_int_equal(sel("missing = 1"), 0);
    assert_int_equal(sel("NOT (missing = 1)"), 0);
    assert_int_equal(sel("missing <> 1"), 0);
    /* ... but FALSE AND unknown is FALSE, TRUE OR unknown TRUE */
    assert_int_equal(sel("NOT (missing = 1 AND size > 50)"), 1);
    assert_int_equal(sel("missing = 1 OR size > 5"), 1);
    assert_int_equal(sel("NOT (missing = 1 OR size > 50)"), 0);
    assert_int_equal(sel("missing IS NULL"), 1);
    assert_int_equal(sel("color IS NULL"), 0);
    assert_int_equal(sel("color IS NOT NULL"), 1);
    assert_int_equal(sel("empty IS NOT NULL AND empty = ''"), 1);
    /* division by zero is unknown, not a crash */
    assert_int_equal(sel("size / 0 = 1"), 0);
    /* keywords in any case */
    assert_int_equal(sel("color = 'red' and not size between 1 and 5"), 1);
}

static void test_between_in_like(void **state)
{
    (void)state;
    assert_int_equal(sel("size BETWEEN 5 AND 10"), 1);
    assert_int_equal(sel("size BETWEEN 11 AND 20"), 0);
    assert_int_equal(sel("size NOT BETWEEN 11 AND 20"), 1);
    assert_int_equal(sel("missing NOT BETWEEN 11 AND 20"), 0);
    assert_int_equal(sel("color IN ('green', 'red')"), 1);
    assert_int_equal(sel("color IN ('green')"), 0);
    assert_int_equal(sel("color NOT IN ('green')"), 1);
    assert_int_equal(sel("missing NOT IN ('green')"), 0);
    assert_int_equal(sel("type LIKE 'cre%'"), 1);
    assert_int_equal(sel("type LIKE 'c_eated'"), 1);
    assert_int_equal(sel("type LIKE '%ate_'"), 1);
    assert_int_equal(sel("type LIKE 'cre'"), 0);
    assert_int_equal(sel("type NOT LIKE 'x%'"), 1);
    /* ESCAPE: a literal _ and % */
    assert_int_equal(sel("name LIKE 'a\\_b\\%c' ESCAPE '\\'"), 1);
    assert_int_equal(sel("name LIKE 'a!_b%' ESCAPE '!'"), 1);
    assert_int_equal(sel("type LIKE 'a!_b%' ESCAPE '!'"), 0);
    /* quotes inside strings */
    assert_int_equal(sel("color <> 'it''s'"), 1);
}

static void test_refused(void **state)
{
    char err[200];
    char deep[400];
    size_t i;
    (void)state;
    assert_int_equal(sel(""), -1);
    assert_int_equal(sel("color ="), -1);
    assert_int_equal(sel("color = 'red"), -1);
    assert_int_equal(sel("color = 'red' AND"), -1);
    assert_int_equal(sel("(size > 1"), -1);
    assert_int_equal(sel("size > 1)"), -1);
    assert_int_equal(sel("color IN 'red'"), -1);
    assert_int_equal(sel("name LIKE 'x' ESCAPE 'ab'"), -1);
    assert_int_equal(sel("size NOT 5"), -1);
    assert_int_equal(sel("AND = 1"), -1);
    assert_int_equal(sel("size @ 1"), -1);
    assert_null(sl_selector_compile("color = = 1", err, sizeof(err)));
    assert_non_null(strstr(err, "at character"));
    /* nesting is bounded */
    for (i = 0; i < 200; i++)
        deep[i] = '(';
    snprintf(deep + 200, sizeof(deep) - 200, "size > 1");
    assert_null(sl_selector_compile(deep, err, sizeof(err)));
    assert_non_null(strstr(err, "deep"));
    memset(deep, 0, sizeof(deep));
    for (i = 0; i < 150; i++)
        memcpy(deep + i * 2, "- ", 2);
    strcat(deep, "1 < 0");
    assert_null(sl_selector_compile(deep, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_logic_and_null),
        cmocka_unit_test(test_between_in_like),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
