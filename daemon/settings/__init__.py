"""lmd's configuration: one pydantic-settings model (`model`), read from TOML, `LMD_*`
variables and command-line flags, validated at load with errors that name the key, the value and
its source (`load`). Import the names from here.
"""

from daemon.settings.load import (
    ENV_CONFIG,
    SYSTEM_CONFIG,
    SettingsError,
    describe_sources,
    load_settings,
    read_toml,
    resolve_config_path,
)
from daemon.settings.model import (
    DAY,
    ENV_PREFIX,
    HOUR,
    MAX_ATTEMPTS,
    MAX_FILE_BYTES,
    FilePath,
    LoggingSettings,
    OutputSettings,
    RestorerSettings,
    ReviewSettings,
    ScanSettings,
    Settings,
    WatcherSettings,
    WorkerSettings,
    default_state_dir,
    parse_window,
)

__all__ = [
    "DAY",
    "ENV_CONFIG",
    "ENV_PREFIX",
    "HOUR",
    "MAX_ATTEMPTS",
    "MAX_FILE_BYTES",
    "SYSTEM_CONFIG",
    "FilePath",
    "LoggingSettings",
    "OutputSettings",
    "RestorerSettings",
    "ReviewSettings",
    "ScanSettings",
    "Settings",
    "SettingsError",
    "WatcherSettings",
    "WorkerSettings",
    "default_state_dir",
    "describe_sources",
    "load_settings",
    "parse_window",
    "read_toml",
    "resolve_config_path",
]
