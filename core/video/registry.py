"""Clip restorers by name, imported only when first asked for.

Why a registry beside `core.registry` rather than inside it: a clip restorer has another
contract (`core.video.api.ClipRestorer`: an iterator of frames in, an iterator out) than a
still restorer (`core.api.Restorer`: one image in, one out), so the two name spaces must not
mix: `lmd restore --restorer guided-video` would otherwise be accepted and fail on its first
frame. It works the same way: a module registers its factory with `@register_clip(name)` when
imported, and `_LAZY_MODULES` says which module to import for a name not registered yet.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from core.api import RestoreError
from core.video.api import ClipRestorer

F = TypeVar("F", bound=Callable[..., Any])

_LAZY_MODULES: dict[str, str] = {
    "guided-video": "core.video.guided_video",
    "livemoments-video": "core.video.livemoments_video",
}
"""name → module that calls `@register_clip(name)` when imported."""

_PARAM_SCHEMAS: dict[str, str] = {
    "guided-video": "core.video.params:param_problems",
    "livemoments-video": "core.video.livemoments_params:param_problems",
}
"""name → `module:function` returning the problems found in a parameter mapping."""

_WEIGHTS_OF: dict[str, str] = {
    "livemoments-video": "livemoments",
}
"""name → the still restorer whose weights the clip restorer loads (`core.registry`'s digest
of them is the clip restorer's, from the same `checkpoint` option or parameter) and which it
takes as `still=` to run its frames on."""

_FACTORIES: dict[str, Callable[..., ClipRestorer]] = {}
_LOCK = threading.Lock()


def register_clip(name: str) -> Callable[[F], F]:
    """Class decorator: `@register_clip("guided-video")` makes `get_clip_restorer` build it."""

    def decorate(factory: F) -> F:
        with _LOCK:
            existing = _FACTORIES.get(name)
            if existing is not None and existing is not factory:
                raise ValueError(f"clip restorer {name!r} is already registered by {existing!r}")
            _FACTORIES[name] = factory
        return factory

    return decorate


def available_clip_restorers() -> list[str]:
    """All clip restorer names, registered or lazy, sorted."""
    return sorted(set(_FACTORIES) | set(_LAZY_MODULES))


def get_clip_restorer(name: str, **options: Any) -> ClipRestorer:
    """A new clip restorer; `options` go to its constructor (and are checked there)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        module = _LAZY_MODULES.get(name)
        if module is None:
            raise RestoreError(
                f"unknown clip restorer {name!r}; available: "
                f"{', '.join(available_clip_restorers())}"
            )
        importlib.import_module(module)
        factory = _FACTORIES.get(name)
        if factory is None:
            raise RestoreError(f"module {module} did not register clip restorer {name!r}")
    return factory(**options)


def validate_clip_params(name: str, params: Mapping[str, Any]) -> list[str]:
    """What is wrong with `params` for clip restorer `name`, one sentence each."""
    if name not in available_clip_restorers():
        return [f"unknown clip restorer {name!r}; available: "
                f"{', '.join(available_clip_restorers())}"]
    target = _PARAM_SCHEMAS.get(name)
    if target is None:
        return []
    module_name, _, function_name = target.partition(":")
    schema = getattr(importlib.import_module(module_name), function_name)
    return [str(problem) for problem in schema(dict(params))]


def still_restorer_of(name: str) -> str | None:
    """The still restorer clip restorer `name` runs its frames on ("livemoments" for
    `livemoments-video`, None for `guided-video`): a process that holds that still restorer
    already can hand it over (`still=`), so its models are loaded once for both."""
    return _WEIGHTS_OF.get(name)


def clip_weights_digest(name: str, options: Mapping[str, Any]) -> str:
    """The digest of the weights clip restorer `name` loads with `options` (its constructor
    options and parameters: `checkpoint` for `livemoments-video`), or `core.registry`'s
    "none" for a restorer without weights (`guided-video`). A job's identity takes it, so new
    weights make a new job, as for stills."""
    from core.registry import NO_WEIGHTS, weights_digest

    still = _WEIGHTS_OF.get(name)
    return NO_WEIGHTS if still is None else weights_digest(still, options)
