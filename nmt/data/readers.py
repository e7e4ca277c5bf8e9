"""Reading line-aligned text files (plain or gzip) into lists of sentences.

Every corpus format ends up here, so this is the one place that decides what a "line" is: UTF-8
text split on ``\\n`` only (not on the exotic separators ``str.splitlines`` knows, which would
silently misalign parallel files), a trailing ``\\r`` removed for files written on Windows, and a
leading byte-order mark dropped.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from nmt.errors import ConfigError, DataError

DECODE_ERROR_MODES = ("error", "replace")
REPLACE_HINT = "set data.on_decode_error=replace to replace bad bytes"
_BOM = "\ufeff"


def _read_bytes(path: Path) -> bytes:
    """Whole file content, gunzipped when the name ends in ``.gz``; OS errors become DataError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such file") from e
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid (or a truncated) gzip file: {e}") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


def _decode(data: bytes, path: Path, on_decode_error: str, hint: str = REPLACE_HINT) -> str:
    """UTF-8 decode; in strict mode the error names the 1-based line and column of the bad byte."""
    try:
        return data.decode("utf-8", errors="strict" if on_decode_error == "error" else "replace")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: invalid UTF-8 (byte 0x{data[e.start]:02x} at byte column {column}); {hint}"
        ) from e


def read_lines(path: str | Path, *, on_decode_error: str = "error", hint: str = REPLACE_HINT) -> list[str]:
    """Lines of a UTF-8 text file (``.gz`` is decompressed) without their line terminators.

    Empty lines are kept as ``""`` so that parallel files stay aligned; a final newline does not
    produce an extra empty line. ``on_decode_error="replace"`` turns invalid bytes into U+FFFD
    instead of raising; otherwise the error names the line and ends with ``hint``.
    """
    path = Path(path)
    _check_mode(on_decode_error)
    return decode_lines(_read_bytes(path), path, on_decode_error=on_decode_error, hint=hint)


def decode_lines(data: bytes, name: str | Path, *, on_decode_error: str = "error",
                 hint: str = REPLACE_HINT) -> list[str]:
    """The lines of UTF-8 ``data`` as ``read_lines`` splits them (standard input, for instance);
    ``name`` is what errors call the source."""
    _check_mode(on_decode_error)
    text = _decode(data, Path(name), on_decode_error, hint)
    if text.startswith(_BOM):
        text = text[1:]
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":  # the file ended with a newline: that is a terminator, not an empty line
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _check_mode(on_decode_error: str) -> None:
    if on_decode_error not in DECODE_ERROR_MODES:
        raise ConfigError(
            f"data.on_decode_error must be one of {', '.join(DECODE_ERROR_MODES)}; got {on_decode_error!r}"
        )


def read_parallel_text(src_path: str | Path, tgt_path: str | Path, **kw) -> tuple[list[str], list[str]]:
    """Read a source and a target file whose line ``i`` are translations of each other."""
    src = read_lines(src_path, **kw)
    tgt = read_lines(tgt_path, **kw)
    if len(src) != len(tgt):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)} lines"
        )
    return src, tgt
