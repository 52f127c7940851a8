"""Reading lmd's settings: which file, the environment, flags; errors in words; sources.

Precedence, highest first: values passed in code (command-line flags, tests, the demo),
environment variables (`LMD_WORKER__LEASE_SECONDS` style, `__` between section and key; lists
and tables as JSON), the TOML file, then the defaults in `daemon.settings.model` (documented in
`config/lmd.toml`). The file is the first of: `--config PATH`, `$LMD_CONFIG`, `./lmd.toml` in
the working directory (what `lmd demo` leaves behind: `cd lmd-demo && lmd status` just works),
the user's `$XDG_CONFIG_HOME/lmd/lmd.toml` (`~/.config/lmd/lmd.toml`), `/etc/lmd/lmd.toml`;
the last three only when they exist (`find_config`, which `lmd config show` reports).

A wrong value must stop lmd at start with the key, the value, what was expected and where it came
from (file, environment variable or command-line flag) — never with a traceback: `load_settings`
turns pydantic's and pydantic-settings' errors into one readable `SettingsError`.
`describe_sources` tells `lmd config show` where every effective value came from.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError as SourceError

from daemon.settings.model import ACTIVE_CONFIG, ENV_PREFIX, Settings

ENV_CONFIG = "LMD_CONFIG"
SYSTEM_CONFIG = Path("/etc/lmd/lmd.toml")
LOCAL_CONFIG = "lmd.toml"
"""Looked for in the working directory, after `$LMD_CONFIG` and before the user's file."""


class SettingsError(Exception):
    """The configuration is unusable; the message names every bad key and value."""


@dataclass(frozen=True, slots=True)
class ConfigChoice:
    """The configuration file in use (None: defaults and environment only) and why that one."""

    path: Path | None
    found_by: str


def user_config() -> Path:
    """`$XDG_CONFIG_HOME/lmd/lmd.toml`, `~/.config/lmd/lmd.toml` when the variable is unset."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lmd" / "lmd.toml"


def find_config(explicit: Path | None) -> ConfigChoice:
    """Which file applies: `--config`, `$LMD_CONFIG`, `./lmd.toml`, the user's, the system's.

    The first two are taken as given (a missing file is then an error, reported by
    `load_settings`); the others only when they are files."""
    if explicit is not None:
        return ConfigChoice(explicit, "flag --config")
    env = os.environ.get(ENV_CONFIG)
    if env:
        return ConfigChoice(Path(env), f"env {ENV_CONFIG}")
    try:
        here: list[tuple[Path, str]] = [(Path.cwd() / LOCAL_CONFIG, "working directory")]
    except OSError:  # the working directory was removed under us
        here = []
    for path, found_by in (*here, (user_config(), "user file"), (SYSTEM_CONFIG, "system file")):
        if path.is_file():
            return ConfigChoice(path, found_by)
    return ConfigChoice(None, "none found: defaults and environment")


def resolve_config_path(explicit: Path | None) -> Path | None:
    """The configuration file that applies (`find_config`), or None."""
    return find_config(explicit).path


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(
    config_path: Path | None = None, *, flags: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build and validate the settings, or raise `SettingsError` with a readable message.

    `overrides` win over everything (tests, the demo, command-line flags); `flags` names the
    command-line flag behind an overridden dotted key (`{"logging.level": "--log-level"}`) so
    errors and `lmd config show` can say where a value came from.
    """
    path = resolve_config_path(config_path)
    if path is not None:
        read_toml(path)  # report unreadable/invalid files in our own words first
    ACTIVE_CONFIG["path"] = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, path, flags or {})) from None
    except SourceError as exc:
        # pydantic-settings gave up reading the environment before validation (a list or table
        # key whose LMD_ variable is not JSON); its message names neither variable nor value.
        lines = _env_problems() or [f"  {exc}: {exc.__cause__ or ''}".rstrip(": ")]
        raise SettingsError("\n".join(["invalid configuration:", *lines])) from None
    finally:
        ACTIVE_CONFIG["path"] = None


def _explain(exc: ValidationError, path: Path | None, flags: Mapping[str, str]) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (see config/lmd.toml for the documented keys)"
        source = _source_of(key, path, flags)
        lines.append(f"  {key}{shown}: {message} [{source}]")
    return "\n".join(lines)


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "__").upper()


def _env_var_for(key: str) -> str | None:
    """The LMD_ variable that set `key` or a table/list holding it: an error in one item
    (`worker.windows.0`) comes from `LMD_WORKER__WINDOWS`, a whole section from `LMD_WORKER`."""
    parts = key.split(".")
    environ = {name.upper() for name in os.environ}
    for end in range(len(parts), 0, -1):
        name = _env_name(".".join(parts[:end]))
        if name in environ:
            return name
    return None


def _annotation_of(key: str) -> Any:
    """The declared type of a dotted settings key, or None when there is no such key."""
    model: Any = Settings
    annotation: Any = None
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        annotation = fields[part].annotation
        model = next((a for a in (annotation, *get_args(annotation)) if _is_model(a)), None)
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_ENV_EXAMPLES = {
    "worker.windows": """'["01:00-07:00"]'""",
    "restorer.params": """'{"tile": 512}'""",
}


def _json_example(key: str) -> str | None:
    """How a list or table key is written in an LMD_ variable (JSON), or None for a scalar."""
    annotation = _annotation_of(key)
    union = get_origin(annotation) in (Union, types.UnionType)
    for kind in (annotation, *(get_args(annotation) if union else ())):
        if get_origin(kind) is list:
            return _ENV_EXAMPLES.get(key, """'["first", "second"]'""")
        if get_origin(kind) is dict or _is_model(kind):
            return _ENV_EXAMPLES.get(key, """'{"key": "value"}'""")
    return None


def _env_problems() -> list[str]:
    """One line per LMD_ variable of a list or table key whose value is not JSON."""
    lines = []
    for name, raw in sorted(os.environ.items()):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == ENV_CONFIG:
            continue
        key = name[len(ENV_PREFIX):].lower().replace("__", ".")
        example = _json_example(key)
        if example is None:
            continue
        try:
            json.loads(raw)
        except ValueError:
            lines.append(
                f"  {key} = {raw!r}: a list or table in the environment is written as JSON,"
                f" e.g. {name}={example} [env {name}]"
            )
    return lines


def _lookup(data: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    """Follow a dotted key through tables and, for errors in one item (`worker.windows.1`),
    list indexes, so a bad item in the file is not reported as a default."""
    node: Any = data
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def _flag_for(key: str, flags: Mapping[str, str]) -> str | None:
    return next((flag for k, flag in flags.items() if key == k or key.startswith(k + ".")), None)


def _source_of(key: str, path: Path | None, flags: Mapping[str, str] | None = None) -> str:
    flag = _flag_for(key, flags or {})
    if flag is not None:
        return f"flag {flag}"
    env = _env_var_for(key)
    if env is not None:
        return f"env {env}"
    if path is not None:
        try:
            found, _ = _lookup(read_toml(path), key)
        except SettingsError:
            found = False
        if found:
            return f"file {path}"
    return "default"


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _flatten(f"{prefix}.{name}" if prefix else name, getattr(value, name))
    else:
        yield prefix, value


def describe_sources(
    settings: Settings, config_path: Path | None, flags: Mapping[str, str] | None = None
) -> list[tuple[str, Any, str]]:
    """Rows of (key, effective value, where it came from) for `lmd config show`."""
    path = resolve_config_path(config_path)
    file_data = read_toml(path) if path is not None else {}
    rows = []
    for key, value in _flatten("", settings):
        flag = _flag_for(key, flags or {})
        if flag is not None:
            source = f"flag {flag}"
        elif _env_name(key) in os.environ:
            source = f"env {_env_name(key)}"
        elif path is not None and _lookup(file_data, key)[0]:
            source = f"file {path}"
        elif key in {"database_url", "output.tree", "output.backup_dir"}:
            source = "derived from state_dir"
        else:
            source = "default"
        rows.append((key, value, source))
    return rows
