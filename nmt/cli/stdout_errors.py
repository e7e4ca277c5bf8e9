"""Standard output that fails: a reader gone (`| head`) or a write refused (`> /dev/full`).

Each ends a command quietly or with one line, never a traceback or Python's message at exit.
"""

import argparse
import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn


class StdoutError(BaseException):
    """A write to standard output failed: the reader has gone (`| head`; `error` is a BrokenPipeError)
    or the write was refused (`> /dev/full`). Told apart from a failed write to a file the command
    names, whose message names its option. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on its way takes it for a bug: Hydra's own printed a traceback for
    `--cfg job > /dev/full`."""

    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


# Offered a failed write before it becomes a StdoutError (see failures_handled_by); None: none is.
_failure_handler: Callable[[OSError], bool] | None = None


@contextlib.contextmanager
def failures_handled_by(handler: Callable[[OSError], bool]) -> Iterator[None]:
    """While active, a failed write to standard output is first offered to `handler`; when it takes it
    (returns True), that write and every later one are discarded instead of raising StdoutError. For
    training, whose results are its checkpoints: a log line that fails mid-update would stop it there,
    losing the updates since the last save; the handler asks it to stop at its next safe point."""
    global _failure_handler
    previous, _failure_handler = _failure_handler, handler
    try:
        yield
    finally:
        _failure_handler = previous


class _ReportingStdout(io.RawIOBase):
    """Standard output's file descriptor, whose failed writes raise StdoutError."""

    def __init__(self, raw: io.RawIOBase):
        super().__init__()
        self._raw = raw
        self._discarding = False  # a handler took a failure: what follows goes nowhere

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return self._raw.isatty()

    def write(self, data) -> int:
        """Writes all of `data`. A pipe whose reader goes away takes part of a large write and returns its
        count; BufferedWriter does not retry a Python raw stream's rest, so the next write does it, and
        its EPIPE reaches stop_on_stdout_error (as a broken pipe) instead of a silent exit status 0."""
        view, written = memoryview(data).cast("B"), 0
        if self._discarding:
            return len(view)
        try:
            while written < len(view):
                written += self._raw.write(view[written:]) or 0
        except OSError as exc:
            if _failure_handler is None or not _failure_handler(exc):
                raise StdoutError(exc) from None
            self._discarding = True
            return len(view)
        return written


def report_stdout_errors() -> None:
    """Rebuilds sys.stdout over _ReportingStdout, so that a failed write to it anywhere (the results,
    print, Hydra's --help) is a StdoutError. Only the process's own standard output (not a test's
    capture), once. Buffered as before: unbuffered under PYTHONUNBUFFERED (python -u)."""
    old = sys.stdout
    binary = getattr(old, "buffer", None)
    buffered = isinstance(binary, io.BufferedWriter)
    raw = binary.raw if buffered else binary
    if old is not sys.__stdout__ or not isinstance(raw, io.FileIO):
        return
    old.flush()
    reporting = _ReportingStdout(raw)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(reporting) if buffered else reporting, encoding=old.encoding,
                                  errors=old.errors, line_buffering=old.line_buffering,
                                  write_through=old.write_through)


def _discard_stdout() -> None:
    """Points standard output at /dev/null: else the flush at exit fails once more, with a message."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def stop_on_broken_pipe() -> NoReturn:
    """The reader of the output has gone (`nmt-translate ... | head`): stop quietly, as `cat` does,
    with the status a shell reports for a process that SIGPIPE ended (Python raises instead)."""
    _discard_stdout()
    sys.exit(128 + signal.SIGPIPE)


@contextlib.contextmanager
def stopping_on_stdout_errors() -> Iterator[None]:
    """Runs a command's body so that a failed write to standard output, the last one included, ends it
    as stop_on_broken_pipe or stop_on_stdout_error do. The output is flushed here, also on sys.exit
    (Hydra's --help): a write that failed in the flush at exit would be a message and status 120."""
    report_stdout_errors()
    try:
        try:
            yield
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        stop_on_broken_pipe()
    except StdoutError as exc:
        stop_on_stdout_error(exc)


def stop_on_stdout_error(exc: StdoutError) -> NoReturn:
    """Standard output cannot be written: its reader has gone, as stop_on_broken_pipe; else (`> /dev/full`)
    one line and exit status 2, as for output=FILE."""
    if isinstance(exc.error, BrokenPipeError):
        stop_on_broken_pipe()
    print(f"error: cannot write to standard output: {exc.error.strerror}", file=sys.stderr)
    _discard_stdout()
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for the scripts, except that a failed write of `--help` to standard output is
    not dropped: argparse ignores the OSError, so under PYTHONUNBUFFERED (nothing left for the flush
    at exit to fail on) `--help > /dev/full` printed nothing and exited 0."""

    def _print_message(self, message, file=None):
        if file is not None and file is sys.stdout and message:
            file.write(message)  # a StdoutError or BrokenPipeError reaches stopping_on_stdout_errors
        else:
            super()._print_message(message, file)
