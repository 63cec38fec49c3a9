"""A bench report records the versions its numbers depend on (device/bench/versions.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from device.bench import report, versions
from device.config import Settings


def _fake_dpkg_query(tmp_path: Path, body: str) -> None:
    tool = tmp_path / "bin" / "dpkg-query"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def test_installed_debian_packages_are_recorded_with_their_versions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dpkg-query prints the known packages and exits 1 for an unknown one; one is removed, its config kept.
    _fake_dpkg_query(tmp_path, "echo 'espeak-ng 1.51+dfsg-10 installed'\n"
                               "echo 'codec2-examples 1.0.5-1 config-files'\n"
                               "echo 'dpkg-query: no packages found matching ktuberling-data' >&2\nexit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert versions.debian_versions() == {"espeak-ng": "1.51+dfsg-10"}


def test_without_dpkg_query_no_debian_versions_and_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dpkg-query here
    assert versions.debian_versions() == {}


def test_the_report_names_the_python_and_debian_packages_it_was_measured_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiny_section.py").write_text("def run(quick):\n    return {'x': 1}\n\n"
                                             "def format_table(result):\n    return 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(report.SECTIONS, "tiny", "tiny_section")
    _fake_dpkg_query(tmp_path, "echo 'sox 14.4.2 installed'")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "report.json"
    assert report.run_bench(Settings(), json_out=out, sections=["tiny"], print_fn=lambda _: None) == 0
    machine = json.loads(out.read_text())["machine"]
    assert machine["python_packages"]["numpy"] == np.__version__
    assert machine["debian_packages"] == {"sox": "14.4.2"}
    assert machine["python"] == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def test_the_recorded_voices_packages_come_from_the_script_that_reads_them() -> None:
    sys.path.insert(0, str(versions.HUMAN_VOICES.parent))
    try:
        import human_voices
    finally:
        sys.path.pop(0)
    assert set(versions.debian_packages()) == set(versions.SET_PACKAGES) | set(human_voices.PACKAGES)
