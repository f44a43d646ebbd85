"""Errors raised while decoding a Mobility Header."""

from __future__ import annotations


class MhError(ValueError):
    """A Mobility Header that must be dropped: ``offset`` is the byte (from the start of the MH) at fault.

    The message is one line, ``"MH byte <offset>: <field> ..."``; ``offset`` and ``field`` are kept so the
    daemon can, for example, point an ICMPv6 Parameter Problem at the offending byte (RFC 6275 9.2).
    """

    def __init__(self, offset: int, field: str, detail: str) -> None:
        self.offset = offset
        self.field = field
        self.detail = detail
        super().__init__(f"MH byte {offset}: {field} {detail}")


class UnknownMhType(MhError):  # noqa: N818 - named for the condition, as the daemon's callers expect
    """The MH Type is not one this codec handles; answer with a Binding Error, status 2 (RFC 6275 9.2).

    Raised only after the header length and checksum were found valid, so ``mh_type`` is trustworthy.
    """

    def __init__(self, mh_type: int, detail: str = "is not recognized") -> None:
        self.mh_type = mh_type
        super().__init__(2, "MH type", f"{mh_type} {detail}")
