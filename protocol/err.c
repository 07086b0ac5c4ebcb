#include "protocol/err.h"

#include <errno.h>
#include <string.h>

static const struct {
    const char *name;
    const char *desc;
} errtab[SL_ERR__END] = {
    [SL_OK] = {"SL_OK", "success"},
    [SL_ERR_UNKNOWN] = {"SL_ERR_UNKNOWN", "unknown error"},
    [SL_ERR_CORRUPT] = {"SL_ERR_CORRUPT", "corrupt data (checksum mismatch)"},
    [SL_ERR_MALFORMED] = {"SL_ERR_MALFORMED", "malformed input"},
    [SL_ERR_TOO_LARGE] = {"SL_ERR_TOO_LARGE", "size limit exceeded"},
    [SL_ERR_UNSUPPORTED_API] = {"SL_ERR_UNSUPPORTED_API", "unknown api"},
    [SL_ERR_UNSUPPORTED_VERSION] = {"SL_ERR_UNSUPPORTED_VERSION",
                                    "unsupported api version"},
    [SL_ERR_UNKNOWN_TOPIC] = {"SL_ERR_UNKNOWN_TOPIC", "unknown topic"},
    [SL_ERR_UNKNOWN_PARTITION] = {"SL_ERR_UNKNOWN_PARTITION",
                                  "unknown partition"},
    [SL_ERR_TOPIC_EXISTS] = {"SL_ERR_TOPIC_EXISTS", "topic already exists"},
    [SL_ERR_INVALID_CONFIG] = {"SL_ERR_INVALID_CONFIG",
                               "invalid configuration"},
    [SL_ERR_OFFSET_OUT_OF_RANGE] = {"SL_ERR_OFFSET_OUT_OF_RANGE",
                                    "offset out of range"},
    [SL_ERR_NOT_FOUND] = {"SL_ERR_NOT_FOUND", "not found"},
    [SL_ERR_TIMEOUT] = {"SL_ERR_TIMEOUT", "timed out"},
    [SL_ERR_NOMEM] = {"SL_ERR_NOMEM", "out of memory"},
    [SL_ERR_CLOSED] = {"SL_ERR_CLOSED", "closed"},
    [SL_ERR_BUSY] = {"SL_ERR_BUSY", "resource busy"},
    [SL_ERR_AUTH] = {"SL_ERR_AUTHENTICATION_FAILED", "authentication failed"},
    [SL_ERR_INVALID_ARG] = {"SL_ERR_INVALID_ARG", "invalid argument"},
    [SL_ERR_UNKNOWN_GROUP] = {"SL_ERR_UNKNOWN_GROUP", "unknown group"},
    [SL_ERR_UNKNOWN_MEMBER] = {"SL_ERR_UNKNOWN_MEMBER", "unknown group member"},
    [SL_ERR_REBALANCE] = {"SL_ERR_REBALANCE", "group is rebalancing"},
    [SL_ERR_NOT_ACQUIRED] = {"SL_ERR_NOT_ACQUIRED",
                             "record is not acquired by this consumer"},
    [SL_ERR_LOCK_EXPIRED] = {"SL_ERR_LOCK_EXPIRED", "record lock expired"},
    [SL_ERR_THROTTLED] = {"SL_ERR_THROTTLED", "throttled"},
    [SL_ERR_STORAGE] = {"SL_ERR_STORAGE", "storage failure"},
    [SL_ERR_DISCONNECTED] = {"SL_ERR_DISCONNECTED", "disconnected"},
    [SL_ERR_PROTOCOL] = {"SL_ERR_PROTOCOL", "protocol error"},
    [SL_ERR_IO] = {"SL_ERR_IO", "I/O error"},
    [SL_ERR_INVALID_TOPIC] = {"SL_ERR_INVALID_TOPIC", "invalid topic name"},
    [SL_ERR_SHUTTING_DOWN] = {"SL_ERR_SHUTTING_DOWN",
                              "broker is shutting down"},
    [SL_ERR_COMPRESSION] = {"SL_ERR_COMPRESSION", "compression error"},
    [SL_ERR_NOT_LEADER] = {"SL_ERR_NOT_LEADER",
                           "not the leader of this partition"},
    [SL_ERR_NOT_ENOUGH_REPLICAS] = {"SL_ERR_NOT_ENOUGH_REPLICAS",
                                    "fewer in-sync replicas than "
                                    "min-insync-replicas"},
    [SL_ERR_AUTHORIZATION_FAILED] = {"SL_ERR_AUTHORIZATION_FAILED",
                                     "not authorized"},
    [SL_ERR_OUT_OF_ORDER_SEQUENCE] = {"SL_ERR_OUT_OF_ORDER_SEQUENCE",
                                      "producer sequence out of order"},
    [SL_ERR_PRODUCER_FENCED] = {"SL_ERR_PRODUCER_FENCED",
                                "producer epoch fenced by a newer one"},
    [SL_ERR_DUPLICATE_SEQUENCE] = {"SL_ERR_DUPLICATE_SEQUENCE",
                                   "batch already stored (duplicate "
                                   "sequence)"},
    [SL_ERR_FENCED_LEADER_EPOCH] = {"SL_ERR_FENCED_LEADER_EPOCH",
                                    "leader epoch older than the "
                                    "leader's (stale metadata)"},
    [SL_ERR_UNKNOWN_LEADER_EPOCH] = {"SL_ERR_UNKNOWN_LEADER_EPOCH",
                                     "leader epoch newer than the "
                                     "broker knows yet"},
    [SL_ERR_NOT_COORDINATOR] = {"SL_ERR_NOT_COORDINATOR",
                                "not the coordinator of this group"},
    [SL_ERR_UNKNOWN_PRODUCER_ID] = {"SL_ERR_UNKNOWN_PRODUCER_ID",
                                    "producer unknown to the partition "
                                    "(its state was lost)"},
};

static const char *errno_name(int e)
{
    switch (e) {
    case ENOSPC:
        return "ENOSPC";
    case EIO:
        return "EIO";
    case EDQUOT:
        return "EDQUOT";
    case EACCES:
        return "EACCES";
    case ENOENT:
        return "ENOENT";
    case EEXIST:
        return "EEXIST";
    case EAGAIN:
        return "EAGAIN";
    case EINVAL:
        return "EINVAL";
    case ENOMEM:
        return "ENOMEM";
    case EROFS:
        return "EROFS";
    case EMFILE:
        return "EMFILE";
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ECONNRESET:
        return "ECONNRESET";
    case EPIPE:
        return "EPIPE";
    default:
        return "ESYS";
    }
}

const char *sl_strerror(int rc)
{
    if (SL_IS_ESYS(rc))
        return strerror(SL_ERRNO(rc));
    if (rc >= 0 && rc < SL_ERR__END && errtab[rc].desc)
        return errtab[rc].desc;
    return "unknown error code";
}

const char *sl_errname(int rc)
{
    if (SL_IS_ESYS(rc))
        return errno_name(SL_ERRNO(rc));
    if (rc >= 0 && rc < SL_ERR__END && errtab[rc].name)
        return errtab[rc].name;
    return "SL_ERR_?";
}
