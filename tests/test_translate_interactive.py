"""nmt-translate's interactive mode: each typed line is translated and written before the next one is
read, at a terminal by default (interactive=auto) or on demand (interactive=true)."""

import io
import os
import pty
import select
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import one_line_error

from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.errors import ConfigError
from nmt.inference.translator import Translator

SOURCES = ["ein hund läuft über die wiese", "", "zwei männer spielen fußball"]
TIMEOUT_S = 120  # the command's start (torch, the checkpoint) on a busy 2-core machine


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def read_line(fd: int, buffer: bytearray) -> bytes:
    """The next line written to fd, waiting at most TIMEOUT_S: a command that only answers once its
    input has ended would fail here, not hang."""
    while b"\n" not in buffer:
        ready, _, _ = select.select([fd], [], [], TIMEOUT_S)
        if not ready:
            raise AssertionError(f"no output line within {TIMEOUT_S} s (got {bytes(buffer)!r})")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"output ended before a full line (got {bytes(buffer)!r})")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def start(checkpoint, *options: str, stdin=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nmt.cli.translate", f"checkpoint={checkpoint}", "device=cpu",
                             "beam_size=2", *options], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_each_line_is_answered_before_the_next_is_sent(checkpoint):
    expected = [hyps[0].text for hyps in Translator.load(checkpoint, "cpu").translate(SOURCES, beam_size=2)]
    process = start(checkpoint, "interactive=true")
    buffer = bytearray()
    try:
        answers = []
        for source in SOURCES:
            process.stdin.write(source.encode() + b"\n")
            process.stdin.flush()  # the next line is only sent once this one is answered
            answers.append(read_line(process.stdout.fileno(), buffer).decode())
        process.stdin.write(b"\xff\xfe not utf-8\n")
        process.stdin.flush()
        answers.append(read_line(process.stdout.fileno(), buffer).decode())  # answered, not skipped
        process.stdin.write(SOURCES[0].encode() + b"\n")
        process.stdin.flush()
        answers.append(read_line(process.stdout.fileno(), buffer).decode())
        process.stdin.close()
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        process.kill()
    assert answers == [*expected, "", expected[0]]  # the bad line gets an empty answer, the session goes on
    errors = process.stderr.read().decode()
    assert "error: <stdin>:4: invalid UTF-8 (byte 0xff at byte column 1); it is answered as an empty line" in errors


def test_a_terminal_makes_auto_interactive(checkpoint):
    [[expected]] = Translator.load(checkpoint, "cpu").translate([SOURCES[0]], beam_size=2)
    controller, terminal = pty.openpty()
    process = start(checkpoint, stdin=terminal)  # interactive=auto, the default
    os.close(terminal)
    buffer = bytearray()
    try:
        os.write(controller, SOURCES[0].encode() + b"\n")
        answer = read_line(process.stdout.fileno(), buffer).decode()
        os.write(controller, b"\x04")  # Ctrl-D: end of input
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        process.kill()
        os.close(controller)
    assert answer == expected.text
    assert "type a sentence and press Enter (Ctrl-D ends)" in process.stderr.read().decode()


@pytest.mark.parametrize("options", [["input=-", "output=-"], ["input=-", "output=-", "interactive=true"]])
def test_a_dash_names_standard_input_and_output(checkpoint, options):
    expected = [hyps[0].text for hyps in Translator.load(checkpoint, "cpu").translate(SOURCES, beam_size=2)]
    process = start(checkpoint, *options)
    out, errors = process.communicate("".join(f"{line}\n" for line in SOURCES).encode(), timeout=TIMEOUT_S)
    assert process.returncode == 0, errors.decode()[-2000:]
    assert out.decode().split("\n")[:-1] == expected  # not read from, nor written to, a file named "-"


def command_config(checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", "beam_size=2",
                                               "max_len_b=4", *overrides])


def answered_interactively(monkeypatch, capsys, cfg, lines: list[str]) -> list[str]:
    """What nmt-translate interactive=true writes for `lines` typed one by one, run in this process."""
    typed = io.TextIOWrapper(io.BytesIO("".join(f"{line}\n" for line in lines).encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", typed)
    capsys.readouterr()
    translate.run(cfg)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("options", "answer_lines"), [(["nbest=2", "alignment=true"], 2),
                                                     (["sampling=true", "nbest=2", "sampling_seed=4"], 2)])
def test_each_typed_line_gets_what_the_same_line_in_a_file_gets(checkpoint, tmp_path, monkeypatch, capsys, options,
                                                                answer_lines):
    """The options that shape an answer (n-best lists, word links, sampling) hold line by line too."""
    from_files = []
    for line in SOURCES:
        (tmp_path / "in.txt").write_text(f"{line}\n", encoding="utf-8")
        translate.run(command_config(checkpoint, f"input={tmp_path / 'in.txt'}", *options))
        answer = capsys.readouterr().out.splitlines()
        assert len(answer) == answer_lines
        from_files += answer
    typed = answered_interactively(monkeypatch, capsys, command_config(checkpoint, "interactive=true", *options),
                                   SOURCES)
    assert typed == from_files


@pytest.mark.parametrize(("option", "input_path", "terminal", "interactive"), [
    ("auto", None, True, True),
    ("auto", None, False, False),  # a pipe: read it whole, translate in batches
    ("auto", "in.txt", True, False),
    (True, None, False, True),
    (False, None, True, False),
])
def test_when_translation_is_interactive(option, input_path, terminal, interactive):
    assert translate.is_interactive(option, input_path, terminal) is interactive


@pytest.mark.parametrize(("overrides", "message"), [
    (["interactive=yes"], "interactive='yes' is not valid; choose true, false or auto"),
    (["interactive=true", "input=in.txt"], "interactive=true reads standard input line by line, but input=in.txt"),
    (["interactive=true", "prefix=p.txt"], "prefix= goes with whole files, not with interactive translation"),
    (["interactive=true", "output=out.txt"], "output= goes with whole files, not with interactive translation"),
])
def test_interactive_option_mistakes_are_one_line(checkpoint, capsys, overrides, message):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])
    assert message in one_line_error(capsys, translate.run, cfg)


def test_is_interactive_rejects_other_values():
    with pytest.raises(ConfigError, match="choose true, false or auto"):
        translate.is_interactive("sometimes", None, True)
