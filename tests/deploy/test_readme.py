"""The README's "Try it", run as a newcomer would paste it (against the suite's broker).

The block runs in bash from the repository root, as written, except for three things a test
must change: the port (a free one instead of 8080, through HERALD_BIND, which `make run` and
`make ready` both read), the log file (in the test's directory) and the broker
(HERALD_KAFKA_BOOTSTRAP, so `make run` starts none). Then the README's own `kill %1 %2`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

from ..processes import ROOT, free_port

README = ROOT / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, language: str = "") -> list[str]:
    """The fenced code blocks of ``text`` whose info string is ``language``."""
    found: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if current is None and line.startswith("```"):
            info, current = line[3:].strip(), []
        elif current is not None and line.startswith("```"):
            if info == language:
                found.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return found


def test_try_it_works_as_pasted(kafka_bootstrap: str, tmp_path: Path) -> None:
    try_it = section("Try it")
    [steps] = blocks(try_it, "sh")
    [shown] = blocks(try_it, "")  # what the README says comes out
    port = free_port()
    script = steps.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    script = script.replace("herald.log", str(tmp_path / "herald.log"))
    assert "8080" not in script
    # Where a reader looks at the output and then types the README's `kill %1 %2`: the test
    # says when (a line on stdin), once it has seen what the README promises.
    stop = next(line for line in re.findall(r"`([^`]*)`", try_it) if line.startswith("kill "))
    script += f"\nread -r _\n{stop}\nwait\n"
    env = {
        **os.environ,
        "HERALD_BIND": f"127.0.0.1:{port}",
        "HERALD_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    out = ""
    try:
        # Until the stream has printed the event (each line as it comes: the stream never ends).
        for line in shell.stdout:
            out += line
            if line.startswith("data: ") and '"headline"' in line:
                break
        shell.stdin.write("\n")
        shell.stdin.flush()
        rest, errors = shell.communicate(timeout=60)
        out += rest
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert shell.returncode == 0, (out, errors, (tmp_path / "herald.log").read_text())

    answer = json.loads(re.search(r'^\{"events".*\}$', out, flags=re.M)[0])  # type: ignore[index]
    [stored] = answer["events"]
    event = json.loads(next(x for x in out.splitlines() if x.startswith("data: "))[6:])
    assert (event["partition"], event["offset"]) == (stored["partition"], stored["offset"])
    assert event["type"] == "headline" and event["data"] == {"title": "Hello"}
    # The README's sample output: the same fields and the same partition ("news" always goes
    # to the same one of 3).
    sample = json.loads(next(x for x in shown.splitlines() if x.startswith('{"events"')))
    [sample_stored] = sample["events"]
    assert sample_stored.keys() == stored.keys()
    assert sample_stored["partition"] == stored["partition"]
    sample_event = json.loads(next(x for x in shown.splitlines() if x.startswith("data: "))[6:])
    assert sample_event.keys() == event.keys()

    # `kill %1 %2` stopped Herald too: nothing listens on its port any more.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
