"""How long after a file's last write its job is claimed, beyond ``watch.settle_seconds``.

Not a test: run it by hand when changing the watcher or the service loop and compare the figures
(docs/reliability.md).

    python benchmarks/settle_latency.py [--files 20] [--settle 1.0] [--polling]

It runs the real daemon (``eink-llm run`` in a child process: real watchdog observer, real SQLite file) on a
temporary folder, with the ``command`` backend set to a program that waits a little before answering, so each
job stays ``running`` long enough to be seen. For each file it writes the file in three chunks 50 ms apart
(like a sync client), notes the wall-clock time just after the last write, then reads the job's ``updated_at``
(set, in the daemon's wall clock, by the ``UPDATE`` that claims it) from the database while the job runs.

    excess = claimed_at - last_write - settle_seconds

is the delay the watcher and the service add on top of the settle period (target: at most 50 ms). The files
are dropped one at a time, each after the previous one was answered, so no file waits for a busy worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml


def _png(size: int = 64) -> bytes:
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("L", (size * 4, size * 5), 255)
    ImageDraw.Draw(image).line((10, 10, size * 3, size * 4), fill=0, width=4)
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _claimed_at(database: Path, name: str) -> float | None:
    try:
        connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return None
    try:
        row = connection.execute(
            "SELECT state, updated_at FROM jobs WHERE path LIKE ? ORDER BY job_id DESC LIMIT 1", (f"%/{name}",)
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    if row is None or row[0] != "running":
        return None
    return datetime.fromisoformat(row[1]).timestamp()


def _answered(database: Path, name: str) -> bool:
    connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=1)
    try:
        row = connection.execute(
            "SELECT state FROM jobs WHERE path LIKE ? ORDER BY job_id DESC LIMIT 1", (f"%/{name}",)
        ).fetchone()
    finally:
        connection.close()
    return row is not None and row[0] in ("done", "failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20, help="how many files (20)")
    parser.add_argument("--settle", type=float, default=1.0, help="watch.settle_seconds (1.0)")
    parser.add_argument("--polling", action="store_true", help="use the polling observer instead of inotify")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="settle-latency-") as temp:
        home = Path(temp)
        inbox = home / "inbox"
        inbox.mkdir()
        database = home / "db.sqlite3"
        answer = "import sys, time; sys.stdin.buffer.read(); time.sleep(0.3); print('An answer.')"
        config = {
            "watch": {"folders": [str(inbox)], "settle_seconds": args.settle, "polling": args.polling},
            "storage": {"database": str(database)},
            "llm": {"backend": "command", "options": {"command": [sys.executable, "-c", answer]}},
            "logging": {"format": "json", "level": "warning"},
        }
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EINK_LLM", "NOTIFY_SOCKET", "WATCHDOG"))}
        env["HOME"] = str(home)
        log = (home / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "eink_llm", "run", "-c", str(home / "config.yaml")],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not database.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # let the first scan and the observer start
            png = _png()
            excess: list[float] = []
            for number in range(args.files):
                name = f"q{number:03d}.png"
                third = len(png) // 3
                with (inbox / name).open("wb") as handle:
                    for start in (0, third, 2 * third):
                        handle.write(png[start : start + third if start < 2 * third else None])
                        handle.flush()
                        if start < 2 * third:
                            time.sleep(0.05)
                    last_write = time.time()
                claimed = None
                deadline = time.monotonic() + args.settle + 30
                while claimed is None and time.monotonic() < deadline:
                    claimed = _claimed_at(database, name)
                    if claimed is None:
                        time.sleep(0.002)
                if claimed is None:
                    print(f"{name}: never seen running", file=sys.stderr)
                    continue
                excess.append((claimed - last_write - args.settle) * 1000)
                while not _answered(database, name) and time.monotonic() < deadline:
                    time.sleep(0.02)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
            log.close()

    if not excess:
        print("no measurement", file=sys.stderr)
        return 1
    ordered = sorted(excess)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    observer = "polling" if args.polling else "inotify"
    print(f"settle_seconds {args.settle}, {observer}, {len(excess)} files: last write -> job claimed, beyond settle")
    print(
        f"  min {ordered[0]:6.1f} ms   median {statistics.median(ordered):6.1f} ms   "
        f"p90 {p90:6.1f} ms   max {ordered[-1]:6.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
