"""nspod's errors as gRPC status codes: the one table the CRI server answers failures with.

Every RPC handler runs under :func:`answering`; an expected failure (an ``Error`` of nspod's)
becomes its status code and its one-line message (with the hint), anything else INTERNAL with
the exception's type and text — never UNKNOWN with a traceback. Errors that carry a ``kind``
(the domain API's ``ErrorKind``) are mapped by it; older classes by their type.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from stage0.errors import Error

log = logging.getLogger("nspod.cri")

# the domain API's ErrorKind values (stage0/errors.py) → gRPC
KIND_CODES: dict[str, grpc.StatusCode] = {
    "not-found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "invalid-argument": grpc.StatusCode.INVALID_ARGUMENT,
    "failed-precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "permission-denied": grpc.StatusCode.PERMISSION_DENIED,
    "internal": grpc.StatusCode.INTERNAL,
    "deadline-exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
}

# classes that predate kinds, by name (importing each would load half of stage0 at start-up)
CLASS_CODES: dict[str, grpc.StatusCode] = {
    "UsageError": grpc.StatusCode.INVALID_ARGUMENT,
    "SchemaError": grpc.StatusCode.INVALID_ARGUMENT,
    "InputError": grpc.StatusCode.INVALID_ARGUMENT,
    "RenderError": grpc.StatusCode.INVALID_ARGUMENT,
    "PrepareError": grpc.StatusCode.INVALID_ARGUMENT,
    "PodNotFound": grpc.StatusCode.NOT_FOUND,
    "ImageNotFound": grpc.StatusCode.NOT_FOUND,
    "NotFound": grpc.StatusCode.NOT_FOUND,
    "UnitNotFound": grpc.StatusCode.NOT_FOUND,
    "AmbiguousImage": grpc.StatusCode.INVALID_ARGUMENT,
    "UnitExists": grpc.StatusCode.ALREADY_EXISTS,
    "AccessError": grpc.StatusCode.PERMISSION_DENIED,
    "AccessDenied": grpc.StatusCode.PERMISSION_DENIED,
    "BusUnavailable": grpc.StatusCode.UNAVAILABLE,
    "FetchError": grpc.StatusCode.UNAVAILABLE,
    "RegistryError": grpc.StatusCode.UNAVAILABLE,
    "DiskFull": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "SignatureError": grpc.StatusCode.PERMISSION_DENIED,
    "ExecTimeout": grpc.StatusCode.DEADLINE_EXCEEDED,
    "CosignError": grpc.StatusCode.PERMISSION_DENIED,  # an image a trusted key does not verify
}


class Failure(Error):
    """A failure the CRI layer itself finds, with its status code (a bad request, a missing ID)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def not_found(what: str, ident: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"{what} {ident!r} not found")


def invalid(message: str) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, message)


def code_of(error: BaseException) -> grpc.StatusCode:
    """The status code for ``error``: its own, its kind's, its class's (or a base's), else INTERNAL."""
    if isinstance(error, Failure):
        return error.code
    kind = getattr(error, "kind", None)
    if kind is not None and str(kind) in KIND_CODES:
        return KIND_CODES[str(kind)]
    for cls in type(error).__mro__:
        if cls.__name__ in CLASS_CODES:
            return CLASS_CODES[cls.__name__]
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
