"""scripts/load_test.py's user mistakes: one error line and exit status 2, as with the commands.

The script starts real nmt-serve processes; a request over the server's limits (beam 50 against its
max_beam_size of 10) makes every request fail, which must not pass for a measurement.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_checkpoint import make_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "load_test.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("load_test") / "tiny.pt")


def load_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--requests", "4", "--clients", "2", "--warmup", "0",
               "--modes", "batching", "--server-args", "num_threads=1", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_missing_input_file_is_one_line(checkpoint, tmp_path):
    done = load_test(tmp_path, "--checkpoint", str(checkpoint), "--input", "nope.txt")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == ["error: nope.txt: no such file"]


def test_an_input_without_sentences_is_one_line(checkpoint, tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n")
    done = load_test(tmp_path, "--checkpoint", str(checkpoint), "--input", "blank.txt")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --input blank.txt has no non-blank line to send"]


def test_every_request_refused_is_an_error_not_a_result(checkpoint, tmp_path):
    done = load_test(tmp_path, "--checkpoint", str(checkpoint), "--beam-size", "50", "--log-dir", "logs/new")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: every request failed (batching: 4 x 422: HTTP statuses or client errors)"]
    assert (tmp_path / "logs/new/load_test_batching.log").is_file()  # the missing log folder was created


def test_a_server_that_cannot_start_names_its_own_error(checkpoint, tmp_path):
    done = load_test(tmp_path, "--checkpoint", str(checkpoint), "--server-args", "max_beam_size=0")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: nmt-serve exited with status 2: error: max_beam_size") and "(log: " in line
