"""Secret files: owner-only from the first byte, replaced atomically."""

import os
import stat

import pytest

from cityledger.core import files
from cityledger.core.files import write_secret_file


def _mode(path_or_fd) -> int:
    """Permission bits of a path or an open descriptor."""
    info = os.fstat(path_or_fd) if isinstance(path_or_fd, int) else os.stat(path_or_fd)
    return stat.S_IMODE(info.st_mode)


@pytest.fixture
def open_umask():
    """Run with umask 0, so nothing but the helper keeps the file private."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_file_is_owner_only(tmp_path, open_umask):
    target = tmp_path / "key.json"
    write_secret_file(target, "seed\n")
    assert target.read_text() == "seed\n"
    assert _mode(target) == 0o600


def test_temp_file_is_owner_only_before_the_secret_is_written(tmp_path, open_umask, monkeypatch):
    seen = []
    real_write = os.write

    def spying_write(fd, data):
        seen.append(_mode(fd))
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", spying_write)
    write_secret_file(tmp_path / "token", b"s" * 100_000)
    assert seen and all(mode == 0o600 for mode in seen)


def test_existing_wide_file_is_replaced_and_narrowed(tmp_path, open_umask):
    target = tmp_path / "passphrase"
    target.write_text("old")
    target.chmod(0o644)
    write_secret_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["passphrase"]


def test_crash_while_writing_leaves_old_content_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "key.json"
    write_secret_file(target, "old")
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[:1]))
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "write", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_secret_file(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]


def test_crash_before_rename_leaves_old_content(tmp_path, monkeypatch):
    target = tmp_path / "key.json"
    write_secret_file(target, "old")

    def fail_replace(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(files.os, "replace", fail_replace)
    with pytest.raises(OSError, match="power cut"):
        write_secret_file(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]


def test_init_writes_every_secret_through_the_helper(tmp_path, open_umask, monkeypatch):
    from cityledger.node.home import init_home

    written = {}
    real_write = os.write

    def spying_write(fd, data):
        temp_name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        written[temp_name.split(".")[1]] = _mode(fd)  # ".<name>.<random>.tmp"
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", spying_write)
    home = tmp_path / "home"
    init_home(home, chain_id="files-test")
    secrets = [home / "node_key.json", *(home / "keys").glob("*.json"), *(home / "issuers").glob("*/key.json"),
               *(home / "issuers").glob("*/token"), *(home / "issuers").glob("*/passphrase")]
    assert len(secrets) > 5
    assert all(_mode(path) == 0o600 for path in secrets)
    assert {path.name.split(".")[0] for path in secrets} <= set(written)
    assert set(written.values()) == {0o600}
