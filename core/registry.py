"""Restorers by name, imported only when first asked for.

Why lazy: importing `core` must stay cheap and must not pull in torch or diffusers (the CLI,
the scanner and the tests import it). A restorer module registers itself with `@register(name)`
when it is imported; `_LAZY_MODULES` says which module to import for a name that has not
registered yet, so `get_restorer("livemoments")` imports `core.livemoments` on first use.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
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
