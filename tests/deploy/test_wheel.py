"""The package as a user gets it, against a broker that wants SCRAM over TLS.

Built with ``python -m build`` (an sdist, then the wheel from it), installed by the image's
own step (deploy/container/install-wheel.sh, read from the Dockerfile) into a fresh venv
outside the source tree, and run from there as the image's unprivileged user, in the image's
environment, from ``/``: nothing of the source tree can be imported by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from service import __version__

from ..clients import publish, sse
from ..processes import HeraldProcess, serving
from ..secure_kafka import SCRAM_MECHANISM, SecureKafkaBroker
from ..tokens import token
from ..waiting import eventually
from .image_steps import ROOT, InstallStep, install_step

SECRET = "wheel-test-secret-0123456789abcdef"
SYSTEM_PYTHON = "/usr/bin/python3.11"  # `make test-deps` installs its venv module


@dataclass(frozen=True)
class Installed:
    home: Path  # world-readable, outside the source tree: the venv and what Herald reads
    venv: Path
    step: InstallStep
    env: dict[str, str]  # the image's environment, and the broker's settings

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``herald ARGS`` as the image's user, from /, with ``extra`` HERALD_* settings."""
        return subprocess.run(
            [str(self.venv / "bin" / "herald"), *args],
            cwd="/",
            env={**self.env, **{f"HERALD_{k.upper()}": v for k, v in extra.items()}},
            user=self.step.uid,
            group=self.step.uid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=60,
        )


class InstalledHerald(HeraldProcess):
    """``herald serve`` from the installed venv, as the image runs it."""

    def __init__(self, installed: Installed, log_path: Path, **settings: str) -> None:
        super().__init__(installed.env["HERALD_KAFKA_BOOTSTRAP"], log_path, **settings)
        # The image's environment and this server's settings; nothing else of this process's.
        ours = {k: v for k, v in self.env.items() if k.startswith("HERALD_")}
        self.env = {**installed.env, **ours}
        self.installed = installed
        self.cwd = Path("/")
        self.uid = installed.step.uid

    def command(self) -> list[str]:
        return [str(self.installed.venv / "bin" / "herald"), "serve"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("herald-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, secure_kafka: SecureKafkaBroker) -> Iterator[Installed]:
    # Not under pytest's own temporary directory: that one only its owner may enter.
    home = Path(tempfile.mkdtemp(prefix="herald-wheel-"))
    try:
        home.chmod(0o755)
        step = install_step()
        assert step.uid != 0
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # Debian's python3.11, like the image's /usr/local/bin/python3 one every user may run
        # (the interpreter running the tests may live where only root can reach it).
        clean["PYTHON"] = SYSTEM_PYTHON
        venv = home / "venv"
        subprocess.run(step.command(wheel, venv), check=True, env=clean, capture_output=True)
        ca_file = home / "kafka-ca.crt"
        shutil.copyfile(secure_kafka.ca_file, ca_file)
        ca_file.chmod(0o644)
        # A mounted secret: readable by the user Herald runs as, and nobody else.
        password_file = home / "kafka-password"
        password_file.write_text(secure_kafka.password + "\n")
        password_file.chmod(0o400)
        os.chown(password_file, step.uid, step.uid)
        image_env = {k: v for k, v in step.env.items() if k not in ("PATH", "HERALD_BIND")}
        env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": "/nonexistent",
            **image_env,
            "HERALD_KAFKA_BOOTSTRAP": secure_kafka.bootstrap,
            "HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HERALD_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "HERALD_KAFKA_SASL_USERNAME": secure_kafka.username,
            "HERALD_KAFKA_SASL_PASSWORD_FILE": str(password_file),
            "HERALD_KAFKA_SSL_CA_FILE": str(ca_file),
        }
        yield Installed(home, venv, step, env)
    finally:
        shutil.rmtree(home)


@pytest.fixture(scope="module")
async def herald(
    installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InstalledHerald]:
    log_path = tmp_path_factory.mktemp("installed") / "herald.log"
    served = InstalledHerald(installed, log_path, topics="it-.*", access_log="true")
    async with serving(served) as server:
        yield server


def test_the_package_comes_from_the_venv_and_says_its_version(installed: Installed) -> None:
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import service; print(service.__file__)"],
        cwd="/",
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)
    version = installed.run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"herald {__version__}"


async def test_the_installed_herald_serves_over_sasl_ssl(herald: InstalledHerald) -> None:
    topic = "it-wheel"
    async with sse(herald.base_url, f"/v1/topics/{topic}/stream") as stream:
        [stored] = await publish(herald.base_url, topic, {"type": "hello", "data": {"n": 1}})
        event = (await stream.next_event()).json()
    assert (event["partition"], event["offset"]) == (stored["partition"], stored["offset"])
    assert event["data"] == {"n": 1}

    async with httpx.AsyncClient(base_url=herald.base_url) as client:
        openapi = await client.get("/openapi.yaml")
        demo = await client.get("/")
        script = await client.get("/client/herald.js")
    assert openapi.status_code == 200 and f"version: {__version__}" in openapi.text
    assert demo.status_code == 200 and demo.headers["content-type"].startswith("text/html")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


async def test_its_log_is_json_lines_without_the_password_or_a_token(
    herald: InstalledHerald, installed: Installed, secure_kafka: SecureKafkaBroker
) -> None:
    reader = token("alice", subscribe=["it-.*"])
    async with httpx.AsyncClient(base_url=herald.base_url) as client:
        await client.get(
            f"/v1/topics/it-wheel/snapshot?access_token={reader}",
            headers={"Authorization": f"Bearer {reader}", "X-Request-Id": "wheel-1"},
        )

    def records() -> list[dict[str, Any]]:
        lines = herald.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines]  # the image sets HERALD_LOG_FORMAT=json

    await eventually(lambda: any(r.get("request_id") == "wheel-1" for r in records()))
    assert any("Herald on http://" in record["message"] for record in records())
    [access] = [r for r in records() if r.get("request_id") == "wheel-1"]
    assert access["path"] == "/v1/topics/it-wheel/snapshot?access_token=***"
    log = herald.log_path.read_text()
    for secret in (secure_kafka.password, reader, "Bearer"):
        assert secret not in log


def test_check_config_masks_secrets_and_reaches_kafka(
    installed: Installed, secure_kafka: SecureKafkaBroker
) -> None:
    checked = installed.run(
        "check-config", "--kafka", jwt_secret=SECRET, kafka_sasl_password=secure_kafka.password
    )
    assert checked.returncode == 0, checked.stderr
    shown = dict(line.split("=", 1) for line in checked.stdout.splitlines() if "=" in line)
    assert shown["HERALD_JWT_SECRET"] == shown["HERALD_KAFKA_SASL_PASSWORD"] == "********"
    assert shown["HERALD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert f"kafka: reachable at {secure_kafka.bootstrap}" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr
    assert secure_kafka.password not in checked.stdout + checked.stderr


def test_check_config_says_why_kafka_refuses(installed: Installed) -> None:
    wrong = "wrong-password-for-the-check"
    checked = installed.run(
        "check-config", "--kafka", kafka_sasl_password_file="", kafka_sasl_password=wrong
    )
    assert checked.returncode == 1
    assert "the broker refused the login" in checked.stdout
    assert wrong not in checked.stdout + checked.stderr


def test_check_config_refuses_an_unknown_setting(installed: Installed) -> None:
    checked = installed.run("check-config", public_topic="x")  # HERALD_PUBLIC_TOPICS, misspelt
    assert checked.returncode == 2
    assert "HERALD_PUBLIC_TOPIC" in checked.stderr and "HERALD_PUBLIC_TOPICS" in checked.stderr


def test_token_mints_what_the_configured_secret_verifies(installed: Installed) -> None:
    minted = installed.run(
        "token", "--sub", "alice", "--subscribe", "it-.*", "--ttl", "60", jwt_secret=SECRET
    )
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(minted.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["herald"]["subscribe"] == ["it-.*"]
    assert claims["exp"] - claims["iat"] == 60
