"""A scriptable answering program for the ``command`` backend's tests (run as ``python command_script.py DIR``).

It records the JSON request it reads on stdin as ``DIR/requests/NNNN.json``, then does what the next line of
``DIR/queue.jsonl`` says (consuming it), or answers normally when the queue is empty. A line is a JSON object:

``{"stdout": "...", "stderr": "...", "exit": 0, "sleep": 0.0, "child_pid_file": "path"}``

``sleep`` waits before answering; ``child_pid_file`` first starts a grandchild (``sleep 60``) and writes its pid
there, so a test can check that a timeout kills the whole process group. Standard library only: it runs in a
fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    state = Path(sys.argv[1])
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    requests = state / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    number = len(list(requests.iterdir())) + 1
    (requests / f"{number:04d}.json").write_text(json.dumps(request), encoding="utf-8")

    queue = state / "queue.jsonl"
    lines = queue.read_text(encoding="utf-8").splitlines() if queue.exists() else []
    step = json.loads(lines[0]) if lines else {}
    queue.write_text("".join(line + "\n" for line in lines[1:]), encoding="utf-8")

    if step.get("child_pid_file"):
        child = subprocess.Popen(["sleep", "60"])
        Path(step["child_pid_file"]).write_text(str(child.pid), encoding="utf-8")
    if step.get("sleep"):
        time.sleep(float(step["sleep"]))
    if "stdout" in step:
        sys.stdout.write(step["stdout"])
    else:
        pages = len(request.get("pages", []))
        text = f"# Answer {number}\n\nThe fake command received {pages} page image(s)."
        sys.stdout.write(json.dumps({"text": text, "usage": {"input_tokens": 100 + 765 * pages, "output_tokens": 9}}))
    sys.stderr.write(step.get("stderr", ""))
    return int(step.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
