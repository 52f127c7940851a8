"""The `[hooks]`, `[immich]` and `[photoprism]` sections of lmd.toml.

They live here, beside the code that reads them, until `daemon.settings.Settings` gains the
three fields (`hooks: HooksSettings = Field(default_factory=HooksSettings)`, likewise
`immich` and `photoprism`). They follow that module's rules: unknown keys and non-finite
numbers are refused, every number has a range the code can use, and a section that is
switched on must be complete (a URL without its key stops lmd at start, not in a job).
Secrets are `SecretStr`, so `lmd config show` and logs print `**********`.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

HOUR = 3600.0


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _command(value: str | list[str]) -> str | list[str]:
    parts = [value] if isinstance(value, str) else value
    if not parts or not all(part.strip() for part in parts[:1]):
        raise ValueError("a hook command cannot be empty")
    if any("\x00" in part for part in parts):
        raise ValueError("a hook command cannot contain a NUL character")
    return value


def _command_shape(value: object) -> object:
    """One message for a value of neither shape (pydantic's would be one line per union
    member, named by its type, which no person wrote)."""
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(part, str) for part in value)
    ):
        return value
    raise ValueError(
        "a hook is a command line (a string) or a list of strings (the program and its"
        " arguments)"
    )


HookCommand = Annotated[
    str | list[str], BeforeValidator(_command_shape), AfterValidator(_command)
]
"""A string is one shell command line (run by /bin/sh -c: pipes and variables work); a list
is an argv run without a shell. Job facts never enter the command line itself: they arrive
on stdin and in `LMD_*` variables, so a file name cannot inject anything."""


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL with a host, e.g. 'http://nas:2342'")
    if parts.query or parts.fragment:
        raise ValueError("the URL cannot carry a query or fragment")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_base_url)]


class HooksSettings(_Section):
    """Commands run after each job; see `daemon.publish.hooks`."""

    on_success: HookCommand | None = None
    on_failure: HookCommand | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=HOUR)
    max_pending: int = Field(default=1000, ge=1, le=100_000)
    """Hook runs waiting behind a slow hook; past this the oldest are dropped (and logged)."""


class _Remote(_Section):
    timeout_seconds: float = Field(default=30.0, gt=0, le=HOUR)
    max_attempts: int = Field(default=6, ge=1, le=100)
    """Tries per request before the delivery is given up (and logged): 1, 2, 4, ... s apart."""
    backoff_seconds: float = Field(default=1.0, gt=0, le=HOUR)
    max_backoff_seconds: float = Field(default=300.0, gt=0, le=24 * HOUR)


class ImmichSettings(_Remote):
    """An Immich server to tell about each published still; see `daemon.publish.immich`."""

    url: BaseUrl | None = None
    api_key: SecretStr | None = None
    mode: Literal["upload", "rescan"] = "upload"
    device_id: str = Field(default="lmd", min_length=1, max_length=255)
    """Immich's `deviceId` for uploaded assets: lets a person find what lmd uploaded."""
    library_path: str | None = None
    """Where Immich sees lmd's library root (Docker mounts often differ: lmd's /srv/photos
    is Immich's /mnt/photos). Default: the same path. Used by mode = "rescan"."""

    @model_validator(mode="after")
    def _complete(self) -> ImmichSettings:
        if self.url is not None and self.api_key is None:
            raise ValueError("immich.url is set but immich.api_key is not (an API key)")
        return self


class PhotoPrismSettings(_Remote):
    """A PhotoPrism server whose index is refreshed; see `daemon.publish.photoprism`."""

    url: BaseUrl | None = None
    token: SecretStr | None = None
    timeout_seconds: float = Field(default=600.0, gt=0, le=HOUR)
    """PhotoPrism answers an index request when indexing has finished, so it waits longer."""
    originals: str | None = None
    """Local path of PhotoPrism's originals folder (the paths it indexes are relative to it).
    Default: lmd's library root."""

    @model_validator(mode="after")
    def _complete(self) -> PhotoPrismSettings:
        if self.url is not None and self.token is None:
            raise ValueError(
                "photoprism.url is set but photoprism.token is not (an app password or "
                "access token)"
            )
        return self
