"""Writing a file so that readers see the old complete file or the new complete one, never a part.

Every file the package writes that a later run reads back (checkpoints, the prepared-data cache, an
epoch's sample, a downloaded corpus file, a figure) goes through `atomic_write`: the bytes go to a
temporary file in the same folder, which is renamed over the target only once it is complete.

Also here: whether two paths name one file (`same_file`), for the checks that compare what two
options read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temporary_path(path: Path) -> Path:
    """A fresh temporary name beside `path`: hidden, and carrying our process id, so a later process can
    tell a dead writer's leftovers (`stale_temporaries`) from a file being written right now."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = False) -> Iterator[BinaryIO]:
    """Yields a binary file to write; on a clean exit it replaces `path`, on any exception it is removed
    and `path` is left as it was. `durable` also flushes the file and the rename to disk (fsync), so
    the new file survives a power cut, not only a crash of this process.

    The folder must exist. The file gets the permissions the umask gives any new file (not
    `tempfile.mkstemp`'s 0600, which would survive the rename).
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "xb") as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def replace_contents(path: str | Path, data: bytes) -> None:
    """Makes `data` the whole of the file at `path` (an output the user names), so that a failed write
    (a full disk) leaves the file that was there, not the start of the new one: through atomic_write,
    into the file a symbolic link points at, keeping an existing file's permissions. A path that is not
    a plain file (/dev/stdout, a named pipe) cannot be replaced, nor a file in a folder that cannot be
    written: those are written in place."""
    target = Path(os.path.realpath(path))
    existing = target.stat() if target.exists() else None
    if existing is not None and (not stat.S_ISREG(existing.st_mode) or folder_write_problem(target.parent)):
        with open(target, "wb") as file:
            file.write(data)
        return
    with atomic_write(target) as file:
        file.write(data)
        if existing is not None:
            os.chmod(file.fileno(), stat.S_IMODE(existing.st_mode))


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folder_write_problem(folder: str | Path) -> str | None:
    """Why `folder` could not be created or written in, or None. Tried by making (and removing) a
    folder in the nearest one that exists: os.access answers yes to root where the kernel says no
    (/proc/x), and the first real write would fail later instead."""
    existing = Path(folder).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nmt-write-check-", dir=existing))
    except OSError as exc:
        return f"{existing} is not writable ({exc.strerror})"
    return None


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files in `folder` left by writers that are no longer running (killed mid-write)."""
    stale = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        pid = tmp.name.split(".")[-3]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is writing it right now
        stale.append(tmp)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: another spelling (~, .., a symbolic or hard link) included.
    A path that does not exist (yet, or any more) is compared by where it would resolve to."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        return a.samefile(b)
    except OSError:  # one is missing
        return a.resolve() == b.resolve()
