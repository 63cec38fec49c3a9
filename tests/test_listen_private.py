"""The one place that reaches into a dependency (device/listen/_private.py) still finds what it needs."""

from __future__ import annotations

import importlib.util

import pytest

from device.listen import _private


@pytest.mark.skipif(importlib.util.find_spec("pymicro_wakeword") is None, reason="pymicro-wakeword not installed")
def test_the_tflite_c_library_is_where_and_what_we_expect() -> None:
    moved = _private.internals_moved()
    assert not moved, "dependency internals moved: " + "; ".join(moved)
    assert _private.tflite_c_library() is not None
