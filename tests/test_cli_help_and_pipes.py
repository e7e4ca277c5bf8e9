"""What the commands print for --help, and how they stop when the reader of their output has gone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_checkpoint import make_checkpoint
from user_errors import main_error

import nmt.cli.align
import nmt.cli.train
import nmt.cli.translate

COMMANDS = ["train", "evaluate", "translate", "plot", "align", "serve", "average"]
SIGPIPE_STATUS = 141  # what a shell reports for a process that SIGPIPE ended
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
FULL_DEVICE_ERROR = "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_says_what_the_command_does_and_lists_only_its_own_options(command):
    done = subprocess.run([f"nmt-{command}", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, _, rest = done.stdout.partition("\n")
    assert first.startswith(f"nmt-{command}: ")
    assert f"\n  nmt-{command} " in rest  # a usage example
    if command == "train":
        assert "model/attention: additive, concat, dot, general, multihead, scaled_dot" in rest
        assert "\n  batch_tokens: " in rest
    else:  # Hydra's default help listed nmt-train's config groups for every command
        assert "model/attention" not in rest and "experiment:" not in rest


SEARCH_OPTIONS = {"beam_size", "length_penalty", "max_len_a", "max_len_b", "max_output_len"}  # _decoding.yaml


@pytest.mark.parametrize("command", ["evaluate", "translate", "plot", "serve", "align"])
def test_the_search_options_are_listed_by_the_commands_that_search_and_only_by_them(command):
    """nmt-align's forced decoding searches nothing, yet its --help listed beam_size and the length limits."""
    done = subprocess.run([f"nmt-{command}", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = {line.partition(":")[0] for line in done.stdout.splitlines()}
    assert {"device", "batch_sentences"} <= listed
    assert listed & SEARCH_OPTIONS == (set() if command == "align" else SEARCH_OPTIONS)


@pytest.mark.parametrize("option", sorted(SEARCH_OPTIONS))
def test_nmt_align_refuses_a_search_option_as_one_it_does_not_have(capsys, monkeypatch, option):
    """It took them, and ignored them."""
    message = main_error(capsys, monkeypatch, nmt.cli.align.main, "src_file=s.de", "tgt_file=s.en", f"{option}=3")
    assert message.startswith(f"{option} is not an option")
    assert message.endswith("; `nmt-align --cfg job` lists them all")


ATTENTIONS = "additive, concat, dot, general, multihead, scaled_dot"


@pytest.mark.parametrize(("main", "args", "message"), [
    (nmt.cli.train.main, ["trainer.max_step=3", "--help"],
     "trainer.max_step is not an option (did you mean trainer.max_steps?); `nmt-train --cfg job` lists them all"),
    (nmt.cli.train.main, ["--cfg", "job", "model/attention=luong"],
     f"model/attention=luong is not an option; choose one of: {ATTENTIONS}"),
    (nmt.cli.train.main, ["--cfg", "hydra", "--resolve", "trainer.max_step=3"],
     "trainer.max_step is not an option (did you mean trainer.max_steps?); `nmt-train --cfg job` lists them all"),
    (nmt.cli.train.main, ["--info", "defaults", "trainer.max_step=3"],
     "trainer.max_step is not an option (did you mean trainer.max_steps?); `nmt-train --cfg job` lists them all"),
    (nmt.cli.train.main, ["--hydra-help", "trainer.max_step=3"],
     "trainer.max_step is not an option (did you mean trainer.max_steps?); `nmt-train --cfg job` lists them all"),
    (nmt.cli.translate.main, ["beam_sise=3", "--help"],
     "beam_sise is not an option (did you mean beam_size?); `nmt-translate --cfg job` lists them all"),
])
def test_a_mistake_in_the_config_that_help_or_cfg_shows_is_one_line(capsys, monkeypatch, main, args, message):
    """Hydra composes the config these flags show itself: a traceback with --help, several lines of its
    own with --cfg, exit status 1 either way."""
    assert main_error(capsys, monkeypatch, main, *args) == message


def stopped_reader(args: list[str]) -> subprocess.CompletedProcess:
    """Runs a command whose output pipe is closed before it writes, as `| head` closes it early."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    return subprocess.CompletedProcess(args, process.wait(timeout=120), None, stderr)


@pytest.mark.parametrize("flags", [["--help"], ["--cfg", "job"]])
def test_help_and_the_config_into_a_closed_pipe_stop_quietly(flags):
    """`--cfg job` is written by Hydra, whose own handler printed a traceback and exited 1."""
    done = stopped_reader(["nmt-train", *flags])
    assert (done.returncode, done.stderr) == (SIGPIPE_STATUS, "")


def test_translations_into_a_closed_pipe_stop_quietly(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    (tmp_path / "in.txt").write_text("ein hund läuft\n" * 50)
    done = stopped_reader(["nmt-translate", f"checkpoint={checkpoint}", f"input={tmp_path / 'in.txt'}",
                           "device=cpu", "beam_size=1", "max_len_b=3"])
    assert (done.returncode, done.stderr) == (SIGPIPE_STATUS, "")


def test_output_larger_than_the_pipe_into_a_reader_that_goes_away_stops_with_its_status(tmp_path):
    """`nmt-align ... | head -1` with more output than a pipe holds: the command writes it in one call, the
    pipe takes part of it before the reader goes, and the rest was dropped with exit status 0."""
    words = " ".join(["Wort"] * 20)
    (tmp_path / "a.txt").write_text(f"{words}\n" * 5000)  # links of 20 words: about 800 KB of output
    process = subprocess.Popen(["nmt-align", "method=diagonal", f"src_file={tmp_path / 'a.txt'}",
                                f"tgt_file={tmp_path / 'a.txt'}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(100)  # the first line has come: the command is inside its one large write
    process.stdout.close()
    stderr = process.stderr.read()
    assert (process.wait(timeout=120), stderr) == (SIGPIPE_STATUS, b"")

def into_full_device(args: list[str], unbuffered: bool) -> subprocess.CompletedProcess:
    """Runs a command whose standard output is a full disk (/dev/full: every write fails with ENOSPC)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1" if unbuffered else ""}
    with open("/dev/full", "w") as full:
        return subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=env)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("flags", [["--help"], ["--cfg", "job"]])
def test_help_and_the_config_into_a_full_output_are_one_error_line(unbuffered, flags):
    done = into_full_device(["nmt-translate", *flags], unbuffered)
    assert (done.returncode, done.stderr) == (2, FULL_DEVICE_ERROR)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("script", ["benchmark.py", "load_test.py", "distilled_corpus.py"])
@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_scripts_help_into_a_full_output_is_one_error_line(script, unbuffered):
    """argparse drops a failed write of --help: unbuffered, nothing was left to fail at exit, so the
    scripts printed nothing and exited 0."""
    done = into_full_device([sys.executable, str(SCRIPTS / script), "--help"], unbuffered)
    assert (done.returncode, done.stderr) == (2, FULL_DEVICE_ERROR)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_translations_and_alignments_into_a_full_output_are_one_error_line(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    (tmp_path / "in.txt").write_text("ein hund läuft\n" * 50)
    (tmp_path / "out.txt").write_text("a dog runs\n" * 50)
    translate = ["nmt-translate", f"checkpoint={checkpoint}", f"input={tmp_path / 'in.txt'}", "device=cpu",
                 "beam_size=1", "max_len_b=3"]
    align = ["nmt-align", "method=diagonal", f"src_file={tmp_path / 'in.txt'}", f"tgt_file={tmp_path / 'out.txt'}"]
    for args in (translate, align):
        done = into_full_device(args, unbuffered=False)
        assert (done.returncode, done.stderr) == (2, FULL_DEVICE_ERROR), args[0]
