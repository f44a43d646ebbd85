"""The crash journal: what a killed daemon leaves for the next start to remove."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mip6d.journal import COMPACT_AFTER, Entry, FileJournal, JournalLockedError


def killed(journal: FileJournal) -> None:
    """What a SIGKILL does to the journal: its file closed, nothing removed."""
    journal.sync()
    journal._file.close()


def test_a_new_start_finds_what_was_recorded_and_not_ended(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    tunnel, route = Entry("tunnel mip6ha1", 0, b"\x01\x02"), Entry("route 2001:db8::1", 0, b"\x03")
    sysctl = Entry("sysctl net.ipv6.conf.all.forwarding=1 (was 0)", restore=("sysctl", "/proc/x", "0 1\t2"))
    for entry in (tunnel, route, sysctl):
        journal.record(entry)
    journal.forget(route, {})
    killed(journal)
    left = FileJournal(tmp_path / "j").leftovers()
    assert left == [Entry("tunnel mip6ha1", 0, b"\x01\x02"), Entry(sysctl.what, restore=sysctl.restore)]


def test_a_second_daemon_cannot_take_a_held_journal(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    with pytest.raises(JournalLockedError, match=rf"j: another mip6d \(pid {os.getpid()}\) is running"):
        FileJournal(tmp_path / "j")
    journal.close()
    assert not (tmp_path / "j").exists()
    FileJournal(tmp_path / "j").close()  # free again once closed


def test_a_cut_off_last_line_is_skipped_even_if_it_would_parse(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    entries = [Entry(f"route {i}", 0, bytes([i])) for i in range(13)]
    for entry in entries:
        journal.record(entry)
    journal._file.write("-\t1")  # "-\t12" cut short by the kill: ending entry 1 would leak its object
    killed(journal)
    with caplog.at_level(logging.WARNING):
        left = FileJournal(tmp_path / "j").leftovers()
    assert [e.what for e in left] == [e.what for e in entries]
    assert f"{tmp_path / 'j'}:15: cut-off entry skipped" in caplog.text


def test_an_unreadable_line_is_skipped_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    journal.record(Entry("proxy ND 2001:db8::1 on ha0", 0, b"\x05"))
    journal._file.write('+\tx\t0\t00\tbad serial\nr\t3\t{"a": 1}\tnot a list\n')
    killed(journal)
    with caplog.at_level(logging.WARNING):
        left = FileJournal(tmp_path / "j").leftovers()
    assert [e.what for e in left] == ["proxy ND 2001:db8::1 on ha0"]
    assert f"{tmp_path / 'j'}:3: unreadable entry skipped" in caplog.text
    assert f"{tmp_path / 'j'}:4: unreadable entry skipped: not a list of strings" in caplog.text


def test_a_journal_kept_on_close_is_found_again(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    journal.record(Entry("tunnel mip6ha1", 0, b"\x01"))
    journal.close(remove=False)  # e.g. a recovery that failed: the next start tries again
    assert [e.what for e in FileJournal(tmp_path / "j").leftovers()] == ["tunnel mip6ha1"]


def test_ended_entries_are_compacted_away_and_the_lock_kept(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j")
    journal.reset()
    live: dict[int, Entry] = {}
    for i in range(COMPACT_AFTER + 2):
        live[i] = Entry(f"route {i}", 0, i.to_bytes(4, "big"))
        journal.record(live[i])
    for i in range(COMPACT_AFTER + 1):
        journal.forget(live.pop(i), live)
    journal.sync()
    assert len((tmp_path / "j").read_text().splitlines()) < 10
    with pytest.raises(JournalLockedError):
        FileJournal(tmp_path / "j")
    killed(journal)
    assert [e.what for e in FileJournal(tmp_path / "j").leftovers()] == [f"route {COMPACT_AFTER + 1}"]
