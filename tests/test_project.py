"""The project's own promises about how it is installed and tested.

- `.ci/run` runs exactly the README's test command (the product card's rule).
- `requirements/test.lock` pins every runtime and test dependency that `pyproject.toml` names, at a version
  that `pyproject.toml` allows, with hashes: a dependency added or a floor raised without `scripts/lock`
  fails here with a message saying what to run, not later as an ImportError in an unrelated test.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    commands = [b.strip() for b in blocks if "pytest" in b]
    assert len(commands) == 1, f"expected one test command in the README, found {commands}"
    return commands[0]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    last = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")][-1]
    assert last.strip() == _readme_test_command()


def _locked() -> dict[str, list[tuple[Version, str]]]:
    """name -> [(version, marker text)], from the lock's requirement lines."""
    text = (ROOT / "requirements" / "test.lock").read_text(encoding="utf-8")
    pins: dict[str, list[tuple[Version, str]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = entry.splitlines()[0]
        if first.startswith("#") or "==" not in first:
            continue
        assert "--hash=sha256:" in entry, f"no hash for {first!r}"
        spec, _, marker = first.rstrip(" \\").partition(";")
        name, _, version = spec.strip().partition("==")
        pins.setdefault(canonicalize_name(name), []).append((Version(version), marker.strip()))
    return pins


def test_the_lock_pins_every_dependency_at_an_allowed_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins = _locked()
    env = default_environment()
    problems = []
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        versions = pins.get(canonicalize_name(req.name), [])
        if not versions:
            problems.append(f"{req.name} is not in requirements/test.lock")
        for version, _marker in versions:
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{req.name}=={version} in the lock is outside {req.specifier}")
        for extra in sorted(req.extras):
            if not versions:
                problems.append(f"{req.name}[{extra}]: its package is not locked")
    assert not problems, "run scripts/lock, then commit requirements/test.lock:\n" + "\n".join(problems)
