"""Exceptions raised by the Sluice bindings.

Every error the broker or libsluice reports is an ``int`` code from one enum
(``sluice.h``/``protocol/err.h``: 0 is success, 1..9999 Sluice's own, ``10000 + errno`` a
wrapped system error). Each code maps to one class below; all of them derive
from :class:`SluiceError`, and some also from the matching built-in exception
so that ordinary ``except TimeoutError`` / ``except ValueError`` /
``except OSError`` clauses work::

    SluiceError
     +-- CorruptError               (2)
     +-- MalformedError             (3)
     +-- MessageTooLargeError       (4)  also ValueError
     +-- UnsupportedError           (5)
     |    +-- UnsupportedVersionError (6)
     +-- UnknownTopicError          (7)
     +-- UnknownPartitionError      (8)
     +-- TopicExistsError           (9)
     +-- InvalidConfigError        (10)  also ValueError
     +-- OffsetOutOfRangeError     (11)
     +-- NotFoundError             (12)
     +-- SluiceTimeoutError        (13)  also TimeoutError
     +-- SluiceMemoryError         (14)  also MemoryError
     +-- ClosedError               (15)
     +-- BusyError                 (16)
     +-- AuthenticationError       (17)
     +-- InvalidArgumentError      (18)  also ValueError
     |    +-- InvalidTopicError    (29)
     +-- UnknownGroupError         (19)
     +-- UnknownMemberError        (20)
     +-- RebalanceError            (21)
     +-- NotAcquiredError          (22)
     +-- LockExpiredError          (23)
     +-- ThrottledError            (24)
     +-- StorageError              (25)
     +-- DisconnectedError         (26)  also ConnectionError
     +-- ProtocolError             (27)
     +-- SluiceIOError             (28)  also OSError
     +-- ShuttingDownError         (30)
     +-- CompressionError          (31)
     +-- NotLeaderError            (32)  cluster: not the partition leader
     +-- NotEnoughReplicasError    (33)  cluster: ISR < min-insync-replicas
     +-- AuthorizationError        (34)  also PermissionError: no rule allows it
     +-- OutOfOrderSequenceError   (35)  idempotent producer: a batch before it is missing
     +-- ProducerFencedError       (36)  idempotent producer: a newer epoch of the id
     +-- DuplicateSequenceError    (37)  idempotent producer: stored long ago
     +-- FencedLeaderEpochError    (38)  cluster: the request's leader epoch is stale
     +-- UnknownLeaderEpochError   (39)  cluster: the broker's metadata lags
     +-- NotCoordinatorError       (40)  cluster: the group moved to another node
     +-- SystemError_              (10000 + errno)  also OSError; .errno set

Every instance has ``.code`` (the int), ``.name`` (e.g. ``"SLUICE_ERR_UNKNOWN_TOPIC"``
or ``"ENOSPC"``) and ``.message`` (what happened, naming the input).
"""

from __future__ import annotations

import errno as _errno
import os as _os
from typing import Any, Dict, Optional, Tuple, Type

__all__ = [
    "SluiceError", "CorruptError", "MalformedError", "MessageTooLargeError",
    "UnsupportedError", "UnsupportedVersionError", "UnknownTopicError",
    "UnknownPartitionError",
    "TopicExistsError", "InvalidConfigError", "OffsetOutOfRangeError",
    "NotFoundError", "SluiceTimeoutError", "SluiceMemoryError", "ClosedError",
    "BusyError", "AuthenticationError", "InvalidArgumentError",
    "InvalidTopicError", "UnknownGroupError", "UnknownMemberError",
    "RebalanceError", "NotAcquiredError", "LockExpiredError",
    "ThrottledError", "StorageError", "DisconnectedError", "ProtocolError",
    "SluiceIOError", "ShuttingDownError", "CompressionError", "NotLeaderError",
    "NotEnoughReplicasError", "NotCoordinatorError",
    "AuthorizationError",
    "OutOfOrderSequenceError", "ProducerFencedError", "DuplicateSequenceError",
    "FencedLeaderEpochError", "UnknownLeaderEpochError",
    "UnknownProducerIdError",
    "SystemError_",
    "error_from_code", "ESYS_BASE",
]

ESYS_BASE = 10000


class SluiceError(Exception):
    """Base class of every error raised by the Sluice bindings.

    Attributes:
        code: the Sluice error code (``sluice.h``/``protocol/err.h``), e.g. 7.
        name: its symbolic name, e.g. ``"SLUICE_ERR_UNKNOWN_TOPIC"``.
        message: a human-readable description naming the input concerned.
    """

    code: int = 1
    name: str = "SLUICE_ERR_UNKNOWN"

    def __init__(self, message: str = "", code: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name
        self.message = message or self.name
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.message, self.code, self.name))


class CorruptError(SluiceError):
    """Stored or received data failed its CRC check."""
    code = 2
    name = "SLUICE_ERR_CORRUPT"


class MalformedError(SluiceError):
    """The broker found a request, frame or batch malformed."""
    code = 3
    name = "SLUICE_ERR_MALFORMED"


class MessageTooLargeError(SluiceError, ValueError):
    """A record, batch or frame exceeds a size limit."""
    code = 4
    name = "SLUICE_ERR_TOO_LARGE"


class UnsupportedError(SluiceError):
    """The broker does not support this API or version."""
    code = 5
    name = "SLUICE_ERR_UNSUPPORTED_API"


class UnsupportedVersionError(UnsupportedError):
    """The broker does not support this API version."""
    code = 6
    name = "SLUICE_ERR_UNSUPPORTED_VERSION"


class UnknownTopicError(SluiceError):
    """The topic does not exist (and was not auto-created)."""
    code = 7
    name = "SLUICE_ERR_UNKNOWN_TOPIC"


class UnknownPartitionError(SluiceError):
    """The partition does not exist in the topic."""
    code = 8
    name = "SLUICE_ERR_UNKNOWN_PARTITION"


class TopicExistsError(SluiceError):
    """A topic with that name already exists."""
    code = 9
    name = "SLUICE_ERR_TOPIC_EXISTS"


class InvalidConfigError(SluiceError, ValueError):
    """A configuration key or value is invalid."""
    code = 10
    name = "SLUICE_ERR_INVALID_CONFIG"


class OffsetOutOfRangeError(SluiceError):
    """The offset is below the log start or past its end."""
    code = 11
    name = "SLUICE_ERR_OFFSET_OUT_OF_RANGE"


class NotFoundError(SluiceError):
    """A record, offset or key was not found."""
    code = 12
    name = "SLUICE_ERR_NOT_FOUND"


class SluiceTimeoutError(SluiceError, TimeoutError):
    """The operation timed out."""
    code = 13
    name = "SLUICE_ERR_TIMEOUT"


class SluiceMemoryError(SluiceError, MemoryError):
    """Out of memory."""
    code = 14
    name = "SLUICE_ERR_NOMEM"


class ClosedError(SluiceError):
    """The object (producer, consumer, connection) is closed."""
    code = 15
    name = "SLUICE_ERR_CLOSED"


class BusyError(SluiceError):
    """A resource is busy or locked."""
    code = 16
    name = "SLUICE_ERR_BUSY"


class AuthenticationError(SluiceError):
    """Authentication failed (AUTHENTICATION_FAILED): wrong user name or
    password, or a request before logging in. The message names the user."""
    code = 17
    name = "SLUICE_ERR_AUTH"


class InvalidArgumentError(SluiceError, ValueError):
    """An argument was rejected by libsluice or the broker."""
    code = 18
    name = "SLUICE_ERR_INVALID_ARG"


class InvalidTopicError(InvalidArgumentError):
    """The topic name is invalid (letters, digits, '.', '_', '-')."""
    code = 29
    name = "SLUICE_ERR_INVALID_TOPIC"


class UnknownGroupError(SluiceError):
    """The consumer group does not exist."""
    code = 19
    name = "SLUICE_ERR_UNKNOWN_GROUP"


class UnknownMemberError(SluiceError):
    """The group does not know this member (session expired)."""
    code = 20
    name = "SLUICE_ERR_UNKNOWN_MEMBER"


class RebalanceError(SluiceError):
    """The group is rebalancing; the consumer rejoins."""
    code = 21
    name = "SLUICE_ERR_REBALANCE"


class NotAcquiredError(SluiceError):
    """ack/nack/reject/touch of a record this consumer does not hold
    (already settled, or redelivered to another consumer)."""
    code = 22
    name = "SLUICE_ERR_NOT_ACQUIRED"


class LockExpiredError(SluiceError):
    """The lock on the record expired before it was settled; it will be (or
    was) delivered again."""
    code = 23
    name = "SLUICE_ERR_LOCK_EXPIRED"


class ThrottledError(SluiceError):
    """The broker throttled the request."""
    code = 24
    name = "SLUICE_ERR_THROTTLED"


class StorageError(SluiceError):
    """The partition failed on the broker (for example a failed fsync) and
    refuses writes."""
    code = 25
    name = "SLUICE_ERR_STORAGE"


class DisconnectedError(SluiceError, ConnectionError):
    """The connection to the broker was lost or could not be made."""
    code = 26
    name = "SLUICE_ERR_DISCONNECTED"


class ProtocolError(SluiceError):
    """The broker sent an unexpected reply."""
    code = 27
    name = "SLUICE_ERR_PROTOCOL"


class SluiceIOError(SluiceError, OSError):
    """An I/O error without an errno."""
    code = 28
    name = "SLUICE_ERR_IO"


class ShuttingDownError(SluiceError):
    """The broker is shutting down."""
    code = 30
    name = "SLUICE_ERR_SHUTTING_DOWN"


class CompressionError(SluiceError):
    """zstd failed or the codec is unknown."""
    code = 31
    name = "SLUICE_ERR_COMPRESSION"


class NotLeaderError(SluiceError):
    """In a cluster: the node is not the leader of the partition (see
    ``sluice topic describe`` for the leader)."""
    code = 32
    name = "SLUICE_ERR_NOT_LEADER"


class NotEnoughReplicasError(SluiceError):
    """In a cluster: a durable produce to a partition whose in-sync replica
    set is smaller than min-insync-replicas (retry; docs/cluster.md)."""
    code = 33
    name = "SLUICE_ERR_NOT_ENOUGH_REPLICAS"


class NotCoordinatorError(SluiceError):
    """In a cluster: the node no longer coordinates the group (its state
    partition moved, docs/cluster.md 6). Queue consumers find the new
    coordinator by themselves; retry other calls."""
    code = 40
    name = "SLUICE_ERR_NOT_COORDINATOR"


class UnknownProducerIdError(SluiceError):
    """Idempotent producer: the partition's leader has no state of the
    producer id (lost with a leader whose batches it never got) and the
    batch does not start its sequences. libsluice recovers on its own as
    Kafka's KIP-360 does (next epoch, sequences from 0; docs/cluster.md
    section 4); this reaches the application only after the delivery
    timeout."""
    code = 41
    name = "SLUICE_ERR_UNKNOWN_PRODUCER_ID"


class AuthorizationError(SluiceError, PermissionError):
    """AUTHORIZATION_FAILED: the user is logged in but no rule allows the
    operation on the resource; the message names the user, the operation
    and the resource (``sluice acl grant`` adds rules)."""
    code = 34
    name = "SLUICE_ERR_AUTHORIZATION_FAILED"


class OutOfOrderSequenceError(SluiceError):
    """Idempotent producer: the broker refused a batch whose sequence is not
    the next one of its producer on that partition (a batch before it was
    lost). libsluice resends on its own while an earlier batch of the
    partition is still being resent; this reaches the application only when
    that cannot cure it (docs/cluster.md section 4)."""
    code = 35
    name = "SLUICE_ERR_OUT_OF_ORDER_SEQUENCE"


class ProducerFencedError(SluiceError):
    """Idempotent producer: a newer epoch of the same producer id exists (a
    batch of this one failed for good and the producer moved on), so the
    broker refuses the old epoch's batches."""
    code = 36
    name = "SLUICE_ERR_PRODUCER_FENCED"


class DuplicateSequenceError(SluiceError):
    """Idempotent producer: the batch is a resend of one the broker stored
    long ago (its offset is no longer known). libsluice reports it as a
    success; the class exists for code that talks to the broker itself."""
    code = 37
    name = "SLUICE_ERR_DUPLICATE_SEQUENCE"


class FencedLeaderEpochError(SluiceError):
    """In a cluster: the request names an older leader epoch than the
    broker's (the sender's metadata is stale; KIP-320). libsluice refreshes
    its metadata and retries within ``delivery.timeout.ms``."""
    code = 38
    name = "SLUICE_ERR_FENCED_LEADER_EPOCH"


class UnknownLeaderEpochError(SluiceError):
    """In a cluster: the request names a newer leader epoch than the broker
    knows yet (its metadata lags); retried like FencedLeaderEpochError."""
    code = 39
    name = "SLUICE_ERR_UNKNOWN_LEADER_EPOCH"


class SystemError_(SluiceError, OSError):
    """A system error (errno) reported by the broker or the client, e.g.
    ``ENOSPC`` when the broker's disk is full. ``.errno`` is set."""
    code = ESYS_BASE
    name = "ESYS"

    def __init__(self, message: str = "", code: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        SluiceError.__init__(self, message, code, name)
        if self.code > ESYS_BASE:
            self.errno = self.code - ESYS_BASE
            self.strerror = _os.strerror(self.errno)


_BY_CODE: Dict[int, Type[SluiceError]] = {}
for _c in list(globals().values()):
    if isinstance(_c, type) and issubclass(_c, SluiceError) \
            and _c is not SluiceError and _c is not SystemError_:
        _BY_CODE[_c.code] = _c


def error_from_code(code: int, message: str = "",
                    name: Optional[str] = None) -> SluiceError:
    """Return (not raise) the exception instance for a Sluice error code."""
    if code > ESYS_BASE:
        e = code - ESYS_BASE
        sym = name or _errno.errorcode.get(e, "ESYS")
        return SystemError_(message or "system error: " + _os.strerror(e),
                            code, sym)
    cls = _BY_CODE.get(code)
    if cls is None:
        return SluiceError(message or "error %d" % code, code,
                           name or "SLUICE_ERR_UNKNOWN")
    return cls(message, code, name or cls.name)
