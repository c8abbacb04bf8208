"""The command's exit statuses, and the error that carries one to ``main``.

Both transports (the database directly, or a server over HTTP) end a command the same
way: a :class:`CommandError` with the status a script can branch on, and a message
that says what happened and what to do.
"""

from __future__ import annotations

import enum

from ..errors import ConfigurationError, PerdureError
from ..server.problems import from_exception


class Exit(enum.IntEnum):
    """What the command's exit status means (the same in both transports)."""

    OK = 0  # done
    FAILED = 1  # it ran, but its outcome is a failure (a replay diverged, a run failed)
    USAGE = 2  # a usage or configuration error
    NOT_FOUND = 3  # no such run or definition
    CONFLICT = 4  # the run's status does not allow it, or the id is taken
    UNREACHABLE = 5  # the server could not be reached, or refused the token


class CommandError(Exception):
    """Ends the command: ``perdure: <message>`` on standard error, then ``code``."""

    def __init__(self, message: str, code: Exit, *, error_code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # The snake_case name the HTTP contract gives this error (for --json output).
        self.error_code = error_code or _DEFAULT_CODES[code]


_DEFAULT_CODES = {
    Exit.OK: "ok",
    Exit.FAILED: "failed",
    Exit.USAGE: "bad_request",
    Exit.NOT_FOUND: "not_found",
    Exit.CONFLICT: "conflict",
    Exit.UNREACHABLE: "unreachable",
}


def usage(message: str) -> CommandError:
    """A usage error: the command line asks for something that cannot be done."""
    return CommandError(message, Exit.USAGE)


def from_perdure(exc: PerdureError) -> CommandError:
    """The exit status and error code of an error perdure raised (direct transport):
    what the server would answer for it, through the same table."""
    if isinstance(exc, ConfigurationError):  # the command's settings, not the server's
        return CommandError(str(exc), Exit.USAGE, error_code="bad_request")
    answer = from_exception(exc)
    if answer is None:
        return CommandError(str(exc), Exit.FAILED, error_code="failed")
    return from_http(answer.status, answer.code, answer.message)


# What an HTTP status (and the contract's error code) means for the exit status.
_BY_HTTP_STATUS = {
    400: Exit.USAGE,
    401: Exit.UNREACHABLE,
    403: Exit.UNREACHABLE,
    404: Exit.NOT_FOUND,
    405: Exit.USAGE,
    409: Exit.CONFLICT,
    413: Exit.USAGE,
    415: Exit.USAGE,
    422: Exit.USAGE,
    502: Exit.UNREACHABLE,
    503: Exit.UNREACHABLE,
    504: Exit.UNREACHABLE,
}


def from_http(status: int, error_code: str, message: str) -> CommandError:
    """The exit status for an error the server answered."""
    code = _BY_HTTP_STATUS.get(status, Exit.FAILED)
    return CommandError(message, code, error_code=error_code or _DEFAULT_CODES[code])
