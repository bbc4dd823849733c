"""A stand-in answering program for the ``command`` backend: the counterpart of the fake HTTP server.

Typical use::

    command = FakeCommand(tmp_path)
    command.script({"exit": 75, "stderr": "busy"})   # the next run fails that way; later runs answer normally
    backend = create_backend(BackendSettings("command", extra={"command": command.argv}))
    ...
    assert command.requests[-1]["pages"][0]["media_type"] == "image/png"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("command_script.py")


class FakeCommand:
    """A real program run in a real subprocess, scripted through files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-I", str(SCRIPT), str(self.directory)]

    def script(self, *steps: dict[str, Any]) -> FakeCommand:
        """Queue behaviours, one per run, in order (see ``command_script.py`` for the keys)."""
        with (self.directory / "queue.jsonl").open("a", encoding="utf-8") as queue:
            for step in steps:
                queue.write(json.dumps(step) + "\n")
        return self

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON requests the program received, oldest first."""
        folder = self.directory / "requests"
        if not folder.exists():
            return []
        return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.iterdir())]
