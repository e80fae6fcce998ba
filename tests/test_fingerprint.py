"""The build's fingerprint is remembered between gates only while the file's
identity (inode, size, mtime, ctime) shows nothing wrote to it; publish always hashes."""

from __future__ import annotations

import os
import time

from dq import build as build_mod


def _quiet_file(tmp_path, content=b"x" * 4096):
    path = tmp_path / "jaffle_shop.db"
    path.write_bytes(content)
    # Written "long" ago: the remembered fingerprint may be trusted.
    time.sleep(build_mod.QUIET_NS / 1e9 + 0.05)
    return path


def _counting(monkeypatch):
    calls = []
    real = build_mod.fingerprint

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(build_mod, "fingerprint", counted)
    return calls


def test_an_unchanged_file_is_hashed_once(tmp_path, monkeypatch):
    path, cache = _quiet_file(tmp_path), tmp_path / ".fingerprint.json"
    calls = _counting(monkeypatch)
    first = build_mod.remembered_fingerprint(path, cache)
    assert first == build_mod.fingerprint(path)
    calls.clear()
    assert build_mod.remembered_fingerprint(path, cache) == first
    assert calls == []  # served from what the first call remembered


def test_a_write_is_seen_even_with_the_old_mtime_put_back(tmp_path, monkeypatch):
    path, cache = _quiet_file(tmp_path), tmp_path / ".fingerprint.json"
    first = build_mod.remembered_fingerprint(path, cache)
    stat = os.stat(path)
    with open(path, "r+b") as handle:  # same size, other bytes
        handle.write(b"y")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ctime still moves
    calls = _counting(monkeypatch)
    second = build_mod.remembered_fingerprint(path, cache)
    assert calls, "the changed file was not hashed again"
    assert second != first


def test_a_file_written_just_before_hashing_is_not_trusted_later(tmp_path, monkeypatch):
    path, cache = tmp_path / "jaffle_shop.db", tmp_path / ".fingerprint.json"
    path.write_bytes(b"fresh")
    build_mod.remembered_fingerprint(path, cache)
    assert not cache.exists()  # a second write in the same clock tick could hide
    calls = _counting(monkeypatch)
    build_mod.remembered_fingerprint(path, cache)
    assert calls


def test_a_replaced_file_is_hashed_again(tmp_path, monkeypatch):
    path, cache = _quiet_file(tmp_path), tmp_path / ".fingerprint.json"
    build_mod.remembered_fingerprint(path, cache)
    other = tmp_path / "other.db"
    other.write_bytes(b"z" * 4096)
    os.replace(other, path)  # another inode
    calls = _counting(monkeypatch)
    assert build_mod.remembered_fingerprint(path, cache) == build_mod.fingerprint(path)
    assert calls
