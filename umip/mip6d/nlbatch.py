"""A netlink socket that sends many requests per sendmsg and checks every ACK.

The kernel handles each message of one sendmsg in turn and ACKs each, so a
home agent's few requests per binding (or 40,000 policies at start-up) cost
one system call and one wake-up, and a refusal still names its request."""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

NLMSG_ERROR = 2
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
NLM_F_ACK = 0x4
_HDR = struct.Struct("=IHHII")
_FLAGS, _FLAGS_SEQ = struct.Struct("=H"), struct.Struct("=HI")
CHUNK = 48 * 1024  # bytes of requests per sendmsg
# The kernel handles a whole sendmsg before returning, so every ACK of a chunk waits in the
# receive buffer at once, each costing its skb's truesize (about 1 KiB), not its 36 bytes. By
# bytes alone, 48 KiB of 32-byte deletions queued 1,500 ACKs: the socket overran (ENOBUFS)
# and a home agent's shutdown stopped with all its state left. Chunks hold at most this many:
MAX_REQUESTS = 128
RCVBUF = 4 << 20
SO_RCVBUFFORCE = 33


@dataclass(frozen=True)
class Outcome:
    """The kernel's answer to one request: 0, or an errno and its extack text."""

    code: int = 0
    message: str = ""

    def describe(self) -> str:
        text = os.strerror(self.code)
        return f"{text} ({self.message})" if self.message else text


_SUCCESS = Outcome()


class BatchSocket:
    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        try:  # past net.core.rmem_max, which caps SO_RCVBUF (CAP_NET_ADMIN: the daemon runs as root)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # refusals do not echo the request
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.bind((0, 0))
        self.seq = 0
        # one receive buffer for the socket's life: recv(1 MiB) would mmap and unmap a
        # fresh megabyte per call (above malloc's mmap threshold), twice per binding
        self._buf = bytearray(1 << 20)

    def request(self, messages: list[bytes]) -> list[Outcome]:
        """Send every message (each a whole nlmsg); one outcome each, in order."""
        outcomes: list[Outcome] = []
        start = 0
        while start < len(messages):
            end, size = start, 0
            while end < len(messages) and (end == start or (size + len(messages[end]) <= CHUNK
                                                             and end - start < MAX_REQUESTS)):
                size += len(messages[end])
                end += 1
            outcomes += self._exchange(messages[start:end])
            start = end
        return outcomes

    def _exchange(self, messages: list[bytes]) -> list[Outcome]:
        """Only the last message asks for an ACK: the kernel answers a refused one anyway,
        and handles them in order, so the last ACK says every earlier message without
        an error succeeded. That saves the kernel an skb and this loop a receive per request."""
        first = (self.seq + 1) & 0xFFFFFFFF
        last = len(messages) - 1
        buf = bytearray()
        for index, msg in enumerate(messages):
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            (flags,) = _FLAGS.unpack_from(msg, 6)
            flags = flags | NLM_F_ACK if index == last else flags & ~NLM_F_ACK
            buf += msg[:6] + _FLAGS_SEQ.pack(flags, self.seq) + msg[12:]
        self.sock.send(buf)
        outcomes: dict[int, Outcome] = {}
        data = self._buf
        while last not in outcomes:
            size = self.sock.recv_into(data)
            offset = 0
            while offset + _HDR.size <= size:
                length, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                index = (seq - first) & 0xFFFFFFFF
                if kind == NLMSG_ERROR and index < len(messages):
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    text = _extack(data, offset, length) if flags & NLM_F_ACK_TLVS else ""
                    outcomes[index] = Outcome(-code, text)
                offset += (length + 3) & ~3
        return [outcomes.get(i, _SUCCESS) for i in range(len(messages))]

    def close(self) -> None:
        self.sock.close()


def _extack(data: bytearray, offset: int, length: int) -> str:
    """NLMSGERR_ATTR_MSG after the error code and the (capped) request header."""
    pos, end = offset + 16 + 4 + 16, offset + length
    while pos + 4 <= end:
        alen, kind = struct.unpack_from("=HH", data, pos)
        if alen < 4:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return data[pos + 4:pos + alen].rstrip(b"\0").decode(errors="replace")
        pos += (alen + 3) & ~3
    return ""


GONE = frozenset({errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL})
