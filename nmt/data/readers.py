"""Reading line-aligned text files (plain or gzip), streamed line by line or into lists.

Every corpus format ends up here, so this is the one place that decides what a "line" is: UTF-8
text split on ``\\n`` only (not on the exotic separators ``str.splitlines`` knows, which would
silently misalign parallel files), a trailing ``\\r`` removed for files written on Windows, and a
leading byte-order mark dropped. UTF-16 and UTF-32 files, and a file that is one line with ``\\r``
line ends inside (old Mac), are refused with what to convert them with.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
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
# UTF-32's little-endian mark starts with UTF-16's, so it is tried first.
_UNICODE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                 (b"\xfe\xff", "UTF-16"))
# A line that starts with two UTF-16 code units of Latin text, in either byte order.
_UTF16_START = re.compile(rb"(?:[^\0]\0){2}|(?:\0[^\0]){2}")


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


def _check_not_utf16(raw: bytes, number: int, name: Path) -> None:
    """DataError for a line of a UTF-16 or UTF-32 file, in either decoding mode: its byte-order mark
    would be an invalid-UTF-8 error whose fixes (on_decode_error=replace, iconv -f latin1) give
    garbage, and without one, Latin text in UTF-16 is valid UTF-8 with a NUL byte after (UTF-16LE) or
    before (UTF-16BE) each letter. A NUL byte elsewhere is an odd character, read as it is."""
    if number == 1:
        for mark, encoding in _UNICODE_BOMS:
            if raw.startswith(mark):
                raise DataError(f"{name}:1: starts with a {encoding} byte-order mark "
                                f"({' '.join(f'0x{byte:02x}' for byte in mark)}): the file is {encoding}, not UTF-8; "
                                f"convert it (e.g. iconv -f {encoding.lower()} -t utf-8)")
    if b"\0" in raw and _UTF16_START.match(raw):  # the search first: it runs at C speed on every line
        # The first line starts at a letter ("A\0b\0": little-endian); the others one byte into the
        # line end's pair ("\n\0" or "\0\n"), so there the byte order does not show.
        example = (f"iconv -f {'utf-16be' if raw[0] == 0 else 'utf-16le'} -t utf-8" if number == 1
                   else "iconv -f utf-16le -t utf-8, or -f utf-16be")
        raise DataError(f"{name}:{number}: NUL bytes between the letters: the file looks like UTF-16, not UTF-8; "
                        f"convert it (e.g. {example})")


def _lines_of(raw_lines: Iterable[bytes], name: str | Path, on_decode_error: str, hint: str) -> Iterator[str]:
    """Decoded lines without terminators, the leading byte-order mark dropped (``on_decode_error``
    already checked by the caller, so a bad mode fails at the call, not at the first line)."""
    errors = "strict" if on_decode_error == "error" else "replace"
    held = None  # a first line with \r inside, held back until we know whether the file has another
    for number, raw in enumerate(raw_lines, start=1):
        _check_not_utf16(raw, number, Path(name))
        line = _decode_line(raw, number, Path(name), errors, hint)
        if number == 1 and line.startswith(_BOM):
            line = line[1:]
            if not line:  # the file is only a byte-order mark: no lines at all
                return
        if line.endswith("\n"):
            line = line[:-1]
        line = line[:-1] if line.endswith("\r") else line
        if number == 1 and "\r" in line:
            held = line
            continue
        if held is not None:
            yield held
            held = None
        yield line
    if held is not None:
        raise _cr_line_ends(held, Path(name))


def _cr_line_ends(line: str, name: Path) -> DataError:
    """The error for a file that is one line with \\r inside: old-Mac line ends (`tr '\\n' '\\r'`), which
    would be one sentence (minutes of decoding, no output). Only so: a \\r inside a line of a longer
    file may be a stray character of a real corpus, not a line end."""
    returns = line.count("\r")
    return DataError(f"{name}:1: the file is one line with {returns} carriage returns (\\r) inside: it has old-Mac "
                     "line ends; convert them to newlines (e.g. tr '\\r' '\\n')")


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
