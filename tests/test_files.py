"""atomic_write: readers see the old file or the new one, never a part; leftovers of dead writers."""

import os
import stat
import subprocess
import sys

import pytest

import nmt.files
from nmt.files import atomic_write, replace_contents, same_file, stale_temporaries, temporary_path
from nmt.training.checkpoint import remove_stale_temporaries


def test_a_clean_exit_replaces_the_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new ")
        assert path.read_bytes() == b"old"  # nothing is visible before the block ends
        f.write(b"bytes")
    assert path.read_bytes() == b"new bytes"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("durable", [False, True])
def test_an_exception_keeps_the_old_file_and_removes_the_temporary(tmp_path, durable):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(path, durable=durable) as f:
        f.write(b"half of it")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_the_new_file_has_the_permissions_the_umask_gives(tmp_path):
    old_umask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "out.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600


def test_only_temporaries_of_writers_no_longer_running_are_stale(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        of_dead = tmp_path / f".last.pt.{dead_pid}.0a1b2c3d.tmp"
        of_live = tmp_path / f".last.pt.{live.pid}.0a1b2c3d.tmp"
        for leftover in (of_dead, of_live):
            leftover.write_bytes(b"part")
        (tmp_path / "last.pt").write_bytes(b"whole")
        assert stale_temporaries(tmp_path) == [of_dead]
        assert remove_stale_temporaries(tmp_path) == [of_dead]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", of_live.name])
    finally:
        live.kill()
        live.wait()


def test_a_temporary_carrying_this_process_id_is_stale(tmp_path):
    """No write is in progress in this process while it looks for leftovers; a job restarted in a
    container often gets the process id its killed predecessor had, whose leftovers must still go."""
    leftover = tmp_path / f".last.pt.{os.getpid()}.0a1b2c3d.tmp"
    leftover.write_bytes(b"part")
    assert stale_temporaries(tmp_path) == [leftover]
    assert remove_stale_temporaries(tmp_path) == [leftover] and not leftover.exists()


def test_temporary_names_are_hidden_fresh_and_carry_the_process_id(tmp_path):
    first, second = temporary_path(tmp_path / "a.pt"), temporary_path(tmp_path / "a.pt")
    assert first != second
    assert first.name.startswith(".a.pt.") and first.name.split(".")[-3] == str(os.getpid())


# --- replace_contents: the outputs a user names -------------------------------------------------------

FULL_AT_2_KB = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))"


def test_a_write_that_fails_part_way_leaves_the_old_output_whole(tmp_path):
    """A file size limit stands in for a full disk: the write fails after 2 KB (Python ignores
    SIGXFSZ, so it is an OSError). Written in place, the old output was gone and 2 KB of the new left."""
    path = tmp_path / "out.txt"
    path.write_text("the old output\n" * 10)
    code = f"{FULL_AT_2_KB}\nfrom nmt.files import replace_contents\nreplace_contents({str(path)!r}, b'x' * 10000)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert path.read_text() == "the old output\n" * 10
    assert list(tmp_path.iterdir()) == [path]  # no temporary left


def test_an_output_through_a_symbolic_link_replaces_the_file_it_points_at(tmp_path):
    target, link = tmp_path / "real.txt", tmp_path / "link.txt"
    target.write_text("old")
    link.symlink_to(target)
    replace_contents(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_an_existing_output_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    replace_contents(path, b"new")
    assert path.read_bytes() == b"new" and (path.stat().st_mode & 0o777) == 0o640


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_written_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    replace_contents(fifo, b"through the pipe\n")
    assert reader.communicate(timeout=30)[0] == b"through the pipe\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_file_in_a_folder_that_cannot_be_written_is_written_in_place(tmp_path, monkeypatch):
    """No temporary can be made beside it; the file itself may still be writable."""
    path = tmp_path / "out.txt"
    path.write_text("old")
    inode = path.stat().st_ino
    monkeypatch.setattr(nmt.files, "folder_write_problem", lambda folder: f"{folder} is not writable")
    replace_contents(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_ino == inode


def test_same_file_sees_links_and_other_spellings_of_one_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    original = tmp_path / "model.pt"
    original.write_bytes(b"x")
    (tmp_path / "soft.pt").symlink_to(original)
    os.link(original, tmp_path / "hard.pt")
    (tmp_path / "copy.pt").write_bytes(b"x")
    assert same_file(original, tmp_path / "soft.pt")
    assert same_file(str(original), str(tmp_path / "hard.pt"))  # another name of the same inode
    assert same_file("~/model.pt", tmp_path / "sub" / ".." / "model.pt")
    assert not same_file(original, tmp_path / "copy.pt")  # equal bytes, another file


def test_same_file_compares_missing_paths_by_where_they_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert same_file("~/gone.pt", tmp_path / "gone.pt")
    assert not same_file(tmp_path / "gone.pt", tmp_path / "other.pt")
