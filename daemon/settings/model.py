"""The settings model: every key lmd reads, its type, default and allowed range.

Every key is documented in `config/lmd.toml`. The bounds are what the code can use, not taste:
numbers must be finite (`inf` and `nan` are valid TOML floats), durations short enough for a
datetime (a lease of 1e12 s overflowed one in `lmd work`), counts inside the job table's INTEGER
columns (an attempt count of 1e20 overflowed the database in `lmd scan`), and the restorer's
parameters pass the restorer's own schema (`core.registry.validate_params`; a NaN `tone_sigma`
failed every job). Reading the sources and explaining errors is `daemon.settings.load`.
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
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

from daemon.publish.settings import HooksSettings, ImmichSettings, PhotoPrismSettings

ENV_PREFIX = "LMD_"
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

HOUR = 3600.0
DAY = 24 * HOUR
MAX_ATTEMPTS = 1000
"""Far below the job table's INTEGER column (32-bit on PostgreSQL), and more than any flaky
failure needs."""
MAX_FILE_BYTES = 2**40
"""1 TiB: far beyond any photo or Live Photo video, still a number every file API takes."""


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
    # digiKam/darktable/Immich-style NAME.ext.xmp beside each output (daemon.publish.xmp_sidecar)
    xmp_sidecar: bool = False
    # how a beside output is named: lmd's suffix, or a name PhotoPrism stacks with the original
    # (daemon.output.plan.beside_output_name)
    naming: Literal["suffix", "photoprism"] = "suffix"

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not value or "/" in value or "\x00" in value or value in {".", ".."}:
            raise ValueError("expected a short file-name suffix such as '_lmd'")
        return value

    @model_validator(mode="after")
    def _naming_is_beside(self) -> OutputSettings:
        if self.naming == "photoprism" and (self.mode, self.location) != ("sidecar", "beside"):
            raise ValueError(
                "output.naming = 'photoprism' names an output beside its original: set "
                "output.mode = 'sidecar' and output.location = 'beside'"
            )
        return self


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


class ReviewSettings(_Section):
    """`[review]`: whether restorations wait for a person, and the page (daemon/review/)."""

    required: bool = False
    serve: bool = False
    host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    port: int = Field(default=8765, ge=1, le=65535)
    token: SecretStr | None = None
    min_flow_confidence: float = Field(default=0.5, ge=0, le=1)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("a review token needs at least 16 characters")
        return value


class VideoSettings(_Section):
    """`[video]`: restoring the Live Photo's video too, as a job of its own (opt-in: a clip
    costs many times a still). `which` picks the assets: those whose key frame was reselected,
    or every Live Photo and Motion Photo with a video. The clip restorer's parameters pass its
    own schema (`core.video.validate_clip_params`) at load, as `[restorer] params` do."""

    enabled: bool = False
    which: Literal["reselected", "all"] = "reselected"
    restorer: Literal["guided-video", "livemoments-video"] = "guided-video"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("restorer")
        if value and isinstance(name, str):
            from core.video.registry import validate_clip_params

            problems = validate_clip_params(name, value)
            if problems:
                raise ValueError("; ".join(problems))
        return value


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
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    hooks: HooksSettings = Field(default_factory=HooksSettings)
    immich: ImmichSettings = Field(default_factory=ImmichSettings)
    photoprism: PhotoPrismSettings = Field(default_factory=PhotoPrismSettings)

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
        path = ACTIVE_CONFIG.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The TOML path for the settings being built. pydantic-settings asks for sources on the class,
# so the path chosen by `load_settings` is handed over here for the duration of one load.
ACTIVE_CONFIG: dict[str, Path | None] = {"path": None}


