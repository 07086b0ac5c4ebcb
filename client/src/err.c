/*
 * err.c - sluice_err names and descriptions, the thread-local error detail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/src/internal.h"

/* sluice_err and sl_err are the same numbers. */
_Static_assert((int)SLUICE_ERR_COMPRESSION == (int)SL_ERR_COMPRESSION,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_NOT_ENOUGH_REPLICAS ==
                   (int)SL_ERR_NOT_ENOUGH_REPLICAS,
               "error codes");
_Static_assert((int)SLUICE_ERR_NOT_LEADER == (int)SL_ERR_NOT_LEADER,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_AUTHORIZATION_FAILED ==
                   (int)SL_ERR_AUTHORIZATION_FAILED,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_DUPLICATE_SEQUENCE ==
                   (int)SL_ERR_DUPLICATE_SEQUENCE,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_NOT_COORDINATOR == (int)SL_ERR_NOT_COORDINATOR,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_UNKNOWN_PRODUCER_ID ==
                   (int)SL_ERR_UNKNOWN_PRODUCER_ID,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_UNKNOWN_LEADER_EPOCH ==
                   (int)SL_ERR_UNKNOWN_LEADER_EPOCH,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_DISCONNECTED == (int)SL_ERR_DISCONNECTED,
               "sluice_err out of sync with sl_err");
_Static_assert((int)SLUICE_ERR_SYS_BASE == (int)SL_ESYS_BASE,
               "sluice_err out of sync with sl_err");

static __thread char tls_detail[512];

const char *sluice_version(void)
{
    return SLUICE_VERSION_STR;
}

const char *sluice_strerror(int err)
{
    return sl_strerror(err);
}

const char *sluice_errname(int err)
{
    static const char *const names[] = {
#define N(x) [SLUICE_##x] = "SLUICE_" #x
        N(OK),
        N(ERR_UNKNOWN),
        N(ERR_CORRUPT),
        N(ERR_MALFORMED),
        N(ERR_TOO_LARGE),
        N(ERR_UNSUPPORTED_API),
        N(ERR_UNSUPPORTED_VERSION),
        N(ERR_UNKNOWN_TOPIC),
        N(ERR_UNKNOWN_PARTITION),
        N(ERR_TOPIC_EXISTS),
        N(ERR_INVALID_CONFIG),
        N(ERR_OFFSET_OUT_OF_RANGE),
        N(ERR_NOT_FOUND),
        N(ERR_TIMEOUT),
        N(ERR_NOMEM),
        N(ERR_CLOSED),
        N(ERR_BUSY),
        N(ERR_AUTH),
        N(ERR_INVALID_ARG),
        N(ERR_UNKNOWN_GROUP),
        N(ERR_UNKNOWN_MEMBER),
        N(ERR_REBALANCE),
        N(ERR_NOT_ACQUIRED),
        N(ERR_LOCK_EXPIRED),
        N(ERR_THROTTLED),
        N(ERR_STORAGE),
        N(ERR_DISCONNECTED),
        N(ERR_PROTOCOL),
        N(ERR_IO),
        N(ERR_INVALID_TOPIC),
        N(ERR_SHUTTING_DOWN),
        N(ERR_COMPRESSION),
        N(ERR_NOT_LEADER),
        N(ERR_NOT_ENOUGH_REPLICAS),
        N(ERR_AUTHORIZATION_FAILED),
        N(ERR_OUT_OF_ORDER_SEQUENCE),
        N(ERR_PRODUCER_FENCED),
        N(ERR_DUPLICATE_SEQUENCE),
        N(ERR_FENCED_LEADER_EPOCH),
        N(ERR_UNKNOWN_LEADER_EPOCH),
        N(ERR_NOT_COORDINATOR),
        N(ERR_UNKNOWN_PRODUCER_ID),
#undef N
    };
    if (SLUICE_ERR_IS_SYS(err))
        return sl_errname(err);
    if (err >= 0 && (size_t)err < sizeof(names) / sizeof(names[0]) &&
        names[err])
        return names[err];
    return "SLUICE_ERR_UNKNOWN_CODE";
}

const char *sluice_errstr(void)
{
    return tls_detail;
}

sl_err sl_cl_fail(sl_err rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tls_detail, sizeof(tls_detail), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(tls_detail) - 4)
        snprintf(tls_detail + n, sizeof(tls_detail) - (size_t)n, ": %s",
                 sl_strerror(rc));
    return rc;
}

void sl_cl_clear_err(void)
{
    tls_detail[0] = '\0';
}

void sl_cl_errstr_copy(char *errstr, size_t size)
{
    if (errstr && size)
        snprintf(errstr, size, "%s", tls_detail);
}
