"""Protocol faults the run methods raise; the API turns each into its status, code and sentence."""

from __future__ import annotations


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
