"""Line readers: what a line is, encodings, gzip, and errors that name the file and line."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.readers import read_lines, read_parallel_text
from nmt.errors import ConfigError, DataError


def write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["a.txt", "a.txt.gz"])
def test_plain_and_gzip_give_the_same_lines(tmp_path, name):
    path = write(tmp_path / name, "Ein Hund läuft.\nA dog runs.\n".encode())
    assert read_lines(path) == ["Ein Hund läuft.", "A dog runs."]


def test_empty_lines_are_kept_and_final_newline_is_a_terminator(tmp_path):
    assert read_lines(write(tmp_path / "a", b"x\n\ny\n")) == ["x", "", "y"]
    assert read_lines(write(tmp_path / "b", b"x\n\ny")) == ["x", "", "y"]
    assert read_lines(write(tmp_path / "c", b"x\n\n")) == ["x", ""]
    assert read_lines(write(tmp_path / "d", b"")) == []
    assert read_lines(write(tmp_path / "e", b"\n")) == [""]


def test_crlf_line_endings_are_removed(tmp_path):
    assert read_lines(write(tmp_path / "a", b"x\r\ny\r\n")) == ["x", "y"]


def test_only_newline_splits_lines(tmp_path):
    # str.splitlines would also split on these and silently misalign parallel files.
    text = "a\u2028b\x0bc\x1cd"
    assert read_lines(write(tmp_path / "a", (text + "\n").encode())) == [text]


@pytest.mark.parametrize("name", ["bom.txt", "bom.txt.gz"])
def test_leading_byte_order_mark_is_stripped(tmp_path, name):
    path = write(tmp_path / name, "\ufeffhello\nworld\n".encode())
    assert read_lines(path) == ["hello", "world"]


def test_invalid_utf8_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.de", b"ok\nstill ok\nbro\xffken\n")
    with pytest.raises(DataError) as info:
        read_lines(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: invalid UTF-8")
    assert "data.on_decode_error=replace" in message
    assert "\n" not in message


def test_invalid_utf8_in_gzip_names_line(tmp_path):
    path = write(tmp_path / "bad.de.gz", b"\xc3\n")
    with pytest.raises(DataError, match=r"bad\.de\.gz:1: invalid UTF-8"):
        read_lines(path)


def test_replace_option_substitutes_bad_bytes(tmp_path):
    path = write(tmp_path / "bad.de", b"ok\nbro\xffken\n")
    assert read_lines(path, on_decode_error="replace") == ["ok", "bro\ufffdken"]


def test_unknown_decode_mode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="on_decode_error"):
        read_lines(write(tmp_path / "a", b"x\n"), on_decode_error="ignore")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nope.txt: no such file"):
        read_lines(tmp_path / "nope.txt")


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="x.gz"):
        read_lines(path)


def test_parallel_files_are_aligned(tmp_path):
    src = write(tmp_path / "c.de", b"eins\n\ndrei\n")
    tgt = write(tmp_path / "c.en.gz", b"one\ntwo\nthree\n")
    assert read_parallel_text(src, tgt) == (["eins", "", "drei"], ["one", "two", "three"])


@pytest.mark.parametrize("shorter", ["src", "tgt"])
def test_misaligned_files_name_both_files_and_counts(tmp_path, shorter):
    short = write(tmp_path / "short", b"eins\nzwei\n")
    long = write(tmp_path / "long", b"one\ntwo\nthree\nfour\nfive\n")
    src, tgt = (short, long) if shorter == "src" else (long, short)
    with pytest.raises(DataError) as info:
        read_parallel_text(src, tgt)
    message = str(info.value)
    assert f"{short} has 2 lines" in message and f"{long} has 5 lines" in message


def test_parallel_reader_forwards_decode_option(tmp_path):
    src = write(tmp_path / "c.de", b"\xff\n")
    tgt = write(tmp_path / "c.en", b"x\n")
    assert read_parallel_text(src, tgt, on_decode_error="replace") == (["\ufffd"], ["x"])


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_text, max_size=12), gz=st.booleans(), final_newline=st.booleans())
def test_read_lines_round_trips_arbitrary_text(lines, gz, final_newline):
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = "x" + lines[0]  # a leading BOM is deliberately dropped; not what this checks
    # The last newline may be omitted only after a non-empty line: "a\n" and "a" both mean ["a"],
    # but without its terminator a trailing empty line would not exist.
    terminated = final_newline or (lines and lines[-1] == "")
    data = "\n".join(lines) + ("\n" if terminated and lines else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / ("f.gz" if gz else "f.txt"), data.encode("utf-8"))
        assert read_lines(path) == lines


@pytest.mark.parametrize(("codec", "family", "mark"), [("utf-16-le", "UTF-16", "0xff 0xfe"),
                                                        ("utf-16-be", "UTF-16", "0xfe 0xff"),
                                                        ("utf-32-le", "UTF-32", "0xff 0xfe 0x00 0x00")])
@pytest.mark.parametrize("mode", ["error", "replace"])
def test_utf16_or_utf32_with_a_byte_order_mark_is_refused_with_how_to_convert(tmp_path, codec, family, mark, mode):
    """Before, an invalid-UTF-8 error whose fixes (on_decode_error=replace, iconv -f latin1) gave garbage."""
    path = write(tmp_path / "a.de", "\ufeffEin Hund.\nZwei Hunde.\n".encode(codec))
    with pytest.raises(DataError) as info:
        read_lines(path, on_decode_error=mode)
    assert str(info.value) == (f"{path}:1: starts with a {family} byte-order mark ({mark}): the file is {family}, "
                               f"not UTF-8; convert it (e.g. iconv -f {family.lower()} -t utf-8)")


@pytest.mark.parametrize(("encoding", "line", "example"), [
    ("utf-16-le", 1, "iconv -f utf-16le -t utf-8"), ("utf-16-be", 1, "iconv -f utf-16be -t utf-8"),
    ("utf-16-le", 2, "iconv -f utf-16le -t utf-8, or -f utf-16be")])
def test_utf16_without_a_byte_order_mark_is_refused_naming_the_line(tmp_path, encoding, line, example):
    """Latin text in UTF-16 is valid UTF-8 with a NUL byte beside each letter: it was translated as garbage."""
    text = "\n" * (line - 1) + "Ein Hund.\nZwei Hunde.\n"
    path = write(tmp_path / "a.de.gz", text.encode(encoding))
    with pytest.raises(DataError) as info:
        read_lines(path, on_decode_error="replace")
    assert str(info.value) == (f"{path}:{line}: NUL bytes between the letters: the file looks like UTF-16, not "
                               f"UTF-8; convert it (e.g. {example})")


def test_a_stray_nul_byte_is_an_odd_character_read_as_it_is(tmp_path):
    assert read_lines(write(tmp_path / "a", b"ein\x00hund\n\x00\nx\x00\x00\n")) == ["ein\x00hund", "\x00", "x\x00\x00"]


@pytest.mark.parametrize("name", ["mac.de", "mac.de.gz"])
@pytest.mark.parametrize("mode", ["error", "replace"])
def test_a_file_with_old_mac_line_ends_is_refused(tmp_path, name, mode):
    """`tr '\\n' '\\r'`: the whole file was one sentence, minutes of decoding with no output."""
    path = write(tmp_path / name, b"Ein Hund.\rZwei Hunde.\rDrei Hunde.\r")
    with pytest.raises(DataError) as info:
        read_lines(path, on_decode_error=mode)
    assert str(info.value) == (f"{path}:1: the file is one line with 2 carriage returns (\\r) inside: it has "
                               "old-Mac line ends; convert them to newlines (e.g. tr '\\r' '\\n')")


def test_a_carriage_return_inside_a_line_of_a_longer_file_is_kept(tmp_path):
    """Real corpora hold the odd stray \\r: only a file that is all one line is taken for old-Mac line ends."""
    assert read_lines(write(tmp_path / "a", b"a\rb\r\nc\n")) == ["a\rb", "c"]
    assert read_lines(write(tmp_path / "b", b"one line\r\n")) == ["one line"]
    assert read_lines(write(tmp_path / "c", b"one line\r")) == ["one line"]
