"""Phase marks for the insncount QEMU plugin (qemu/insncount.c): the plugin
writes its counts whenever the guest enters syncfs(2), which nothing else in
the guest calls. Each mark closes a phase; the labels, with the units of
work each phase did (datagrams, BUs), go to $IRO_VM_OUT/phases.json for the
host to pair with the plugin's snapshots (iro_pipeline/insncount.py)."""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

ENABLED = os.environ.get("IRO_INSN_MARKS") == "1"
_phases: list[dict[str, object]] = []


def mark(label: str, units: int = 0) -> None:
    """End the phase `label`, which did `units` of work (0: not reported)."""
    if not ENABLED:
        return
    fd = os.open("/", os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)
    _phases.append({"label": label, "units": units})
    Path(os.environ["IRO_VM_OUT"], "phases.json").write_text(json.dumps({"phases": _phases}))
