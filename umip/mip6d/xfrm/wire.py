"""Fast encoders for the XFRM requests the daemon sends in bulk.

pyroute2's generic message classes (messages.py) encode one SA or policy in
about 0.35 ms natively and ten times that under TCG: a home agent installing
40,000 policies at start-up, or a few messages per Binding Update, spends most
of its time there. These encoders pack the same bytes with precompiled
structs; tests/host/test_xfrm_wire.py checks them byte for byte against the
pyroute2 encoding of the same objects."""

from __future__ import annotations

import socket
import struct

from . import messages as m
from .api import Algorithm, Migration, Policy, Selector, State, Template, _family, pack_addr

NLMSG_HDR = struct.Struct("=IHHII")
_SELECTOR = struct.Struct("=16s16sHHHHHBBB3xiI")  # ports in network order, packed via htons
_SA_REST = struct.Struct("=16sIB3x16s8Q4Q3IIIHBBB7x")  # xfrm_id, saddr, lifetimes, stats, ...
_POLICY_REST = struct.Struct("=8Q4QIIBBBB4x")
_POLICY_ID_REST = struct.Struct("=IB3x")
_SA_ID = struct.Struct("=16sIHBx")
_TMPL = struct.Struct("=16sIB3xH2x16sIBBBxIII")
_MIGRATE = struct.Struct("=16s16s16s16sBBHIHH")
_POLICY_TYPE = struct.Struct("=BxHBx")
_NLA = struct.Struct("=HH")
_NO_LIMIT = (1 << 64) - 1
_LIFETIME_NAMES = tuple(name.removeprefix("lft_") for name, _ in m.LIFETIME_CFG)
XFRMA_ALG_CRYPT, XFRMA_TMPL, XFRMA_SRCADDR, XFRMA_COADDR = 2, 5, 13, 14
XFRMA_POLICY_TYPE, XFRMA_MIGRATE, XFRMA_ALG_AEAD, XFRMA_ALG_AUTH_TRUNC = 16, 17, 18, 20

assert _SELECTOR.size == 56 and _SELECTOR.size + _SA_REST.size == 224
assert _SELECTOR.size + _POLICY_REST.size == 168 and _TMPL.size == 64 and _MIGRATE.size == 76


def nla(kind: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + bytes(-length % 4)


def nlmsg(kind: int, flags: int, body: bytes) -> bytes:
    """A whole netlink message; the batch socket fills in the sequence number."""
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, 0, 0) + body


def selector(sel: Selector) -> bytes:
    family = sel.family
    return _SELECTOR.pack(
        pack_addr(sel.dst, family), pack_addr(sel.src, family), socket.htons(sel.dport),
        socket.htons(0xFFFF if sel.dport else 0), socket.htons(sel.sport), socket.htons(0xFFFF if sel.sport else 0),
        family, sel.dst_prefix, sel.src_prefix, sel.proto, sel.ifindex, 0)


_NO_LIFETIME = tuple(_NO_LIMIT if "limit" in name else 0 for name in _LIFETIME_NAMES)


def _lifetime(values: dict[str, int]) -> tuple[int, ...]:
    if not values:
        return _NO_LIFETIME  # what nearly every SA and policy has: built once, not per BU
    return tuple(values.get(name, default) for name, default in zip(_LIFETIME_NAMES, _NO_LIFETIME, strict=True))


def _algo(kind: int, alg: Algorithm, extra: bool) -> bytes:
    head = struct.pack("=64sI", alg.name.encode(), len(alg.key) * 8)
    if extra:
        head += struct.pack("=I", alg.extra_bits)
    return nla(kind, head + alg.key)


def state(sa: State, msg_type: int, flags: int) -> bytes:
    """XFRM_MSG_NEWSA / UPDSA: struct xfrm_usersa_info and its attributes."""
    body = selector(sa.selector) + _SA_REST.pack(
        pack_addr(sa.dst), socket.htonl(sa.spi), sa.proto, pack_addr(sa.src), *_lifetime(sa.lifetime),
        0, 0, 0, 0, 0, 0, 0, 0, sa.reqid, sa.family, sa.mode, sa.replay_window, sa.flags)
    if sa.aead:
        body += _algo(XFRMA_ALG_AEAD, sa.aead, True)
    if sa.crypt:
        body += _algo(XFRMA_ALG_CRYPT, sa.crypt, False)
    if sa.auth:
        body += _algo(XFRMA_ALG_AUTH_TRUNC, sa.auth, True)
    if sa.coaddr is not None:
        body += nla(XFRMA_COADDR, pack_addr(sa.coaddr))
    return nlmsg(msg_type, flags, body)


def sa_id(dst: str, spi: int, proto: int, src: str | None, msg_type: int, flags: int) -> bytes:
    """XFRM_MSG_DELSA / GETSA: struct xfrm_usersa_id [+ XFRMA_SRCADDR]."""
    body = _SA_ID.pack(pack_addr(dst), socket.htonl(spi), _family(dst, src), proto)
    if src:
        body += nla(XFRMA_SRCADDR, pack_addr(src))
    return nlmsg(msg_type, flags, body)


def _template(t: Template) -> bytes:
    return _TMPL.pack(pack_addr(t.dst), socket.htonl(t.spi), t.proto, _family(t.src, t.dst), pack_addr(t.src),
                      t.reqid, t.mode, t.share, int(t.optional), 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def _policy_type(sub: bool) -> bytes:
    return nla(XFRMA_POLICY_TYPE, _POLICY_TYPE.pack(m.XFRM_POLICY_TYPE_SUB if sub else m.XFRM_POLICY_TYPE_MAIN, 0, 0))


def policy(sp: Policy, msg_type: int, flags: int) -> bytes:
    """XFRM_MSG_NEWPOLICY / UPDPOLICY: struct xfrm_userpolicy_info, templates, type."""
    body = selector(sp.selector) + _POLICY_REST.pack(*_lifetime({}), 0, 0, 0, 0, sp.priority, sp.index, sp.dir,
                                                     sp.action, 0, 0)
    if sp.templates:
        body += nla(XFRMA_TMPL, b"".join(_template(t) for t in sp.templates))
    return nlmsg(msg_type, flags, body + _policy_type(sp.sub))


def policy_id(sel: Selector, direction: int, sub: bool, msg_type: int, flags: int, attrs: bytes = b"") -> bytes:
    """XFRM_MSG_DELPOLICY / GETPOLICY / MIGRATE: struct xfrm_userpolicy_id."""
    body = selector(sel) + _POLICY_ID_REST.pack(0, direction) + attrs + _policy_type(sub)
    return nlmsg(msg_type, flags, body)


def migrate(sel: Selector, direction: int, moves: list[Migration], sub: bool, flags: int) -> bytes:
    """XFRM_MSG_MIGRATE: the SAs a policy uses move to new endpoints, SPIs kept."""
    array = b"".join(_MIGRATE.pack(pack_addr(x.old_dst), pack_addr(x.old_src), pack_addr(x.new_dst),
                                   pack_addr(x.new_src), x.proto, x.mode, 0, x.reqid,
                                   _family(x.old_src, x.old_dst), _family(x.new_src, x.new_dst)) for x in moves)
    return policy_id(sel, direction, sub, m.XFRM_MSG_MIGRATE, flags, nla(XFRMA_MIGRATE, array))
