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
     +-- SystemError_              (10000 + errno)  also OSError; .errno set

Every instance has ``.code`` (the int), ``.name`` (e.g. ``"SLUICE_ERR_UNKNOWN_TOPIC"``
or ``"ENOSPC"``) and ``.message`` (what happened, naming the input).
"""

from __future__ import annotations

import errno as _errno
import os as _os
from typing import Dict, Optional, Type

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
    "SluiceIOError", "ShuttingDownError", "CompressionError", "SystemError_",
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

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.message, self.code, self.name))


def _cls(name: str, code: int, sym: str, *bases: type,
         doc: str) -> Type[SluiceError]:
    cls = type(name, (SluiceError,) + bases,
               {"code": code, "name": sym, "__doc__": doc,
                "__module__": __name__})
    return cls  # type: ignore[return-value]


CorruptError = _cls("CorruptError", 2, "SLUICE_ERR_CORRUPT",
                    doc="Stored or received data failed its CRC check.")
MalformedError = _cls("MalformedError", 3, "SLUICE_ERR_MALFORMED",
                      doc="The broker found a request, frame or batch "
                          "malformed.")
MessageTooLargeError = _cls("MessageTooLargeError", 4, "SLUICE_ERR_TOO_LARGE",
                            ValueError,
                            doc="A record, batch or frame exceeds a size "
                                "limit.")
UnsupportedError = _cls("UnsupportedError", 5, "SLUICE_ERR_UNSUPPORTED_API",
                        doc="The broker does not support this API or "
                            "version.")


class UnsupportedVersionError(UnsupportedError):  # type: ignore[valid-type,misc]
    """The broker does not support this API version."""
    code = 6
    name = "SLUICE_ERR_UNSUPPORTED_VERSION"


UnknownTopicError = _cls("UnknownTopicError", 7, "SLUICE_ERR_UNKNOWN_TOPIC",
                         doc="The topic does not exist (and was not "
                             "auto-created).")
UnknownPartitionError = _cls("UnknownPartitionError", 8,
                             "SLUICE_ERR_UNKNOWN_PARTITION",
                             doc="The partition does not exist in the "
                                 "topic.")
TopicExistsError = _cls("TopicExistsError", 9, "SLUICE_ERR_TOPIC_EXISTS",
                        doc="A topic with that name already exists.")
InvalidConfigError = _cls("InvalidConfigError", 10, "SLUICE_ERR_INVALID_CONFIG",
                          ValueError,
                          doc="A configuration key or value is invalid.")
OffsetOutOfRangeError = _cls("OffsetOutOfRangeError", 11,
                             "SLUICE_ERR_OFFSET_OUT_OF_RANGE",
                             doc="The offset is below the log start or past "
                                 "its end.")
NotFoundError = _cls("NotFoundError", 12, "SLUICE_ERR_NOT_FOUND",
                     doc="A record, offset or key was not found.")
SluiceTimeoutError = _cls("SluiceTimeoutError", 13, "SLUICE_ERR_TIMEOUT",
                          TimeoutError,
                          doc="The operation timed out.")
SluiceMemoryError = _cls("SluiceMemoryError", 14, "SLUICE_ERR_NOMEM",
                         MemoryError, doc="Out of memory.")
ClosedError = _cls("ClosedError", 15, "SLUICE_ERR_CLOSED",
                   doc="The object (producer, consumer, connection) is "
                       "closed.")
BusyError = _cls("BusyError", 16, "SLUICE_ERR_BUSY",
                 doc="A resource is busy or locked.")
AuthenticationError = _cls("AuthenticationError", 17, "SLUICE_ERR_AUTH",
                           doc="Authentication failed.")
InvalidArgumentError = _cls("InvalidArgumentError", 18, "SLUICE_ERR_INVALID_ARG",
                            ValueError,
                            doc="An argument was rejected by libsluice or the "
                                "broker.")


class InvalidTopicError(InvalidArgumentError):  # type: ignore[valid-type,misc]
    """The topic name is invalid (letters, digits, '.', '_', '-')."""
    code = 29
    name = "SLUICE_ERR_INVALID_TOPIC"


UnknownGroupError = _cls("UnknownGroupError", 19, "SLUICE_ERR_UNKNOWN_GROUP",
                         doc="The consumer group does not exist.")
UnknownMemberError = _cls("UnknownMemberError", 20, "SLUICE_ERR_UNKNOWN_MEMBER",
                          doc="The group does not know this member (session "
                              "expired).")
RebalanceError = _cls("RebalanceError", 21, "SLUICE_ERR_REBALANCE",
                      doc="The group is rebalancing; the consumer rejoins.")
NotAcquiredError = _cls("NotAcquiredError", 22, "SLUICE_ERR_NOT_ACQUIRED",
                        doc="ack/nack/reject/touch of a record this consumer "
                            "does not hold (already settled, or redelivered "
                            "to another consumer).")
LockExpiredError = _cls("LockExpiredError", 23, "SLUICE_ERR_LOCK_EXPIRED",
                        doc="The lock on the record expired before it was "
                            "settled; it will be (or was) delivered again.")
ThrottledError = _cls("ThrottledError", 24, "SLUICE_ERR_THROTTLED",
                      doc="The broker throttled the request.")
StorageError = _cls("StorageError", 25, "SLUICE_ERR_STORAGE",
                    doc="The partition failed on the broker (for example a "
                        "failed fsync) and refuses writes.")
DisconnectedError = _cls("DisconnectedError", 26, "SLUICE_ERR_DISCONNECTED",
                         ConnectionError,
                         doc="The connection to the broker was lost or could "
                             "not be made.")
ProtocolError = _cls("ProtocolError", 27, "SLUICE_ERR_PROTOCOL",
                     doc="The broker sent an unexpected reply.")
SluiceIOError = _cls("SluiceIOError", 28, "SLUICE_ERR_IO", OSError,
                     doc="An I/O error without an errno.")
ShuttingDownError = _cls("ShuttingDownError", 30, "SLUICE_ERR_SHUTTING_DOWN",
                         doc="The broker is shutting down.")
CompressionError = _cls("CompressionError", 31, "SLUICE_ERR_COMPRESSION",
                        doc="zstd failed or the codec is unknown.")


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
