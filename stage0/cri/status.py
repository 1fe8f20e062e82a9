"""nspod's errors as gRPC status codes: the one table the CRI server answers failures with.

Every RPC handler runs under :func:`answering`; an expected failure (an ``Error`` of nspod's)
becomes its status code and its one-line message (with the hint), anything else INTERNAL with
the exception's type and text — never UNKNOWN with a traceback. nspod's errors are mapped by
their kind (the domain's ``ErrorKind``), never by class.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc

from stage0.errors import Error, ErrorKind, kind_of

log = logging.getLogger("nspod.cri")

# the one table from the domain's ErrorKind (stage0/errors.py) to gRPC
KIND_CODES: Mapping[ErrorKind, grpc.StatusCode] = {
    ErrorKind.USAGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}
_KINDS = {code: kind for kind, code in reversed(list(KIND_CODES.items()))}


class Failure(Error):
    """A failure the CRI layer itself finds, with its status code (a bad request, a missing ID)."""

    kind = ErrorKind.INTERNAL

    def __init__(self, code: grpc.StatusCode, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.kind = _KINDS.get(code, ErrorKind.INTERNAL)  # UNIMPLEMENTED and the like: internal


def not_found(what: str, ident: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"{what} {ident!r} not found")


def invalid(message: str) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, message)


def code_of(error: BaseException) -> grpc.StatusCode:
    """The status code for ``error``: its own (a CRI-layer failure), else its kind's; a Python
    error that is not nspod's: NOT_FOUND for a missing file, DEADLINE_EXCEEDED for a timeout,
    else INTERNAL."""
    if isinstance(error, Failure):
        return error.code
    if isinstance(error, Error):
        return KIND_CODES[kind_of(error)]
    if isinstance(error, FileNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


def message_of(error: BaseException) -> str:
    if isinstance(error, Error):
        hint = getattr(error, "hint", None)
        text = str(error)
        useful = hint and hint != Error.hint and not isinstance(error, Failure)  # not "rerun with --debug"
        return f"{text} (hint: {hint})" if useful else text
    return f"{type(error).__name__}: {error}"


F = TypeVar("F", bound=Callable[..., Any])


def answering(method: F) -> F:
    """Run a servicer method; answer its failure with the status code of :func:`code_of`."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as error:  # every failure becomes a status, never a traceback to the client
            code = code_of(error)
            if code is grpc.StatusCode.INTERNAL and not isinstance(error, Error):
                log.exception("%s failed", method.__name__)
            abort(context, code, message_of(error))

    return wrapper  # type: ignore[return-value]


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # grpc's abort always raises


def unimplemented(what: str, owner: str) -> Failure:
    return Failure(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not implemented yet ({owner})")
