"""Restorers by name, imported only when first asked for.

Why lazy: importing `core` must stay cheap and must not pull in torch or diffusers (the CLI,
the scanner and the tests import it). A restorer module registers itself with `@register(name)`
when it is imported; `_LAZY_MODULES` says which module to import for a name that has not
registered yet, so `get_restorer("livemoments")` imports `core.livemoments` on first use.

`validate_params(name, params)` answers "would restorer `name` take these parameters?" for the
settings and `lmd doctor`, at start rather than in every job. It asks the restorer's own schema
(`_PARAM_SCHEMAS`), whose module must be importable without torch or weights.

`weights_digest(name, options)` names the weights restorer `name` would load with `options`, for
job identities (the scanner) and for the worker's check that a job runs on the weights it was
enqueued with. It asks the restorer's own digest function (`_WEIGHTS_DIGESTS`); restorers
without weights (`guided`...) answer "none" without importing anything.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from core.api import RestoreError, Restorer

RestorerFactory = Callable[..., Restorer]
F = TypeVar("F", bound=Callable[..., Any])

_LAZY_MODULES: dict[str, str] = {
    "guided": "core.guided",
    "bicubic": "core.baselines",
    "sharpen": "core.baselines",
    "livemoments": "core.livemoments",
}
"""name → module that calls `@register(name)` when imported."""

_PARAM_SCHEMAS: dict[str, str] = {
    "guided": "core.guided:param_problems",
    "livemoments": "core.livemoments.params:param_problems",
}
"""name → `module:function` taking the parameters and returning the problems found, one
sentence each (raising RestoreError/ValueError also counts as one problem). Restorers without
an entry take no parameters that change their output beyond the plain-value rule."""

_WEIGHTS_DIGESTS: dict[str, tuple[str, str]] = {
    "livemoments": ("core.livemoments.digest:weights_digest", "checkpoint"),
}
"""name → (`module:function` taking the weights' path and returning their digest, the
constructor option that holds that path). Restorers without an entry have no weights."""

NO_WEIGHTS = "none"
"""The weights digest of a restorer without weights (or without a checkpoint configured)."""

_FACTORIES: dict[str, RestorerFactory] = {}
_LOCK = threading.Lock()


def register(name: str) -> Callable[[F], F]:
    """Class/function decorator: `@register("guided")` makes `get_restorer("guided")` call it.

    The decorated object is called with the options given to `get_restorer` and must return
    an object with `name` and `restore(request) -> RestoreResult`.
    """

    def decorate(factory: F) -> F:
        with _LOCK:
            existing = _FACTORIES.get(name)
            if existing is not None and existing is not factory:
                qual = getattr(existing, "__qualname__", repr(existing))
                raise ValueError(f"restorer {name!r} is already registered by {qual}")
            _FACTORIES[name] = factory
        return factory

    return decorate


def _load(name: str) -> RestorerFactory:
    factory = _FACTORIES.get(name)
    if factory is not None:
        return factory
    module = _LAZY_MODULES.get(name)
    if module is None:
        raise RestoreError(f"unknown restorer {name!r}; available: {', '.join(available())}")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise RestoreError(f"restorer {name!r} cannot be loaded: {exc}") from exc
    factory = _FACTORIES.get(name)
    if factory is None:
        raise RestoreError(f"module {module} did not register restorer {name!r}")
    return factory


def get_restorer(name: str, **options: Any) -> Restorer:
    """A new restorer instance; `options` go to its constructor (device, checkpoint, ...)."""
    return _load(name)(**options)


def is_available(name: str) -> bool:
    """Whether `name` is registered or known to a lazily imported module (does not import it)."""
    return name in _FACTORIES or name in _LAZY_MODULES


def available() -> list[str]:
    """All restorer names known, registered or lazy, sorted."""
    return sorted(set(_FACTORIES) | set(_LAZY_MODULES))


def _plain_value_problems(params: Mapping[str, Any]) -> list[str]:
    """Parameters come from TOML, `LMD_RESTORER__PARAMS` and `--param`, and are part of every
    job's identity (canonical JSON): they must be plain values, and numbers finite."""
    problems = []
    for key, value in params.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                problems.append(f"parameter {key} must be a finite number, got {item!r}")
            elif not isinstance(item, str | int | float | bool) and item is not None:
                problems.append(
                    f"parameter {key} must be a number, a string or true/false, got {item!r}"
                )
    return problems


def validate_params(name: str, params: Mapping[str, Any]) -> list[str]:
    """What is wrong with `params` for restorer `name`, one sentence each ([] when nothing).

    Only the schema's module is imported (for `guided`: NumPy and OpenCV, never torch); a
    schema that cannot be imported is reported as a problem, not raised.
    """
    if not is_available(name):
        return [f"unknown restorer {name!r}; available: {', '.join(available())}"]
    problems = _plain_value_problems(params)
    if problems:
        return [f"{name}: {problem}" for problem in problems]
    target = _PARAM_SCHEMAS.get(name)
    if target is None:
        return []
    module_name, _, function_name = target.partition(":")
    try:
        schema = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        return [f"{name}: the parameter schema {target} cannot be loaded: {exc}"]
    try:
        found = schema(dict(params))
    except (RestoreError, ValueError, TypeError) as exc:
        return [str(exc)]
    return [str(problem) for problem in found or []]


def weights_digest(name: str, options: Mapping[str, Any]) -> str:
    """The digest of the weights restorer `name` loads when built with `options` (the same
    options `get_restorer` takes), or `NO_WEIGHTS` when it has none. Only the digest's module
    is imported, and nothing for a restorer without weights; a damaged checkpoint raises that
    module's error."""
    entry = _WEIGHTS_DIGESTS.get(name)
    if entry is None:
        return NO_WEIGHTS
    target, option = entry
    path = options.get(option)
    if not path:
        return NO_WEIGHTS
    module_name, _, function_name = target.partition(":")
    digest: Callable[[Any], str] = getattr(importlib.import_module(module_name), function_name)
    return digest(path)
