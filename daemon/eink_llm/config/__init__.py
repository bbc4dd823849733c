"""The configuration: one YAML file, validated into typed objects.

This module is the only home of options. Each field's ``description`` is its documentation; a test keeps
``config.example.yaml`` valid and in step with the schema. Loading reports every problem at once with its
path (``watch.settle_seconds: …``), rejects unknown keys, and fills ``${ENV_VAR}`` references so secrets stay
out of the file.
"""

from __future__ import annotations

from eink_llm.config.files import (
    LoadedConfig,
    candidate_paths,
    default_database_path,
    load_config,
    masked_dump,
    parse_config_file,
)
from eink_llm.config.profiles import Profiles
from eink_llm.config.schema import (
    APP,
    DEFAULT_PROFILE,
    DEFAULT_SYSTEM_PROMPT,
    ENV_CONFIG,
    BudgetConfig,
    Config,
    ContextConfig,
    FolderConfig,
    InputConfig,
    LLMConfig,
    LoggingConfig,
    OutputConfig,
    Profile,
    ProfileConfig,
    RetryConfig,
    ServiceConfig,
    StatusPageConfig,
    StorageConfig,
    WatchConfig,
)

__all__ = [
    "APP",
    "DEFAULT_PROFILE",
    "DEFAULT_SYSTEM_PROMPT",
    "ENV_CONFIG",
    "BudgetConfig",
    "Config",
    "ContextConfig",
    "FolderConfig",
    "InputConfig",
    "LLMConfig",
    "LoadedConfig",
    "LoggingConfig",
    "OutputConfig",
    "Profile",
    "ProfileConfig",
    "Profiles",
    "RetryConfig",
    "ServiceConfig",
    "StatusPageConfig",
    "StorageConfig",
    "WatchConfig",
    "candidate_paths",
    "default_database_path",
    "load_config",
    "masked_dump",
    "parse_config_file",
]
