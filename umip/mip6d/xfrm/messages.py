"""XFRM netlink message layouts (include/uapi/linux/xfrm.h), x86_64.

Nested C structs are flattened into prefixed fields (sel_*, id_*, lft_*, ...)
with explicit padding; sizes match what the kernel selftest ipsec.c documents
(xfrm_usersa_info 224, xfrm_userpolicy_info 168, xfrm_user_expire 232).
"""

from __future__ import annotations

import os
import struct

from pyroute2.netlink import NLMSG_ERROR, nla, nlmsg, nlmsgerr
from pyroute2.netlink.exceptions import NetlinkDecodeError, NetlinkError
from pyroute2.netlink.nlsocket import Marshal

# message types
XFRM_MSG_NEWSA = 16
XFRM_MSG_DELSA = 17
XFRM_MSG_GETSA = 18
XFRM_MSG_NEWPOLICY = 19
XFRM_MSG_DELPOLICY = 20
XFRM_MSG_GETPOLICY = 21
XFRM_MSG_ALLOCSPI = 22
XFRM_MSG_ACQUIRE = 23
XFRM_MSG_EXPIRE = 24
XFRM_MSG_UPDPOLICY = 25
XFRM_MSG_UPDSA = 26
XFRM_MSG_POLEXPIRE = 27
XFRM_MSG_FLUSHSA = 28
XFRM_MSG_FLUSHPOLICY = 29
XFRM_MSG_REPORT = 32
XFRM_MSG_MIGRATE = 33
XFRM_MSG_NEWSPDINFO = 36
XFRM_MSG_GETSPDINFO = 37

# multicast groups (XFRMNLGRP_*)
GROUPS = {"acquire": 1, "expire": 2, "sa": 3, "policy": 4, "aevents": 5, "report": 6, "migrate": 7}

XFRM_POLICY_TYPE_MAIN = 0
XFRM_POLICY_TYPE_SUB = 1

SELECTOR = (
    ("sel_daddr", "16s"), ("sel_saddr", "16s"),
    ("sel_dport", ">H"), ("sel_dport_mask", ">H"), ("sel_sport", ">H"), ("sel_sport_mask", ">H"),
    ("sel_family", "H"), ("sel_prefixlen_d", "B"), ("sel_prefixlen_s", "B"), ("sel_proto", "B"),
    ("__sel_pad", "3x"), ("sel_ifindex", "i"), ("sel_user", "I"),
)  # 56 bytes
LIFETIME_CFG = tuple(
    (f"lft_{name}", "Q") for name in (
        "soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit",
        "soft_add_expires_seconds", "hard_add_expires_seconds",
        "soft_use_expires_seconds", "hard_use_expires_seconds",
    )
)  # 64 bytes
LIFETIME_CUR = tuple((f"curlft_{name}", "Q") for name in ("bytes", "packets", "add_time", "use_time"))
XFRM_ID = (("id_daddr", "16s"), ("id_spi", ">I"), ("id_proto", "B"), ("__id_pad", "3x"))  # 24 bytes
USERSA_INFO = (
    *SELECTOR, *XFRM_ID, ("saddr", "16s"), *LIFETIME_CFG, *LIFETIME_CUR,
    ("stats_replay_window", "I"), ("stats_replay", "I"), ("stats_integrity_failed", "I"),
    ("seq", "I"), ("reqid", "I"), ("family", "H"), ("mode", "B"), ("replay_window", "B"),
    ("flags", "B"), ("__sa_pad", "7x"),
)  # 224 bytes
USERPOLICY_INFO = (
    *SELECTOR, *LIFETIME_CFG, *LIFETIME_CUR, ("priority", "I"), ("index", "I"),
    ("dir", "B"), ("action", "B"), ("flags", "B"), ("share", "B"), ("__pol_pad", "4x"),
)  # 168 bytes


class _xfrm_address(nla):
    fields = (("addr", "16s"),)


class _algo(nla):
    """struct xfrm_algo{,_auth,_aead}: name, key length in bits, [extra u32], key."""

    head: tuple[tuple[str, str], ...] = (("alg_name", "64s"), ("alg_key_len", "I"))

    def encode(self) -> None:
        key = self["alg_key"]
        values = [self["alg_name"].encode() if isinstance(self["alg_name"], str) else self["alg_name"]]
        values += [self[name] for name, _ in self.head[1:]]
        self["raw"] = struct.pack("=" + "".join(f for _, f in self.head), *values) + key
        nla.encode(self)

    def decode(self) -> None:
        nla.decode(self)
        fmt = "=" + "".join(f for _, f in self.head)
        size = struct.calcsize(fmt)
        raw = self.data[self.offset + 4 : self.offset + self.length]
        values = struct.unpack_from(fmt, raw)
        for (name, _), value in zip(self.head, values, strict=False):
            self[name] = value.rstrip(b"\0").decode() if name == "alg_name" else value
        self["alg_key"] = bytes(raw[size : size + (self["alg_key_len"] + 7) // 8])


class _algo_plain(_algo):
    fields = (("raw", "s"),)


class _algo_auth(_algo):
    fields = (("raw", "s"),)
    head = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))


class _algo_aead(_algo):
    fields = (("raw", "s"),)
    head = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_icv_len", "I"))


class _struct_array(nla):
    """An attribute holding an array of one C struct, as a list of dicts under `key`."""

    fields = (("raw", "s"),)
    key = ""
    layout: tuple[str, tuple[str, ...]] = ("", ())

    @staticmethod
    def _wire(item: dict[str, int]) -> dict[str, int]:
        return item

    _host = _wire

    def encode(self) -> None:
        fmt, names = self.layout
        self["raw"] = b"".join(
            struct.pack("=" + fmt, *[self._wire(dict(item)).get(n, 0) for n in names]) for item in self[self.key]
        )
        nla.encode(self)

    def decode(self) -> None:
        nla.decode(self)
        fmt, names = self.layout
        raw = self.data[self.offset + 4 : self.offset + self.length]
        size = struct.calcsize("=" + fmt)
        self[self.key] = [
            self._host(dict(zip(names, struct.unpack_from("=" + fmt, raw, start), strict=True)))
            for start in range(0, len(raw) - size + 1, size)
        ]


def _swap_spi(item: dict[str, int]) -> dict[str, int]:
    """The SPI is big-endian inside an otherwise native struct."""
    item["spi"] = int.from_bytes(item["spi"].to_bytes(4, "big"), "little")
    return item


class _tmpl(_struct_array):
    """XFRMA_TMPL: an array of struct xfrm_user_tmpl (64 bytes each)."""

    key = "templates"
    layout = ("16sIB3xH2x16sIBBBxIII", ("daddr", "spi", "proto", "family", "saddr", "reqid",
                                         "mode", "share", "optional", "aalgos", "ealgos", "calgos"))
    _wire = _host = staticmethod(_swap_spi)


class _policy_type(nla):
    fields = (("type", "B"), ("__pad", "x"), ("reserved1", "H"), ("reserved2", "B"), ("__pad2", "x"))


class _migrate(_struct_array):
    """XFRMA_MIGRATE: an array of struct xfrm_user_migrate (76 bytes each)."""

    key = "migrations"
    layout = ("16s16s16s16sBBHIHH", ("old_daddr", "old_saddr", "new_daddr", "new_saddr", "proto",
                                      "mode", "reserved", "reqid", "old_family", "new_family"))


class _kmaddress(nla):
    fields = (("local", "16s"), ("remote", "16s"), ("reserved", "I"), ("family", "H"), ("__pad", "2x"))


class _mark(nla):
    fields = (("v", "I"), ("m", "I"))


class _lastused(nla):
    fields = (("value", "Q"),)


class xfrm_base(nlmsg):
    """Common XFRMA_* attribute table (enum xfrm_attr_type_t)."""

    nla_map = (
        ("XFRMA_UNSPEC", "none"),
        ("XFRMA_ALG_AUTH", "_algo_plain"),
        ("XFRMA_ALG_CRYPT", "_algo_plain"),
        ("XFRMA_ALG_COMP", "_algo_plain"),
        ("XFRMA_ENCAP", "hex"),
        ("XFRMA_TMPL", "_tmpl"),
        ("XFRMA_SA", "hex"),
        ("XFRMA_POLICY", "hex"),
        ("XFRMA_SEC_CTX", "hex"),
        ("XFRMA_LTIME_VAL", "hex"),
        ("XFRMA_REPLAY_VAL", "hex"),
        ("XFRMA_REPLAY_THRESH", "uint32"),
        ("XFRMA_ETIMER_THRESH", "uint32"),
        ("XFRMA_SRCADDR", "_xfrm_address"),
        ("XFRMA_COADDR", "_xfrm_address"),
        ("XFRMA_LASTUSED", "_lastused"),
        ("XFRMA_POLICY_TYPE", "_policy_type"),
        ("XFRMA_MIGRATE", "_migrate"),
        ("XFRMA_ALG_AEAD", "_algo_aead"),
        ("XFRMA_KMADDRESS", "_kmaddress"),
        ("XFRMA_ALG_AUTH_TRUNC", "_algo_auth"),
        ("XFRMA_MARK", "_mark"),
        ("XFRMA_TFCPAD", "uint32"),
        ("XFRMA_REPLAY_ESN_VAL", "hex"),
        ("XFRMA_SA_EXTRA_FLAGS", "uint32"),
        ("XFRMA_PROTO", "uint8"),
        ("XFRMA_ADDRESS_FILTER", "hex"),
        ("XFRMA_PAD", "hex"),
        ("XFRMA_OFFLOAD_DEV", "hex"),
        ("XFRMA_SET_MARK", "uint32"),
        ("XFRMA_SET_MARK_MASK", "uint32"),
        ("XFRMA_IF_ID", "uint32"),
        ("XFRMA_MTIMER_THRESH", "uint32"),
    )
    _xfrm_address = _xfrm_address
    _algo_plain = _algo_plain
    _algo_auth = _algo_auth
    _algo_aead = _algo_aead
    _tmpl = _tmpl
    _policy_type = _policy_type
    _migrate = _migrate
    _kmaddress = _kmaddress
    _mark = _mark
    _lastused = _lastused


class xfrm_usersa_info(xfrm_base):
    fields = USERSA_INFO


class xfrm_usersa_id(xfrm_base):
    fields = (("daddr", "16s"), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("__pad", "x"))


class xfrm_userspi_info(xfrm_base):
    fields = (*USERSA_INFO, ("min", "I"), ("max", "I"))


class xfrm_userpolicy_info(xfrm_base):
    fields = USERPOLICY_INFO


class xfrm_userpolicy_id(xfrm_base):
    fields = (*SELECTOR, ("index", "I"), ("dir", "B"), ("__pad", "3x"))


class xfrm_usersa_flush(xfrm_base):
    fields = (("proto", "B"), ("__pad", "3x"))


class xfrm_user_expire(xfrm_base):
    fields = (*USERSA_INFO, ("hard", "B"), ("__pad", "7x"))


class xfrm_user_polexpire(xfrm_base):
    fields = (*USERPOLICY_INFO, ("hard", "B"), ("__pad", "7x"))


class xfrm_user_acquire(xfrm_base):
    fields = (
        *XFRM_ID, ("saddr", "16s"), *SELECTOR,
        *((f"policy_{name}", fmt) for name, fmt in USERPOLICY_INFO),
        ("aalgos", "I"), ("ealgos", "I"), ("calgos", "I"), ("seq", "I"),
    )


class xfrm_user_report(xfrm_base):
    fields = (("proto", "B"), ("__pad", "3x"), *SELECTOR)


class _spd_hthresh(nla):
    fields = (("lbits", "B"), ("rbits", "B"))  # struct xfrmu_spdhthresh


class xfrm_spdinfo(nlmsg):
    """XFRM_MSG_NEWSPDINFO / GETSPDINFO: a u32 of flags and XFRMA_SPD_* attributes."""

    fields = (("flags", "I"),)
    nla_map = (
        ("XFRMA_SPD_UNSPEC", "none"),
        ("XFRMA_SPD_INFO", "hex"),
        ("XFRMA_SPD_HINFO", "hex"),
        ("XFRMA_SPD_IPV4_HTHRESH", "_spd_hthresh"),
        ("XFRMA_SPD_IPV6_HTHRESH", "_spd_hthresh"),
    )
    _spd_hthresh = _spd_hthresh


class XfrmMarshal(Marshal):
    def parse_one_message(self, key: int, flags: int, sequence_number: int, data: bytes, offset: int,
                          length: int) -> nlmsg:
        try:
            return super().parse_one_message(key, flags, sequence_number, data, offset, length)
        except (struct.error, NetlinkDecodeError):
            if key != NLMSG_ERROR:
                raise
        # An error echoes the request, which pyroute2 decodes with the reply's
        # (longer) layout: keep just the error code.
        msg = nlmsgerr(data, offset=offset)
        msg["header"] = {"length": length, "type": key, "flags": flags, "sequence_number": sequence_number}
        code = abs(struct.unpack_from("i", data, offset + 16)[0])
        msg["error"] = -code
        msg["header"]["error"] = NetlinkError(code, os.strerror(code))
        return msg

    msg_map = {
        XFRM_MSG_NEWSA: xfrm_usersa_info,
        XFRM_MSG_UPDSA: xfrm_usersa_info,
        XFRM_MSG_DELSA: xfrm_usersa_id,
        XFRM_MSG_GETSA: xfrm_usersa_info,
        XFRM_MSG_ALLOCSPI: xfrm_userspi_info,
        XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info,
        XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info,
        XFRM_MSG_DELPOLICY: xfrm_userpolicy_id,
        XFRM_MSG_GETPOLICY: xfrm_userpolicy_info,
        XFRM_MSG_FLUSHSA: xfrm_usersa_flush,
        XFRM_MSG_FLUSHPOLICY: xfrm_base,
        XFRM_MSG_EXPIRE: xfrm_user_expire,
        XFRM_MSG_POLEXPIRE: xfrm_user_polexpire,
        XFRM_MSG_ACQUIRE: xfrm_user_acquire,
        XFRM_MSG_REPORT: xfrm_user_report,
        XFRM_MSG_MIGRATE: xfrm_userpolicy_id,
        XFRM_MSG_NEWSPDINFO: xfrm_spdinfo,
        XFRM_MSG_GETSPDINFO: xfrm_spdinfo,
    }
