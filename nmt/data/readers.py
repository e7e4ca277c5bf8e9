"""Reading line-aligned text files (plain or gzip), streamed line by line or into lists.

Every corpus format ends up here, so this is the one place that decides what a "line" is: UTF-8
text split on ``\\n`` only (not on the exotic separators ``str.splitlines`` knows, which would
silently misalign parallel files), a trailing ``\\r`` removed for files written on Windows, and a
leading byte-order mark dropped.
"""

from __future__ import annotations

import gzip
import io
import itertools
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from nmt.errors import ConfigError, DataError

DECODE_ERROR_MODES = ("error", "replace")
REPLACE_HINT = "set data.on_decode_error=replace to replace bad bytes"
# Inference commands cannot set data.on_decode_error, so they point to converting the file instead.
CONVERT_TO_UTF8 = "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
_BOM = "\ufeff"


def _open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, gunzipped when the name ends in ``.gz``."""
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such file") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


def _raw_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, terminator included; read and decompression errors become DataError.
    Iterating a binary file splits on ``\\n`` only, which is the rule this module promises."""
    with _open_binary(path) as f:
        try:
            yield from f
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a valid (or a truncated) gzip file: {e}") from e
        except OSError as e:
            raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


def _decode_line(raw: bytes, number: int, name: Path, errors: str, hint: str) -> str:
    """One line decoded; in strict mode the error names the 1-based line and byte column."""
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise DataError(
            f"{name}:{number}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte column {e.start + 1}); {hint}"
        ) from e


def _lines_of(raw_lines: Iterable[bytes], name: str | Path, on_decode_error: str, hint: str) -> Iterator[str]:
    """Decoded lines without terminators, the leading byte-order mark dropped (``on_decode_error``
    already checked by the caller, so a bad mode fails at the call, not at the first line)."""
    errors = "strict" if on_decode_error == "error" else "replace"
    for number, raw in enumerate(raw_lines, start=1):
        line = _decode_line(raw, number, Path(name), errors, hint)
        if number == 1 and line.startswith(_BOM):
            line = line[1:]
            if not line:  # the file is only a byte-order mark: no lines at all
                return
        if line.endswith("\n"):
            line = line[:-1]
        yield line[:-1] if line.endswith("\r") else line


def iter_lines(path: str | Path, *, on_decode_error: str = "error", hint: str = REPLACE_HINT) -> Iterator[str]:
    """Lines of a UTF-8 text file (``.gz`` is decompressed) without their terminators, read one at a
    time so a file of any size costs one line of memory.

    Empty lines are kept as ``""`` so that parallel files stay aligned; a final newline does not
    produce an extra empty line. ``on_decode_error="replace"`` turns invalid bytes into U+FFFD
    instead of raising; otherwise the error names the line and ends with ``hint``.
    """
    path = Path(path)
    _check_mode(on_decode_error)
    return _lines_of(_raw_lines(path), path, on_decode_error, hint)


def read_lines(path: str | Path, *, on_decode_error: str = "error", hint: str = REPLACE_HINT) -> list[str]:
    """All of ``iter_lines(path)`` as a list (for files known to be small: dev and test sets)."""
    return list(iter_lines(path, on_decode_error=on_decode_error, hint=hint))


def decode_lines(data: bytes, name: str | Path, *, on_decode_error: str = "error",
                 hint: str = REPLACE_HINT) -> list[str]:
    """The lines of UTF-8 ``data`` as ``read_lines`` splits them (standard input, for instance);
    ``name`` is what errors call the source."""
    _check_mode(on_decode_error)
    return list(_lines_of(io.BytesIO(data), name, on_decode_error, hint))


def _check_mode(on_decode_error: str) -> None:
    if on_decode_error not in DECODE_ERROR_MODES:
        raise ConfigError(
            f"data.on_decode_error must be one of {', '.join(DECODE_ERROR_MODES)}; got {on_decode_error!r}"
        )


def iter_parallel_text(src_path: str | Path, tgt_path: str | Path, **kw) -> Iterator[tuple[str, str]]:
    """``(source line, target line)`` pairs of two files whose line ``i`` are translations of each
    other, streamed; files of different lengths are a DataError naming both and their line counts."""
    missing = object()
    src_total = tgt_total = 0
    pairs = itertools.zip_longest(iter_lines(src_path, **kw), iter_lines(tgt_path, **kw), fillvalue=missing)
    for src, tgt in pairs:
        src_total += src is not missing
        tgt_total += tgt is not missing
        if missing not in (src, tgt):
            yield src, tgt
    if src_total != tgt_total:
        raise DataError(
            f"parallel files differ in length: {src_path} has {src_total} lines, "
            f"{tgt_path} has {tgt_total} lines"
        )


def read_parallel_text(src_path: str | Path, tgt_path: str | Path, **kw) -> tuple[list[str], list[str]]:
    """Both files of ``iter_parallel_text`` as two aligned lists (for small files)."""
    src, tgt = [], []
    for s, t in iter_parallel_text(src_path, tgt_path, **kw):
        src.append(s)
        tgt.append(t)
    return src, tgt
