"""deploy/container: the Dockerfile (hadolint, its shape), the install script, compose.yaml.

No container engine runs here: the image is checked as a file, the install script with a
stand-in interpreter, compose.yaml as YAML and its Varnish configuration with varnishd -C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.config import variables

from .image_steps import DOCKERFILE, ROOT, Instruction, exposed_port, install_step, stages

CONTAINER = ROOT / "deploy" / "container"
COMPOSE = CONTAINER / "compose.yaml"
DOCKERIGNORE = CONTAINER / "Dockerfile.dockerignore"
SHIPPED_VCL = ROOT / "deploy" / "varnish" / "herald.vcl"

# What the deployment files may set: Herald's own variables (an unknown one stops it).
HERALD_SETTINGS = set(variables())


def final_stage() -> list[Instruction]:
    return stages()[-1]


def only(stage: list[Instruction], keyword: str) -> str:
    found = [i.args for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def venv_tool(name: str) -> str:
    """A console script installed beside this interpreter (the project's .venv), or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not found: pip install the dev extras (pyproject.toml)"
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # An explicit configuration (and no HADOLINT_* variables) so that no config file or
    # environment of the machine can silence a rule; style findings count too.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [venv_tool("hadolint"), "--config", str(config), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_two_stages_on_one_pinned_slim_python() -> None:
    build, final = stages()
    images = [stage[0].args.split()[0] for stage in (build, final)]
    assert images[0] == images[1], images
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", images[0])
    assert any(i.keyword == "RUN" and "python -m build --wheel" in i.args for i in build), (
        "the first stage builds the wheel"
    )


def test_runtime_contract() -> None:
    final = final_stage()
    assert json.loads(only(final, "ENTRYPOINT")) == ["herald"]
    assert json.loads(only(final, "CMD")) == ["serve"]
    assert only(final, "STOPSIGNAL") == "SIGTERM"
    assert exposed_port() == 8080
    env = install_step().env
    assert env["HERALD_BIND"] == f"0.0.0.0:{exposed_port()}"
    assert env["HERALD_LOG_FORMAT"] == "json"
    assert set(k for k in env if k.startswith("HERALD_")) <= HERALD_SETTINGS


def test_healthcheck_asks_readyz_with_python() -> None:
    healthcheck = only(final_stage(), "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "the slim image has no curl: python's urllib"
    urls = re.findall(r"https?://[^'\"]+", argv[2])
    assert urls == [f"http://127.0.0.1:{exposed_port()}/readyz"]


def test_install_runs_as_root_and_the_image_as_a_user() -> None:
    step = install_step()
    assert step.script == CONTAINER / "install-wheel.sh"
    assert os.access(step.script, os.X_OK)
    assert step.install_user == "root", "the code is owned by root, not by the user running it"
    assert re.fullmatch(r"\d+:\d+", step.user), "numeric USER, so runAsNonRoot can verify it"
    assert step.uid != 0
    assert step.venv == "/opt/herald"
    assert step.env["PATH"].startswith(f"{step.venv}/bin:")
    # The wheel it installs is what the build stage wrote.
    outdir = re.search(r"--outdir (\S+)", " ".join(i.args for i in stages()[0])).group(1)
    mounts = [i.args for i in final_stage() if i.keyword == "RUN" and "install-wheel" in i.args]
    assert f"from=build,source={outdir}," in mounts[0]
    assert re.fullmatch(r"/tmp/dist/herald-\*\.whl", step.wheel)


def fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in interpreter that logs its arguments; `-m venv DIR` gives DIR a copy of it."""
    log = tmp_path / "calls.log"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$0 $*" >>"{log}"\n'
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; fi\n'
    )
    python.chmod(0o755)
    return python, log


def test_install_script_makes_a_venv_and_installs_the_wheel_with_http3(tmp_path: Path) -> None:
    python, log = fake_python(tmp_path)
    wheel = tmp_path / "herald-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    venv = tmp_path / "venv"
    step = install_step()
    result = subprocess.run(
        step.command(wheel, venv),
        env={**os.environ, "PYTHON": str(python)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        f"{python} -m venv {venv}",
        f"{venv}/bin/python -m pip install --no-cache-dir --no-input --disable-pip-version-check "
        f"{wheel}[http3,tracing]",
    ]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [([], 2, "usage:"), (["herald.tar.gz", "v"], 2, "not a wheel"), (["no.whl", "v"], 1, "no.whl")],
)
def test_install_script_refuses_bad_arguments(
    tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    result = subprocess.run(
        ["sh", str(install_step().script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == status
    assert message in result.stderr
    assert not (tmp_path / "v").exists()


def test_dockerignore_lets_in_only_what_the_build_needs() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing (.venv, .git, caches) unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "service"} <= allowed
    # The build context files the final stage mounts are let in too.
    for instruction in final_stage():
        for source in re.findall(r"--mount=type=bind,source=([^,]+),target", instruction.args):
            assert source in allowed, source


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_names_kafka_herald_and_varnish(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "herald", "varnish"}
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", services["kafka"]["image"])
    assert services["varnish"]["image"] == "varnish:7"


def test_compose_kafka_is_a_single_kraft_node(compose: dict) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "healthcheck" in compose["services"]["kafka"]


def test_compose_herald_is_built_from_the_dockerfile(compose: dict) -> None:
    herald = compose["services"]["herald"]
    context = (CONTAINER / herald["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / herald["build"]["dockerfile"]).resolve() == DOCKERFILE
    env = herald["environment"]
    assert env["HERALD_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert set(env) <= HERALD_SETTINGS
    assert "HERALD_PUBLISH_OPEN" not in env, "open publishing is a commented-out dev option"
    assert re.search(r"#\s*HERALD_PUBLISH_OPEN: \"true\"", COMPOSE.read_text())
    assert herald["depends_on"]["kafka"]["condition"] == "service_healthy"
    # The port the image exposes, published on the host's loopback only.
    targets = [port.rsplit(":", 1) for port in herald["ports"]]
    assert [(host.startswith("127.0.0.1:"), int(target)) for host, target in targets] == [
        (True, exposed_port())
    ]
    assert herald["read_only"] is True and herald["cap_drop"] == ["ALL"]


def test_compose_varnish_uses_the_shipped_vcl(compose: dict) -> None:
    varnish = compose["services"]["varnish"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":") for volume in varnish["volumes"])
    sources = {target: (CONTAINER / source).resolve() for source, target in mounts.items()}
    assert sources["/etc/varnish/herald.vcl"] == SHIPPED_VCL
    default = sources["/etc/varnish/default.vcl"]
    assert default.parent == CONTAINER
    text = default.read_text()
    assert 'include "herald.vcl";' in text
    port = exposed_port()
    assert re.search(rf'\.host = "herald";\s*\.port = "{port}";', text)
    assert [port.split(":")[-1] for port in varnish["ports"]] == ["80"]


def test_compose_vcl_compiles_with_the_shipped_one(tmp_path: Path) -> None:
    varnishd = shutil.which("varnishd") or (
        "/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None
    )
    assert varnishd, "varnishd not found: make test-deps installs Debian's varnish"
    # The compose host name resolves only on compose's network: compile against loopback.
    compose_vcl = (CONTAINER / "varnish-compose.vcl").read_text()
    (tmp_path / "default.vcl").write_text(compose_vcl.replace('"herald"', '"127.0.0.1"'))
    shutil.copy(SHIPPED_VCL, tmp_path / "herald.vcl")
    result = subprocess.run(
        [
            varnishd,
            "-C",
            "-j",
            "none",  # no jail: compile as this user, who can read tmp_path
            "-n",
            str(tmp_path / "work"),
            "-p",
            f"vcl_path={tmp_path}",
            "-f",
            str(tmp_path / "default.vcl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
