"""The files and folders the commands write: checked before the work that fills them, so that a
mistaken path is one line at start-up rather than an error after minutes of decoding, and standard
output for "-"."""

import errno
import os
import stat
import sys
from pathlib import Path

from nmt.errors import ConfigError
from nmt.files import folder_write_problem, replace_contents


def check_writable_folder(folder: str, option: str) -> None:
    """ConfigError unless `folder` exists as a writable folder or could be created."""
    problem = folder_write_problem(folder)
    if problem is not None:
        raise ConfigError(f"cannot create {option}={folder}: {problem}")


def check_output_file(path: str, option: str, inputs: dict[str, str | None] | None = None,
                      reads_stdin: bool = False, named: str | None = None) -> None:
    """ConfigError unless a file could be written at `path`, checked before the work that fills it.

    The folder must exist: a typo in it should not silently create a tree of folders. `inputs`
    (option -> path) are files the command reads: writing over one of them would lose it; so would
    writing over the file standard input reads (`< file`), when the command reads it (`reads_stdin`).
    `named` is how the messages name a file that `option` does not give itself (one written beside
    it); by default `option=path`.
    """
    named = named or f"{option}={path}"
    target = Path(path).expanduser().absolute()
    for name, given in (inputs or {}).items():
        if given is not None and _same_existing_file(target, Path(str(given)).expanduser()):
            raise ConfigError(f"{named} is also {name}={given}: writing it would destroy what the command "
                              f"reads; choose another {option}")
    if reads_stdin and _is_stdin_file(target):
        raise ConfigError(f"{named} is also the file standard input reads (< {path}): "
                          f"writing it would destroy what the command reads; choose another {option}")
    folder = target.parent
    reason = None
    if not folder.exists():
        existing = next(parent for parent in folder.parents if parent.exists())
        reason = errno.ENOENT if existing.is_dir() else errno.ENOTDIR
    elif not folder.is_dir():
        reason = errno.ENOTDIR
    elif target.is_dir():
        reason = errno.EISDIR
    if reason is not None:
        raise ConfigError(f"cannot write {named}: {os.strerror(reason)}")
    refusal = _write_refusal(target)
    if refusal is not None:
        raise ConfigError(f"cannot write {named}: {refusal}")


def _write_refusal(target: Path) -> str | None:
    """Why the kernel would not let `target` be written, or None. Tried rather than asked of os.access,
    which answers yes to root where the kernel says no (/proc/x), as in folder_write_problem."""
    if not target.exists():  # a new file needs what any new entry in its folder needs
        return folder_write_problem(target.parent)
    if target.is_file():  # opened to append with nothing written: its contents and times stay
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            return exc.strerror
    elif not os.access(target, os.W_OK):  # a device or a pipe: opening one may block or have effects
        return os.strerror(errno.EACCES)
    return None


def _same_existing_file(a: Path, b: Path) -> bool:
    """Like nmt.files.same_file, but a missing input is never the output: reading it will say so."""
    try:
        return os.path.samefile(a, b)  # also through links and other spellings of the path
    except OSError:  # one of them does not exist (yet)
        return False


def _is_stdin_file(target: Path) -> bool:
    """Whether standard input is `target`, opened as a file (a pipe or a terminal is not one)."""
    try:
        stdin = os.fstat(0)
        return stat.S_ISREG(stdin.st_mode) and os.path.samestat(stdin, os.stat(target))
    except OSError:  # no standard input, or `target` does not exist (yet)
        return False


def output_file(cfg) -> dict[str, tuple[str, str]]:
    """The file a job writes at `output=`, with its option, for the sweep check that no two jobs write
    the same one (a command's `job_outputs`); none for standard output (null or -)."""
    return {} if standard_stream(cfg.output) is None else {"its output": ("output", str(cfg.output))}


def standard_stream(path: str | None) -> str | None:
    """None (standard input or output) for "-", the name most command-line tools give them."""
    return None if path == "-" else path


def write_lines(path: str | None, lines: list[str], option: str = "output") -> None:
    """Writes one line per item to the file at `path`, or to standard output when `path` is None."""
    text = "".join(line + "\n" for line in lines)
    if path is None:
        sys.stdout.write(text)
        return
    try:
        replace_contents(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write {option}={path}: {exc.strerror}") from None
