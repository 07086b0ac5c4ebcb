/*
 * err.h - the one error enum of Sluice.
 *
 * sl_err doubles as the wire error code of the binary protocol (an int32).
 * 0 is success. Codes 1..9999 are Sluice's own. A system error is wrapped,
 * not flattened: SL_ESYS(errno) = 10000 + errno, so ENOSPC stays visible all
 * the way to the client ("system error: No space left on device").
 * sl_strerror() is a superset of strerror(), in the manner of mdb_strerror.
 */
#ifndef SL_ERR_H
#define SL_ERR_H

typedef enum sl_err {
    SL_OK = 0,
    SL_ERR_UNKNOWN = 1,             /* unexpected internal failure */
    SL_ERR_CORRUPT = 2,             /* CRC mismatch or malformed stored data */
    SL_ERR_MALFORMED = 3,           /* malformed request / frame / batch */
    SL_ERR_TOO_LARGE = 4,           /* frame or batch exceeds a size limit */
    SL_ERR_UNSUPPORTED_API = 5,     /* unknown api key */
    SL_ERR_UNSUPPORTED_VERSION = 6, /* api version not supported */
    SL_ERR_UNKNOWN_TOPIC = 7,
    SL_ERR_UNKNOWN_PARTITION = 8,
    SL_ERR_TOPIC_EXISTS = 9,
    SL_ERR_INVALID_CONFIG = 10,
    SL_ERR_OFFSET_OUT_OF_RANGE = 11,
    SL_ERR_NOT_FOUND = 12, /* generic: record, offset or key not found */
    SL_ERR_TIMEOUT = 13,
    SL_ERR_NOMEM = 14,
    SL_ERR_CLOSED = 15,      /* object or connection already closed */
    SL_ERR_BUSY = 16,        /* resource locked (e.g. data dir in use) */
    SL_ERR_AUTH = 17,        /* AUTHENTICATION_FAILED: wrong user or
                                password, or a request before login */
    SL_ERR_INVALID_ARG = 18, /* bad argument from caller or client */
    SL_ERR_UNKNOWN_GROUP = 19,
    SL_ERR_UNKNOWN_MEMBER = 20,
    SL_ERR_REBALANCE = 21,    /* group is rebalancing: rejoin */
    SL_ERR_NOT_ACQUIRED = 22, /* ack/nack of a record not held by caller */
    SL_ERR_LOCK_EXPIRED = 23, /* the lock on the record had expired */
    SL_ERR_THROTTLED = 24,
    SL_ERR_STORAGE = 25,       /* partition failed (e.g. fsync failed) */
    SL_ERR_DISCONNECTED = 26,  /* client side: connection lost */
    SL_ERR_PROTOCOL = 27,      /* client side: unexpected reply */
    SL_ERR_IO = 28,            /* generic I/O failure without errno */
    SL_ERR_INVALID_TOPIC = 29, /* invalid topic name */
    SL_ERR_SHUTTING_DOWN = 30,
    SL_ERR_COMPRESSION = 31,           /* zstd failure or unknown codec */
    SL_ERR_NOT_LEADER = 32,            /* cluster: this node does not lead the
                                          partition; refresh metadata */
    SL_ERR_NOT_ENOUGH_REPLICAS = 33,   /* cluster: fewer in-sync replicas
                                          than min-insync-replicas */
    SL_ERR_AUTHORIZATION_FAILED = 34,  /* authenticated, but no rule allows
                                          the operation on the resource */
    SL_ERR_OUT_OF_ORDER_SEQUENCE = 35, /* idempotent producer: the batch's
                                          sequence is not the next one */
    SL_ERR_PRODUCER_FENCED = 36,       /* idempotent producer: an older epoch
                                          than the producer id's current one */
    SL_ERR_DUPLICATE_SEQUENCE = 37,    /* idempotent producer: a retry of a
                                          batch stored long ago; success, its
                                          offset is no longer known */
    SL_ERR_FENCED_LEADER_EPOCH = 38,   /* cluster: the request names an
                                          older leader epoch than the
                                          receiver's; refresh metadata */
    SL_ERR_UNKNOWN_LEADER_EPOCH = 39,  /* cluster: the request names a newer
                                          leader epoch than the receiver
                                          knows yet; retry */
    SL_ERR_NOT_COORDINATOR = 40,       /* cluster: another node coordinates
                                          this group; find it again */
    SL_ERR_UNKNOWN_PRODUCER_ID = 41,   /* idempotent producer: the partition
                                          has no state of this producer id
                                          and the batch does not start at
                                          sequence 0 (KIP-360): bump the
                                          epoch, restart the sequences */
    SL_ERR__END                        /* not an error: one past the last */
} sl_err;

/* The name issue 16 gives code 17. */
#define SL_ERR_AUTHENTICATION_FAILED SL_ERR_AUTH

#define SL_ESYS_BASE 10000
/* Wrap a positive errno value. */
#define SL_ESYS(e) ((sl_err)(SL_ESYS_BASE + (e)))
/* True if rc wraps an errno; SL_ERRNO(rc) gives it back. */
#define SL_IS_ESYS(rc) ((int)(rc) > SL_ESYS_BASE)
#define SL_ERRNO(rc) ((int)(rc)-SL_ESYS_BASE)

/* A static, human-readable description of rc. Never NULL. @thread any */
const char *sl_strerror(int rc);
/* The enum name, e.g. "SL_ERR_CORRUPT" or "ENOSPC" for wrapped errno. */
const char *sl_errname(int rc);

#endif
