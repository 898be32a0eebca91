"""What deploy/container/Dockerfile does, read from the file, so tests can do the same steps.

``install_step()`` finds the final stage's RUN of install-wheel.sh and says which repository file
it runs, with which arguments, as which user, and which USER the image runs as:

    step = install_step()
    subprocess.run(step.command(wheel, venv), check=True)   # what the image build runs
    # then run ``venv/bin/herald`` as step.user
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuation lines joined


def instructions(dockerfile: Path = DOCKERFILE) -> list[Instruction]:
    """Every instruction, in order; comments dropped, continuation lines joined."""
    result: list[Instruction] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment (or a parser directive), also inside a continuation
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, args = pending.strip().partition(" ")
            result.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(dockerfile: Path = DOCKERFILE) -> list[list[Instruction]]:
    """The instructions of each stage, each list starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions(dockerfile):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exposed_port(dockerfile: Path = DOCKERFILE) -> int:
    """The image's one EXPOSEd port."""
    (port,) = [i.args for i in stages(dockerfile)[-1] if i.keyword == "EXPOSE"]
    return int(port.split("/")[0])


def _uid(user: str) -> str:
    return user.split(":")[0]


@dataclass(frozen=True)
class InstallStep:
    script: Path  # the repository file the RUN executes (deploy/container/install-wheel.sh)
    shell: str  # what runs it ("sh")
    wheel: str  # the wheel argument as the Dockerfile writes it (a glob)
    venv: str  # the virtual environment it creates (/opt/herald)
    install_user: str  # the user the RUN runs as ("root" when no USER precedes it)
    user: str  # the image's final USER ("10001:10001")
    env: dict[str, str] = field(default_factory=dict)  # the final stage's ENV, unexpanded

    def command(self, wheel: Path | str, venv: Path | str) -> list[str]:
        """The image's install command, with this wheel and environment instead."""
        return [self.shell, str(self.script), str(wheel), str(venv)]

    @property
    def uid(self) -> int:
        return int(_uid(self.user))


def _mounts(options: list[str]) -> dict[str, tuple[str | None, str]]:
    """RUN --mount options: target -> (stage or None for the build context, source)."""
    mounts: dict[str, tuple[str | None, str]] = {}
    for option in options:
        if not option.startswith("--mount="):
            continue
        spec = dict(part.split("=", 1) for part in option.removeprefix("--mount=").split(","))
        mounts[spec["target"]] = (spec.get("from"), spec.get("source", "/"))
    return mounts


def _copies(stage: list[Instruction]) -> dict[str, str]:
    """COPY from the build context into the stage: destination -> source (single files)."""
    copies: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
            if len(words) == 2:
                copies[words[1]] = words[0]
    return copies


def install_step(dockerfile: Path = DOCKERFILE) -> InstallStep:
    final = stages(dockerfile)[-1]
    user = "root"
    env: dict[str, str] = {}
    found: tuple[str, list[str], dict[str, tuple[str | None, str]]] | None = None
    for instruction in final:
        if instruction.keyword == "USER":
            user = instruction.args
        elif instruction.keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(instruction.args))
        elif instruction.keyword == "RUN" and "install-wheel.sh" in instruction.args:
            assert not instruction.args.startswith("["), "the install RUN must be shell form"
            words = shlex.split(instruction.args)
            options = [word for word in words if word.startswith("--")]
            found = (user, words[len(options) :], _mounts(options))
    assert found is not None, f"no RUN of install-wheel.sh in the final stage of {dockerfile}"
    install_user, command, mounts = found
    shell, script_in_image, wheel, venv = command
    stage, source = mounts.get(script_in_image, (None, _copies(final).get(script_in_image, "")))
    assert stage is None and source, f"{script_in_image} does not come from the build context"
    assert re.fullmatch(r"[\w.-]+", shell), shell
    return InstallStep(ROOT / source, shell, wheel, venv, install_user, user, env)
