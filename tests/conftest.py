"""Shared test fixtures: the generated speech files (scripts/make_fixtures.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "tests" / "fixtures" / "generated"


def _complete(d: Path) -> bool:
    index = d / "fixtures.json"
    if not index.is_file():
        return False
    try:
        names = json.loads(index.read_text())
    except ValueError:
        return False
    return all((d / name).is_file() for name in names)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures/generated/, made once by scripts/make_fixtures.sh if anything is missing.

    fixtures.json there maps each file name to {"speech": [[start_s, end_s], ...]}.
    """
    if not _complete(GENERATED):
        if not (shutil.which("espeak-ng") and shutil.which("sox")):
            pytest.skip("espeak-ng and sox are needed to generate the speech fixtures")
        subprocess.run(["bash", str(REPO / "scripts" / "make_fixtures.sh"), str(GENERATED)], check=True,
                       capture_output=True)
    return GENERATED
