"""What the commands print for --help, and how they stop when the reader of their output has gone."""

import subprocess

import pytest
from tiny_checkpoint import make_checkpoint

COMMANDS = ["train", "evaluate", "translate", "plot", "align", "serve", "average"]
SIGPIPE_STATUS = 141  # what a shell reports for a process that SIGPIPE ended


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


def stopped_reader(args: list[str]) -> subprocess.CompletedProcess:
    """Runs a command whose output pipe is closed before it writes, as `| head` closes it early."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    return subprocess.CompletedProcess(args, process.wait(timeout=120), None, stderr)


def test_help_into_a_closed_pipe_stops_quietly():
    done = stopped_reader(["nmt-train", "--help"])
    assert (done.returncode, done.stderr) == (SIGPIPE_STATUS, "")


def test_translations_into_a_closed_pipe_stop_quietly(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    (tmp_path / "in.txt").write_text("ein hund läuft\n" * 50)
    done = stopped_reader(["nmt-translate", f"checkpoint={checkpoint}", f"input={tmp_path / 'in.txt'}",
                           "device=cpu", "beam_size=1", "max_len_b=3"])
    assert (done.returncode, done.stderr) == (SIGPIPE_STATUS, "")
