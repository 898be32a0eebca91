"""deploy/kafka/kafka.sh: one clear line when java or mvn is missing; reuse of cached jars."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..processes import KAFKA_SCRIPT

TOOLS = ("bash", "dirname", "cat", "cksum", "rm", "mkdir", "grep", "sleep", "kill", "seq")


def sandbox(tmp_path: Path, *, java: bool, mvn: bool, cached: bool) -> tuple[Path, dict[str, str]]:
    """A copy of deploy/kafka and a PATH holding only basic tools (and java/mvn if asked)."""
    kafka_dir = tmp_path / "kafka"
    kafka_dir.mkdir()
    for name in ("kafka.sh", "pom.xml", "server.properties", "log4j2.properties"):
        shutil.copy(KAFKA_SCRIPT.parent / name, kafka_dir / name)
    if cached:
        (kafka_dir / ".cache" / "lib").mkdir(parents=True)
        with (kafka_dir / "pom.xml").open("rb") as pom:
            marker = subprocess.run(
                ["cksum"], stdin=pom, capture_output=True, check=True
            ).stdout.decode()
        (kafka_dir / ".cache" / "lib" / ".complete").write_text(marker)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wanted = list(TOOLS) + (["java"] if java else []) + (["mvn"] if mvn else [])
    for tool in wanted:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "KAFKA_DATA_DIR": str(tmp_path / "data")}
    return kafka_dir, env


@pytest.mark.parametrize(
    ("java", "mvn", "cached", "missing"),
    [(False, True, True, "java"), (True, False, False, "mvn")],
)
def test_missing_tool_is_one_clear_line(
    tmp_path: Path, java: bool, mvn: bool, cached: bool, missing: str
) -> None:
    kafka_dir, env = sandbox(tmp_path, java=java, mvn=mvn, cached=cached)
    result = subprocess.run(
        ["bash", str(kafka_dir / "kafka.sh"), "up"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"'{missing}' not found" in lines[0] and "install" in lines[0]


def test_fetch_reuses_cached_jars_without_maven(tmp_path: Path) -> None:
    kafka_dir, env = sandbox(tmp_path, java=False, mvn=False, cached=True)
    result = subprocess.run(
        ["bash", str(kafka_dir / "kafka.sh"), "fetch"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
