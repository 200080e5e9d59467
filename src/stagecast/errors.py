"""One error type for the whole platform, rendered as RFC 9457 problem+json.

Services raise `AppError` subclasses; the HTTP handlers here turn them (and FastAPI's own 404,
405 and validation errors, and anything unexpected) into one shape. Socket handlers reuse
`AppError.to_problem()` for their acks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    """Return the `type` URI of a problem code."""
    return f"urn:stagecast:problem:{code.lower().replace('_', '-')}"


class AppError(Exception):
    """An error a client can act on: it carries the HTTP status and a stable machine code."""

    status: int = 400
    code: str = "BAD_REQUEST"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_problem(self, *, instance: str | None = None) -> dict[str, Any]:
        """Return the RFC 9457 problem object (also used in socket acks)."""
        body: dict[str, Any] = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            # Seeds 000 and 002 read the sentence as `message`: an RFC 9457 extension member.
            "message": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class ValidationFailed(AppError):
    status, code, title = 422, "VALIDATION_ERROR", "Request validation failed"


class MalformedRequest(AppError):
    status, code, title = 400, "MALFORMED_REQUEST", "The request body could not be parsed"


class AuthenticationRequired(AppError):
    status, code, title = 401, "AUTHENTICATION_REQUIRED", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="stagecast"'})
        super().__init__(detail, **kwargs)


class InvalidCredentials(AppError):
    status, code, title = 401, "INVALID_CREDENTIALS", "Invalid email or password"


class InvalidToken(AuthenticationRequired):
    code, title = "INVALID_TOKEN", "The token is invalid or expired"


class PermissionDenied(AppError):
    status, code, title = 403, "PERMISSION_DENIED", "Permission denied"


class NotFound(AppError):
    status, code, title = 404, "NOT_FOUND", "Resource not found"


class MethodNotAllowed(AppError):
    status, code, title = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class Conflict(AppError):
    status, code, title = 409, "CONFLICT", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Request body too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class RateLimitExceeded(AppError):
    status, code, title = 429, "RATE_LIMIT_EXCEEDED", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, title = 503, "SERVICE_UNAVAILABLE", "Service unavailable"


class DatabaseBusy(ServiceUnavailable):
    code, title = "DATABASE_BUSY", "The database is busy"


class InternalError(AppError):
    status, code, title = 500, "INTERNAL_ERROR", "Internal server error"


_STATUS_ERRORS: dict[int, type[AppError]] = {
    400: MalformedRequest,
    401: AuthenticationRequired,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimitExceeded,
    503: ServiceUnavailable,
}


def problem_response(error: AppError, request: Request | None = None) -> JSONResponse:
    """Render an AppError as a problem+json response."""
    instance = request.url.path if request is not None else None
    body = error.to_problem(instance=instance)
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(
        body, status_code=error.status, headers=error.headers, media_type=PROBLEM_CONTENT_TYPE
    )


def _field_path(loc: Sequence[Any]) -> str:
    # Drop the "body"/"query" prefix FastAPI adds; clients name fields, not request parts.
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in {"body", "query", "path"} else loc
    return ".".join(str(p) for p in parts) or str(loc[0] if loc else "")


def field_errors(raw: Sequence[Any], *, where: str | None = None) -> list[dict[str, str]]:
    """pydantic's error list as our `errors` entries; `where` names the request part when the
    locations do not start with it (a model validated outside FastAPI)."""
    return [
        {
            "field": _field_path(e.get("loc", ()))
            if where is None
            else ".".join(str(p) for p in e.get("loc", ())),
            "in": where or str(e.get("loc", ("body",))[0]),
            "message": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "invalid")),
        }
        for e in raw
    ]


def validation_error(exc: RequestValidationError) -> AppError:
    """Turn FastAPI's validation error into ours (malformed JSON is a 400, not a 422)."""
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        return MalformedRequest("The request body is not valid JSON")
    return ValidationFailed("One or more fields are invalid", errors=field_errors(raw))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can produce as problem+json."""

    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, AppError):  # registered for AppError only
            raise exc
        return problem_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):
            raise exc
        return problem_response(validation_error(exc), request)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        error_type = _STATUS_ERRORS.get(exc.status_code)
        if error_type is None:
            error: AppError = AppError(str(exc.detail))
            error.status = exc.status_code
        elif exc.status_code == 404:
            error = error_type("No resource at this address")
        elif exc.status_code == 405:
            error = error_type(f"{request.method} is not allowed here")
        else:
            error = error_type()
        error.headers.update(exc.headers or {})
        return problem_response(error, request)

    async def on_database_busy(request: Request, exc: Exception) -> JSONResponse:
        # A write waited its whole turn for the database (SQLite's one writer, or a full
        # PostgreSQL pool): nothing was done, the client may try again.
        log.warning("database_busy", path=request.url.path, method=request.method)
        busy = DatabaseBusy("The database is busy; try again shortly")
        busy.headers["Retry-After"] = "1"
        return problem_response(busy, request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log everything with the request id; tell the client nothing about the internals.
        log.exception("unhandled_error", path=request.url.path, method=request.method)
        return problem_response(
            InternalError("An unexpected error occurred; quote the request id to the operator"),
            request,
        )

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(SQLAlchemyTimeoutError, on_database_busy)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "message": {"type": "string", "description": "the detail again, as seeds 000/002 read it"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "in": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses."""
    return {
        status: {
            "description": _describe(status),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _describe(status: int) -> str:
    error_type = _STATUS_ERRORS.get(status)
    if status == 422:
        return ValidationFailed.title
    if status == 500:
        return InternalError.title
    return error_type.title if error_type else "Error"
