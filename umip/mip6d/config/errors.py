"""Where a configuration item came from, and the one error type the config layer raises."""

from __future__ import annotations

from typing import NamedTuple


class Location(NamedTuple):
    """A position in a configuration file: 1-based line and column (a tab counts as one column).
    A named tuple: the tokenizer makes one per token, tens of thousands for a large keys file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def ref(self, other: Location) -> str:
        """Name this location as seen from `other`: 'line N' in the same file, else 'FILE:N'."""
        return f"line {self.line}" if self.file == other.file else f"{self.file}:{self.line}"


class ConfigError(ValueError):
    """A configuration or keys file that cannot be used. `str()` is one line: `FILE:LINE:COL: message`."""

    def __init__(self, location: Location, message: str) -> None:
        self.location = location
        self.message = " ".join(message.split())  # always a single line
        super().__init__(f"{location}: {self.message}")
