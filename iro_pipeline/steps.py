"""Run long external steps with live progress, a full log file and timings."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .errors import PipelineError
from .paths import logs_dir

console = Console(stderr=True, highlight=False)
# stage name -> seconds, collected for dist/metadata.json and the benchmark
timings: dict[str, float] = {}


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage and report it in one line."""
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - start, 1)
    console.print(f"[green]✓[/] {name} ({timings[name]:.1f} s)")


def log_path(name: str) -> Path:
    return logs_dir() / f"{name.replace(' ', '-').replace('/', '_')}.log"


def run(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Run argv to completion, showing its last output line and the elapsed time.

    The full output goes to a log file; a failure names that file.
    """
    log = log_path(name)
    full_env = {**os.environ, **(env or {})}
    with log.open("w", buffering=1) as out, Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[last]}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(name, last="")
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            progress.update(task, last=line.strip()[:70])
        code = proc.wait()
    if code != 0:
        first_error = next((line.strip() for line in log.read_text(errors="replace").splitlines()
                            if re.search(r"\berror\b", line, re.I)), None)
        detail = f": {first_error}" if first_error else ""
        raise PipelineError(f"{name} failed (exit {code}){detail}; full log: {log}")
    return log


def capture(argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None) -> str:
    """Run a short command and return its stdout; fail with its stderr's last line."""
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"{' '.join(map(str, argv))}: {last}")
    return proc.stdout
