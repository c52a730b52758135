"""Refusals the API turns into 4xx answers: each carries its status, a short code and a sentence.

:class:`JobError` is what a person's change of a job meets (re-validate a frozen job, cancel a final
one); the :class:`ProtocolError` family is what a slave's call on its run meets (docs/protocol.md).
"""

from __future__ import annotations


class JobError(Exception):
    """A change a job's state does not allow; the message says why (an API 400/409)."""

    def __init__(self, message: str, code: str = "invalid_state"):
        super().__init__(message)
        self.code = code


class ProtocolError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Invalid(ProtocolError):
    status, code = 400, "invalid"


class NotFound(ProtocolError):
    status, code = 404, "not_found"


class RunOver(ProtocolError):
    """The run ended (lease expired, superseded, finished): the slave must stop."""

    status, code = 409, "run_over"

    def __init__(self, detail: str, **extra):
        super().__init__(detail, action="abort", **extra)


class Conflict(ProtocolError):
    """The same write repeated with different content."""

    status, code = 409, "conflict"


class TooLarge(ProtocolError):
    status, code = 413, "too_large"


class OffsetGap(ProtocolError):
    status, code = 416, "offset_gap"
