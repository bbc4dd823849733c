"""Every profile's effective settings, merged and validated once, and which of them answers a file.

The rules themselves are the schema's: :meth:`Config.profile` merges one profile's overrides onto the top-level
sections, :meth:`Config.profile_for` names the profile of a file's (sub)folder. :class:`Profiles` is the one
place that applies them to every profile, for the pipeline, the backends it is given and the start-up checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from eink_llm.config.schema import Config, Profile
from eink_llm.errors import ConfigError


class Profiles(Mapping[str, Profile]):
    """Every profile's effective settings by name, ``default`` first."""

    def __init__(self, config: Config, *, skip_invalid: bool = False) -> None:
        """Raises :class:`ConfigError` for the first profile that does not validate; with ``skip_invalid``, leaves
        it out instead (for the start-up checks, which report every problem themselves)."""
        self._config = config
        self._by_name: dict[str, Profile] = {}
        for name in config.profile_names():
            try:
                self._by_name[name] = config.profile(name)
            except ConfigError:
                if not skip_invalid:
                    raise

    def for_path(self, path: Path) -> Profile:
        """The profile that answers a file: that of its deepest configured (sub)folder, else ``default``."""
        return self._by_name[self._config.profile_for(path)]

    def __getitem__(self, name: str) -> Profile:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
