"""The README and docs/ stay true to the code: settings, links, versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service import __version__
from service.config import RETIRED, variables
from service.request_log import REASONS

from .image_steps import ROOT

DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_every_setting_is_documented_in_configuration() -> None:
    text = CONFIGURATION.read_text()
    missing = [name for name in variables() if f"`{name}`" not in text]
    assert not missing, f"docs/configuration.md does not name {missing}"


def test_every_reason_a_connection_closes_for_is_documented_in_operations() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [reason for reason in REASONS if f"| `{reason}` |" not in text]
    assert not missing, f"docs/operations.md does not explain {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_variable_a_document_names_exists(doc: Path) -> None:
    # A retired name may be named, as retired (the error for it says what replaced it), and
    # one Kubernetes would set (deployment.md says how not to).
    known = {*variables(), *(f"HERALD_{name.upper()}" for name in RETIRED), "HERALD_SERVICE_HOST"}
    named = set(re.findall(r"\bHERALD_[A-Z0-9_]*[A-Z0-9]\b", doc.read_text()))
    assert named <= known, f"{doc.name} names {sorted(named - known)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(doc: Path) -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    broken = [t for t in local if not (doc.parent / t).exists()]
    assert not broken, f"{doc.name} links to {broken}"


def test_the_changelog_has_this_version() -> None:
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()
