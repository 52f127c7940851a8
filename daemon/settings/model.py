"""lmd's configuration: one pydantic-settings model, read from TOML and `LMD_*` variables.

Precedence, highest first: values passed in code, environment variables (`LMD_WORKER__LEASE_SECONDS`
style, `__` between section and key), the TOML file (`--config PATH`, else `$LMD_CONFIG`, else
`/etc/lmd/lmd.toml` when it exists), then the defaults documented in `config/lmd.toml`.

A wrong value must stop lmd at start with the key, the value, what was expected and where it came
from (file, environment variable or command-line flag) — never with a traceback, and never later
in a job: numbers must be finite and inside ranges the code can use (a lease of 1e12 s overflows
a datetime, an attempt count beyond the store's INTEGER column overflows the database), windows
must parse, and the restorer's parameters are checked by the restorer's own schema
(`core.registry.validate_params`), so `lmd config show` and `lmd doctor` report them too.
`load_settings` turns pydantic's and pydantic-settings' errors into one readable `SettingsError`;
`describe_sources` tells `lmd config show` where every effective value came from.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

ENV_PREFIX = "LMD_"
ENV_CONFIG = "LMD_CONFIG"
SYSTEM_CONFIG = Path("/etc/lmd/lmd.toml")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

HOUR = 3600.0
DAY = 24 * HOUR
MAX_ATTEMPTS = 1000
"""Far below the job table's INTEGER column (32-bit on PostgreSQL), and more than any flaky
failure needs."""
MAX_FILE_BYTES = 2**40
"""1 TiB: far beyond any photo or Live Photo video, still a number every file API takes."""


class SettingsError(Exception):
    """The configuration is unusable; the message names every bad key and value."""


def default_state_dir() -> Path:
    """`/var/lib/lmd` for the system service (root), the XDG state dir for a person."""
    if os.geteuid() == 0:
        return Path("/var/lib/lmd")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lmd"


def _no_nul(path: Path) -> Path:
    if "\x00" in str(path):
        raise ValueError("a path cannot contain a NUL character")
    return path


FilePath = Annotated[Path, AfterValidator(_no_nul)]
"""A path from the config: anything the file system can name (NUL is the one thing it cannot)."""


class _Section(BaseModel):
    # allow_inf_nan=False: `inf` and `nan` are valid TOML floats but no duration or size.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RestorerSettings(_Section):
    name: Literal["guided", "livemoments"] = "guided"
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoint: FilePath | None = None
    device: str = "auto"
    low_memory: bool = False
    compile: bool = False
    idle_unload_seconds: float = Field(default=600.0, ge=0, le=7 * DAY)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Ask the restorer's own schema (without loading the restorer: no torch, no weights),
        so a NaN or a mistyped parameter stops lmd at start instead of failing every job."""
        name = info.data.get("name")
        if value and isinstance(name, str):
            from core.registry import validate_params

            problems = validate_params(name, value)
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in {"auto", "cpu", "mps"} and not re.fullmatch(r"cuda(:\d+)?", value):
            raise ValueError("expected 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
        return value

    @model_validator(mode="after")
    def _checkpoint_for_livemoments(self) -> RestorerSettings:
        if self.name == "livemoments" and self.checkpoint is None:
            raise ValueError(
                "restorer.name = 'livemoments' needs restorer.checkpoint (a directory)"
            )
        return self


class OutputSettings(_Section):
    mode: Literal["sidecar", "replace"] = "sidecar"
    location: Literal["tree", "beside"] = "tree"
    tree: FilePath | None = None
    suffix: str = Field(default="_lmd", max_length=64)
    backup_dir: FilePath | None = None
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    heic_quality: int = Field(default=90, ge=1, le=100)

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not value or "/" in value or "\x00" in value or value in {".", ".."}:
            raise ValueError("expected a short file-name suffix such as '_lmd'")
        return value


class ScanSettings(_Section):
    schedule: str = "0 3 * * *"
    on_start: bool = True
    ignore: list[str] = Field(
        default_factory=lambda: ["@eaDir", "#recycle", "#snapshot", ".stfolder", ".stversions"]
    )
    max_file_bytes: int = Field(default=2 * 1024**3, gt=0, le=MAX_FILE_BYTES)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"expected a 5-field crontab expression ({exc})") from None
        return value


class WatcherSettings(_Section):
    mode: Literal["auto", "inotify", "polling", "off"] = "auto"
    polling_interval: float = Field(default=60.0, gt=0, le=DAY)
    debounce_seconds: float = Field(default=5.0, ge=0, le=HOUR)


class WorkerSettings(_Section):
    windows: list[str] = Field(default_factory=list)
    lease_seconds: float = Field(default=120.0, gt=0, le=DAY)
    heartbeat_seconds: float = Field(default=20.0, gt=0, le=DAY)
    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    # The worker doubles the wait per deferral (up to 32×): still well inside a datetime.
    defer_seconds: float = Field(default=300.0, gt=0, le=7 * DAY)
    poll_seconds: float = Field(default=5.0, gt=0, le=HOUR)
    # The job table's lease_owner / workers.id columns are VARCHAR(255).
    id: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for window in value:
            parse_window(window)
        return value

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> WorkerSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("worker.heartbeat_seconds must be shorter than worker.lease_seconds")
        return self


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def parse_window(text: str) -> tuple[time, time]:
    """Parse "01:00-07:00" into (start, end); a window may wrap past midnight."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"expected a time window like '01:00-07:00', got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (0 <= h1 < 24 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
        raise ValueError(f"hours must be 00-23 and minutes 00-59 in {text!r}")
    end = time(0, 0) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


class Settings(BaseSettings):
    """Everything lmd reads at start. Every key is documented in `config/lmd.toml`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    library: FilePath | None = None
    state_dir: FilePath = Field(default_factory=default_state_dir)
    database_url: str = ""
    restorer: RestorerSettings = Field(default_factory=RestorerSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    watcher: WatcherSettings = Field(default_factory=WatcherSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _derived_paths(self) -> Settings:
        """Fill paths that default relative to `state_dir`, so one setting moves them all."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'lmd.sqlite3'}"
        if self.output.tree is None:
            self.output.tree = self.state_dir / "restored"
        if self.output.backup_dir is None:
            self.output.backup_dir = self.state_dir / "backups"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _ACTIVE_CONFIG.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The TOML path for the settings being built. pydantic-settings asks for sources on the class,
# so the path chosen by `load_settings` is handed over here for the duration of one load.
_ACTIVE_CONFIG: dict[str, Path | None] = {"path": None}


def resolve_config_path(explicit: Path | None) -> Path | None:
    """`--config` wins, then `$LMD_CONFIG`, then `/etc/lmd/lmd.toml` if present."""
    if explicit is not None:
        return explicit
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


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
    _ACTIVE_CONFIG["path"] = path
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
        _ACTIVE_CONFIG["path"] = None


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
