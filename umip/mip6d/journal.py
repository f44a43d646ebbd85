"""The crash journal: what the kernel ledger holds, also on disk, so that a
daemon killed without its clean shutdown (SIGKILL, a crash, the OOM killer)
leaves a list of what it installed, and the next start on the same control
socket removes it first. The file is locked while a daemon uses it, which
also keeps a second daemon off the same socket.

One line per event: `+` an undo request (netlink protocol and message), `r`
a value to restore (a sysctl, the policy hash thresholds), `-` the end of a
recorded entry. Compaction rewrites the live entries when ended ones dominate."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("mip6d.journal")
COMPACT_AFTER = 4096  # ended entries before a rewrite is considered


def _header() -> str:
    """A journal's first line: whose it is (a rival's refusal names the pid)."""
    return f"mip6d\t{os.getpid()}\n"


class JournalLockedError(RuntimeError):
    """Another daemon holds the journal."""


@dataclasses.dataclass
class Entry:
    """One recorded undo: a netlink request, or a value to restore."""

    what: str
    protocol: int = 0
    request: bytes = b""
    restore: tuple[str, ...] = ()
    serial: int = 0

    def line(self) -> str:
        what = self.what
        if "\n" in what or "\t" in what:  # never in what the daemon builds; the format needs it
            what = " ".join(what.split())
        if self.restore:
            return f"r\t{self.serial}\t{json.dumps(list(self.restore))}\t{what}\n"
        return f"+\t{self.serial}\t{self.protocol}\t{self.request.hex()}\t{what}\n"


class Journal:
    """No journal: a kernel ledger that lives only in memory (tests, benchmarks)."""

    def record(self, entry: Entry) -> None:
        pass

    def forget(self, entry: Entry, live: Mapping[Any, Entry]) -> None:
        pass

    def sync(self) -> None:
        pass

    def reset(self) -> None:
        pass


class FileJournal(Journal):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = self._locked(path)
        self._serial = 0
        self._ended = 0

    @staticmethod
    def _locked(path: Path) -> IO[str]:
        """`path`, opened and locked; the file locked is the one the path names
        (a compaction or a clean stop may replace or remove it while we wait)."""
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            # write-only for Python (reads use os.pread): a stream that can also read seeks per write
            file = open(fd, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                header = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].split()
                pid = f" (pid {header[1]})" if len(header) > 1 else ""
                raise JournalLockedError(f"{path}: another mip6d{pid} is running with this control socket") \
                    from None
            held = os.fstat(fd)
            with contextlib.suppress(FileNotFoundError):
                named = os.stat(path)
                if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                    return file
            file.close()  # replaced or removed meanwhile: lock the file the path names now
        raise OSError(f"{path}: replaced over and over while being locked")

    def _content(self) -> str:
        """The locked file's content (not the path's, which a rival could have replaced)."""
        self._file.flush()
        fd, chunks, offset = self._file.fileno(), [], 0
        while chunk := os.pread(fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def leftovers(self) -> list[Entry]:
        """The entries a daemon recorded and did not end, oldest first."""
        live: dict[int, Entry] = {}
        lines = self._content().split("\n")
        if lines[-1]:  # no newline at the end: the writer was killed mid-line, so that line is not whole
            log.warning("%s:%d: cut-off entry skipped", self.path, len(lines))
        for number, line in enumerate(lines[:-1], 1):
            fields = line.split("\t")
            try:
                if fields[0] == "+":
                    live[int(fields[1])] = Entry(fields[4], int(fields[2]), bytes.fromhex(fields[3]))
                elif fields[0] == "r":
                    restore = json.loads(fields[2])
                    if not (isinstance(restore, list) and all(isinstance(v, str) for v in restore)):
                        raise ValueError(f"not a list of strings: {fields[2]}")
                    live[int(fields[1])] = Entry(fields[3], restore=tuple(restore))
                elif fields[0] == "-":
                    live.pop(int(fields[1]), None)
                elif number > 1 or fields[0] != "mip6d":
                    raise ValueError(f"unknown event {fields[0]!r}")
            except (IndexError, ValueError) as err:
                log.warning("%s:%d: unreadable entry skipped: %s", self.path, number, err)
        return list(live.values())

    def reset(self) -> None:
        """Start an empty journal (after a recovery, or once the ledger is unwound)."""
        self._file.flush()
        os.ftruncate(self._file.fileno(), 0)
        self._file.write(_header())
        self._file.flush()
        self._ended = 0

    def record(self, entry: Entry) -> None:
        self._serial += 1
        entry.serial = self._serial
        self._file.write(entry.line())

    def forget(self, entry: Entry, live: Mapping[Any, Entry]) -> None:
        """`entry` ended; `live` is the whole ledger, for compaction."""
        self._file.write(f"-\t{entry.serial}\n")
        self._ended += 1
        if self._ended > COMPACT_AFTER and self._ended > len(live):
            self._rewrite(live.values())

    def _rewrite(self, live: Iterable[Entry]) -> None:
        """The live entries only, into a new file locked before it takes the name."""
        new = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            new.unlink()
        file = self._locked(new)
        file.write(_header())
        for entry in live:
            file.write(entry.line())
        file.flush()
        os.replace(new, self.path)
        self._file.close()
        self._file, self._ended = file, 0

    def sync(self) -> None:
        """Hand what is written to the kernel: it then survives the process."""
        self._file.flush()

    def close(self, remove: bool = True) -> None:
        """Release the journal; `remove` after a clean stop, when nothing is left to remove.
        The lock is held until the file is gone, so no rival reads a journal being removed."""
        if remove:
            self.path.unlink(missing_ok=True)
        self._file.close()
