"""Data shipped inside the `device` package: the model manifests (`models`) and hardware profiles (`hw`).

They live in the repo's top-level models/ and hw/ (the layout the design card asks for);
`device/models` and `device/hw` are links to them, so importlib.resources finds them in a
checkout, an editable install and a built wheel alike (setuptools follows the links and
copies the files into the wheel: see [tool.setuptools.package-data] in pyproject.toml).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def package_data(name: str) -> Path:
    """The shipped data directory `name` ("models" or "hw") as a resolved filesystem path.

    A checkout's link resolves to the top-level folder. Callers need a real path (the
    interpreter opens model files by name); voxbox is installed unzipped, so it is one.
    """
    return Path(str(importlib.resources.files("device").joinpath(name))).resolve()
