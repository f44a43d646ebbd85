"""Where things live: the repository, and the build cache outside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCHES = REPO / "patches"
CONFIGS = REPO / "kernel" / "configs"
DIST = REPO / "dist"
TESTS = REPO / "tests"


def cache_root() -> Path:
    """The build cache; IRO_CACHE overrides ~/.cache/iro so CI runs can share it."""
    root = Path(os.environ.get("IRO_CACHE", Path.home() / ".cache" / "iro"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def logs_dir() -> Path:
    path = cache_root() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
