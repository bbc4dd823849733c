"""docs/install.md, run: scripts/install-system into a temporary root (no systemd, no root, no network), then
the installed program checks the installed config, and the unit points at files that exist."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _unit(path: Path) -> dict[str, list[str]]:
    """Every key of a unit file with all its values (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux service")
def test_the_system_install_script_installs_what_the_guide_says(tmp_path: Path) -> None:
    root = tmp_path / "root"
    folder = "/srv/sync/tablet"
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "install-system"),
            "--root",
            str(root),
            "--folder",
            folder,
            "--no-accounts",
            "--offline-site",
            sysconfig.get_paths()["purelib"],
            "--python",
            sys.executable,
        ],
        capture_output=True,
        text=True,
        timeout=110,
        env={k: v for k, v in os.environ.items() if not k.startswith(("EINK_LLM", "PIP_"))},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "journalctl -u eink-llm -f" in result.stdout

    # 1. the program, where the unit's ExecStart looks for it
    unit = _unit(root / "etc/systemd/system/eink-llm.service")
    exec_start = unit["ExecStart"][0].split()
    assert exec_start[0] == "/usr/local/bin/eink-llm"
    link = root / "usr/local/bin/eink-llm"
    assert os.readlink(link) == "/opt/eink-llm/bin/eink-llm" and (root / "opt/eink-llm/bin/eink-llm").is_file()

    # 3, 4. the config and the keys: modes as the guide says
    config = root / "etc/eink-llm/config.yaml"
    env = root / "etc/eink-llm/env"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640 and stat.S_IMODE(env.stat().st_mode) == 0o600
    assert exec_start[-1] == "/etc/eink-llm/config.yaml" and unit["EnvironmentFile"] == ["-/etc/eink-llm/env"]
    assert f"    - {folder}\n" in config.read_text()

    # 5. the folder: setgid, group-writable
    shared = root / folder.lstrip("/")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2770

    # 6. the drop-in lets the service write there (and only there), replacing the example /srv/sync
    drop_in = _unit(root / "etc/systemd/system/eink-llm.service.d/install.conf")
    assert drop_in["ReadWritePaths"] == ["", folder]

    # 7. Documentation= names a file that exists
    for doc in unit["Documentation"][0].split():
        assert doc.startswith("file://") and (root / doc.removeprefix("file:///")).is_file(), doc
    assert _unit(ROOT / "systemd/eink-llm-user.service")["Documentation"] == unit["Documentation"]

    # the installed program accepts the installed config (the folder rewritten into the staging root)
    staged = tmp_path / "config.yaml"
    staged.write_text(config.read_text().replace(f"    - {folder}\n", f"    - {shared}\n"))
    checked = subprocess.run(
        [str(root / "opt/eink-llm/bin/eink-llm"), "check-config", "-c", str(staged)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("EINK_LLM")}, "STATE_DIRECTORY": str(tmp_path)},
    )
    assert checked.returncode == 0, checked.stderr
    assert str(shared) in checked.stdout

    # idempotent, and never overwrites the config or the keys
    env.write_text("OPENAI_API_KEY=sk-mine\n")
    again = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-system"), *result.args[2:]],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert again.returncode == 0, again.stderr
    assert env.read_text() == "OPENAI_API_KEY=sk-mine\n"


def test_the_guide_covers_what_a_server_admin_needs() -> None:
    guide = (ROOT / "docs" / "install.md").read_text()
    for needed in (
        "/opt/eink-llm",
        "useradd --system",
        "EnvironmentFile=",
        "0600",
        "setgid",
        "UMask",
        "journalctl -u eink-llm -f",
        "loginctl enable-linger",
        "## Upgrading",
        ".backup",
        "## Uninstalling",
    ):
        assert needed in guide, needed
