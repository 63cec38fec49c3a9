"""The bench's generated data sets: cached between runs, made again when their recipe changes.

A set (the labelled listening set, the barge-in scenarios) takes minutes of espeak-ng and sox to
make, so it is kept in the cache directory. A cached set made by an older recipe would measure
the wrong thing without a word (a barge-in set from before the human voices has no human family),
so each set keeps the SHA-256 of the scripts that made it and is remade when they differ.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

STAMP = "recipe.sha256"


def cache_dir() -> Path:
    """$VOXBOX_CACHE_DIR, else ~/.cache/voxbox."""
    base = os.environ.get("VOXBOX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "voxbox")
    return Path(base)


def recipe_hash(recipe: Sequence[Path]) -> str:
    """SHA-256 over the recipe files' names and contents (hex)."""
    h = hashlib.sha256()
    for f in recipe:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def ensure(d: Path, marker: str, recipe: Sequence[Path], make: Callable[[], None]) -> Path:
    """`d`, made by `make()` unless it holds `marker` (the file a finished set ends with) and was
    made by this `recipe`. `make` raises on failure; the stamp is written only after it succeeds."""
    want = recipe_hash(recipe)
    stamp = d / STAMP
    if (d / marker).is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return d
    make()
    d.mkdir(parents=True, exist_ok=True)
    stamp.write_text(want + "\n")
    return d
