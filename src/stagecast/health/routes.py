"""Health, readiness and metrics endpoints (seed 003)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from stagecast.deps import RuntimeDep
from stagecast.errors import AuthenticationRequired, problem_responses
from stagecast.health import service as health

router = APIRouter(tags=["health"])
probes_router = APIRouter(tags=["health"])

_HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "Unhealthy: the database or the disk is down"}
}


@router.get("/health")
async def health_check() -> dict[str, str]:
    """Cheap check that the process answers."""
    return {"status": "ok"}


@router.get("/health/deep", responses=_HEALTH_RESPONSES)
async def deep_health(runtime: RuntimeDep) -> JSONResponse:
    """Database, disk, ffmpeg and Redis: 200 healthy or degraded, 503 unhealthy."""
    report = await health.deep_health(runtime)
    return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200)


@probes_router.get("/healthz")
async def liveness() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


@probes_router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readiness(runtime: RuntimeDep) -> JSONResponse:
    """Readiness probe: `ready`, `degraded` (serving) or `not_ready` (503)."""
    state, details = await health.readiness(runtime)
    return JSONResponse(
        {"status": state, **({"details": details} if details else {})},
        status_code=503 if state == "not_ready" else 200,
    )


@probes_router.get("/metrics", responses=problem_responses(401), response_class=Response)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics; needs `Authorization: Bearer <metrics_token>` when one is set."""
    token = runtime.settings.metrics_token
    if token and request.headers.get("authorization") != f"Bearer {token}":
        raise AuthenticationRequired("The metrics token is required")
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
