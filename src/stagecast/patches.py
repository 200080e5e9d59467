"""Partial updates of stored settings objects, and reading them back safely.

Settings (a channel's, its chat's, a user's preferences) are pydantic models stored as JSON.
A PATCH is a merge patch (RFC 7396): a value replaces, an explicit `null` resets the field to
its default, a nested object merges the same way. The result is validated before it is
stored, so nothing invalid is written; data that no longer validates (an older release, a
manual edit) is read back with the bad fields at their defaults and one logged warning, so it
can never take a channel down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import structlog
from cachetools import TTLCache
from pydantic import BaseModel, ValidationError

from stagecast.errors import ValidationFailed, field_errors

log = structlog.get_logger(__name__)

Model = TypeVar("Model", bound=BaseModel)
# A warning per stored object an hour, not one per read.
_warned: TTLCache[str, bool] = TTLCache(maxsize=4096, ttl=3600)
_MAX_REPAIRS = 50


def merge_patch(current: Model, changes: Mapping[str, Any]) -> Model:
    """Return `current` with a merge patch applied and validated; 422 if the result is not
    valid (a nested field set to null is reset, never stored as null)."""
    try:
        return type(current).model_validate(_merged(current, changes))
    except ValidationError as exc:
        raise ValidationFailed(
            "One or more fields are invalid", errors=field_errors(exc.errors(), where="body")
        ) from exc


def _merged(current: BaseModel, changes: Mapping[str, Any]) -> dict[str, Any]:
    values = current.model_dump()
    fields = type(current).model_fields
    for name, value in changes.items():
        if name not in fields:
            values[name] = value  # validation names the unknown field
            continue
        if value is None:
            default = fields[name].get_default(call_default_factory=True)
            values[name] = default.model_dump() if isinstance(default, BaseModel) else default
            continue
        nested = getattr(current, name)
        if isinstance(value, Mapping) and isinstance(nested, BaseModel):
            values[name] = _merged(nested, value)
        else:
            values[name] = value
    return values


def load_stored(model: type[Model], stored: Mapping[str, Any], *, what: str) -> Model:
    """Validate stored settings; fields that fail fall back to their defaults (logged once
    per `what` an hour) instead of failing every read."""
    try:
        return model.model_validate(stored)
    except ValidationError as exc:
        errors = exc.errors()
    repaired: dict[str, Any] = _copy(stored)
    dropped: list[str] = []
    for _ in range(_MAX_REPAIRS):
        for error in errors:
            dropped.append(".".join(str(p) for p in error.get("loc", ())))
            _mark(repaired, error.get("loc", ()))
        _sweep(repaired)
        try:
            loaded = model.model_validate(repaired)
        except ValidationError as exc:
            errors = exc.errors()
            continue
        if what not in _warned:
            _warned[what] = True
            log.warning("stored_settings_invalid", what=what, reset_to_defaults=dropped)
        return loaded
    log.warning("stored_settings_unusable", what=what)
    return model()


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_GONE = object()


def _mark(values: Any, loc: tuple[int | str, ...]) -> None:
    """Mark what a validation error points at (a whole list entry for an item's field) for
    `_sweep` to remove: several errors in one list then do not shift each other's places."""
    target = values
    for index, step in enumerate(loc):
        inner = _child(target, step)
        if inner is _GONE:
            return
        if index == len(loc) - 1 or not isinstance(inner, (dict, list)) or isinstance(target, list):
            target[step] = _GONE
            return
        target = inner


def _child(container: Any, step: int | str) -> Any:
    if isinstance(container, dict) and step in container:
        return container[step]
    if isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container):
        return container[step]
    return _GONE


def _sweep(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is _GONE]:
            del value[key]
        for inner in value.values():
            _sweep(inner)
    elif isinstance(value, list):
        value[:] = [v for v in value if v is not _GONE]
        for inner in value:
            _sweep(inner)
