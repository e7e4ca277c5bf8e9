"""Faults during training: SIGKILL at any moment, SIGTERM/SIGINT, NaN/Inf losses, out of memory.

The SIGKILL test forks training processes from a forkserver that has already imported torch and
nmt, so each of the 20 kills costs a fraction of a second instead of a fresh interpreter.
"""

import contextlib
import io
import logging
import multiprocessing
import os
import pty
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf

import nmt.cli.train as cli_train
import nmt.training.trainer as trainer_module
from nmt.cli.common import config_dir, exit_on_user_error
from nmt.errors import TrainingError
from nmt.models.seq2seq import Seq2Seq
from nmt.training.checkpoint import load_checkpoint
from nmt.training.guards import out_of_memory_advice
from nmt.training.signals import StopOnSignal, StopReason, TrainingStopped
from nmt.training.trainer import train

TINY = ["experiment=smoke", "data.max_train_examples=300", "data.max_len=30", "tokenizer.vocab_size=200",
        "model.emb_size=16", "model.enc_hidden=16", "model.dec_hidden=16", "trainer.batch_tokens=256",
        "trainer.valid_max_sentences=4", "trainer.valid_max_len_b=2", "trainer.plot_sentences=0",
        "trainer.progress=false"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(multi30k_root: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[*TINY, f"data.root={multi30k_root}", f"data.cache_dir={cache}",
                                           *overrides])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# --- SIGKILL at random moments --------------------------------------------------------------------

def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill_hook(hook: str, nth: int) -> None:
    """Makes this (child) process SIGKILL itself inside its `nth` checkpoint write, at a given point."""
    import nmt.files as files
    import nmt.training.checkpoint as checkpoint

    calls = {"n": 0}

    def due() -> bool:
        calls["n"] += 1
        return calls["n"] == nth

    if hook == "half_written":  # torch.save has written half of the file
        real_save = torch.save

        def save(obj, f):
            buffer = io.BytesIO()
            real_save(obj, buffer)
            if due():
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                _die()
            f.write(buffer.getvalue())

        checkpoint.torch.save = save
    elif hook == "before_rename":  # complete and fsynced, not yet renamed over last.pt
        real_replace = os.replace
        # Only checkpoint renames count: the data cache is written with os.replace too.
        files.os.replace = lambda a, b: _die() if str(b).endswith(".pt") and due() else real_replace(a, b)
    elif hook == "after_rename":  # renamed, the folder not yet fsynced
        # Only checkpoints are written durably, so only their renames reach this.
        real_fsync_folder = files._fsync_folder
        files._fsync_folder = lambda folder: _die() if due() else real_fsync_folder(folder)


def _train_child(cfg: dict, run_dir: str, hook: str | None, nth: int) -> None:
    """Runs in a forked child: train with resume=auto, optionally dying inside a checkpoint write."""
    log = os.open(Path(run_dir) / "child.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if hook:
        _install_kill_hook(hook, nth)
    train(OmegaConf.create(cfg), Path(run_dir))


def _temporaries(run_dir: Path) -> list[Path]:
    return list((run_dir / "checkpoints").glob(".*.tmp")) if (run_dir / "checkpoints").is_dir() else []


def test_sigkill_at_random_moments_always_leaves_a_checkpoint_to_resume_from(multi30k_root, cache, tmp_path):
    """20 kills: 14 at random times, 6 inside checkpoint writes. After each, last.pt loads and holds no
    fewer steps than before; then the run is finished with resume=auto and its parameters equal those
    of a run that was never killed."""
    context = multiprocessing.get_context("forkserver")
    # torch._dynamo: the optimizer imports it lazily, which would cost every child two seconds.
    context.set_forkserver_preload(["torch._dynamo", "nmt.training.trainer", __name__])

    def run(run_dir: Path, max_steps: int, hook=None, nth=0, kill_after: float | None = None) -> int:
        cfg = config(multi30k_root, cache, f"trainer.max_steps={max_steps}", "trainer.valid_every=5",
                     "trainer.save_every=1", "trainer.num_threads=1", "resume=auto")
        run_dir.mkdir(exist_ok=True)
        child = context.Process(target=_train_child, args=(OmegaConf.to_container(cfg, resolve=True),
                                                            str(run_dir), hook, nth))
        child.start()
        child.join(kill_after or 120)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            assert kill_after, f"the {hook} hook did not fire"
        return child.exitcode

    killed = tmp_path / "killed"
    rng = random.Random(4)
    plan = [("half_written", 3), ("before_rename", 2), ("after_rename", 2)] * 2 + [(None, 0)] * 14
    rng.shuffle(plan)
    last_step, kills_in_writes = 0, 0
    for hook, nth in plan:
        # The bound is out of reach: every one of these runs ends by being killed.
        exitcode = run(killed, 10_000, hook, nth, kill_after=None if hook else rng.uniform(0.2, 1.2))
        assert exitcode == -signal.SIGKILL, (killed / "child.log").read_text()[-2000:]
        kills_in_writes += bool(_temporaries(killed)) or hook == "after_rename"
        last = killed / "checkpoints/last.pt"
        if last_step or last.exists():
            step = load_checkpoint(last)["progress"]["step"]  # it exists and loads
            assert step >= last_step
            last_step = step
    assert last_step > 0 and kills_in_writes >= 6
    steps = last_step + 3
    assert run(killed, steps) == 0, (killed / "child.log").read_text()[-2000:]
    assert _temporaries(killed) == []  # what killed writers left behind was cleaned up
    reference = tmp_path / "never_killed"
    assert run(reference, steps) == 0, (reference / "child.log").read_text()[-2000:]
    final, expected = (load_checkpoint(d / "checkpoints/last.pt") for d in (killed, reference))
    assert final["progress"]["step"] == steps
    assert all(torch.equal(final["model"][k], expected["model"][k]) for k in expected["model"])
    assert final["history"] == expected["history"]


# --- SIGTERM / SIGINT through the real command ----------------------------------------------------

def terminated_once_saved(args: list[str], checkpoint: Path, env: dict, cwd: Path) -> str:
    """Runs `nmt-train args` (8 updates, a save every 2), sends SIGTERM once `checkpoint` exists, and
    returns its stderr after checking the exit status of a run ended by SIGTERM."""
    process = subprocess.Popen(["nmt-train", *args, "trainer.max_steps=8", "trainer.valid_every=4",
                                "trainer.save_every=2", "trainer.num_threads=1"],
                               env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and process.poll() is None:
        assert time.monotonic() < deadline, f"no {checkpoint} within 3 minutes"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    return stderr


def test_sigterm_saves_prints_the_resume_command_and_it_carries_on(multi30k_root, cache, tmp_path):
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    run_dir = tmp_path / "run"
    stderr = terminated_once_saved([*TINY, f"data.cache_dir={cache}", f"hydra.run.dir={run_dir}"],
                                   run_dir / "checkpoints/last.pt", env, tmp_path)
    assert "Traceback" not in stderr
    stopped = next(line for line in stderr.splitlines() if line.startswith("stopped by SIGTERM at step"))
    step = load_checkpoint(run_dir / "checkpoints/last.pt")["progress"]["step"]
    assert f"at step {step} " in stopped and str(run_dir / "checkpoints/last.pt") in stopped
    command = next(line for line in stderr.splitlines() if line.startswith("to continue: "))
    command = shlex.split(command.removeprefix("to continue: "))
    assert command[0] == "nmt-train" and command[-2:] == ["hydra.run.dir=run", "resume=true"]  # from cwd
    resumed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {run_dir}/checkpoints/last.pt at step {step}" in resumed.stdout  # Hydra's log
    assert load_checkpoint(run_dir / "checkpoints/last.pt")["progress"]["step"] == 8


def test_a_closed_standard_output_stops_training_after_saving_the_validation_it_was_logging(multi30k_root, cache,
                                                                                          tmp_path):
    """`nmt-train ... | head` or a killed `tee`: the validation line that cannot be written used to end the
    command before that validation's checkpoints were saved. Now the run stops as on SIGTERM."""
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    run_dir = tmp_path / "run"
    process = subprocess.Popen(["nmt-train", *TINY, f"data.cache_dir={cache}", f"hydra.run.dir={run_dir}",
                                "trainer.max_steps=40", "trainer.valid_every=2", "trainer.num_threads=1"],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # Hydra's log: the reader goes once it has seen the first validation
        if "valid loss" in line:
            break
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=180)
    assert process.returncode == 128 + signal.SIGPIPE, stderr[-3000:]
    assert "Traceback" not in stderr
    stopped = next(line for line in stderr.splitlines() if line.startswith("stopped by a closed standard output"))
    saved = load_checkpoint(run_dir / "checkpoints/last.pt")
    step = saved["progress"]["step"]
    assert 2 < step < 40 and f"at step {step} " in stopped
    assert saved["history"][-1]["step"] == step  # the validation whose line failed is in the checkpoint
    assert "to continue: nmt-train" in stderr


def test_a_terminal_that_closes_sends_sighup_and_training_saves_and_stops_as_on_sigterm(multi30k_root, cache,
                                                                                        tmp_path):
    """Training in a terminal that goes away (an SSH connection dropped, without nohup or tmux): the kernel
    sends SIGHUP, whose default ended the process at once, and every later write to the terminal
    fails (EIO), its messages included. The run saves last.pt and ends with SIGHUP's status, 129."""
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    run_dir = tmp_path / "run"
    terminal, its_end = pty.openpty()
    # The child's own session, with the terminal as its controlling terminal: closing our end hangs it up.
    take_terminal = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                     "os.execvp(sys.argv[1], sys.argv[1:])")
    process = subprocess.Popen([sys.executable, "-c", take_terminal, "nmt-train", *TINY, f"data.cache_dir={cache}",
                                f"hydra.run.dir={run_dir}", "trainer.max_steps=400", "trainer.valid_every=2",
                                "trainer.num_threads=1"],
                               env=env, cwd=tmp_path, stdin=its_end, stdout=its_end, stderr=its_end,
                               start_new_session=True)
    os.close(its_end)
    shown = []

    def read_terminal():  # as a terminal does, so that the child never waits on a full one
        with contextlib.suppress(OSError):
            while chunk := os.read(terminal, 4096):
                shown.append(chunk.decode(errors="replace"))

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    last = run_dir / "checkpoints/last.pt"
    deadline = time.monotonic() + 180
    while not last.exists() and process.poll() is None:
        assert time.monotonic() < deadline, f"no {last} within 3 minutes"
        time.sleep(0.05)
    os.close(terminal)  # the hang-up
    assert process.wait(timeout=120) == 128 + signal.SIGHUP, "".join(shown)[-3000:]
    assert "Traceback" not in "".join(shown)
    assert 2 <= load_checkpoint(last)["progress"]["step"] < 400


class _HungUpTerminal(io.StringIO):
    def write(self, text):
        raise OSError(5, "Input/output error")  # what a write to a hung-up terminal gets


def test_sighup_is_taken_even_when_the_terminal_it_announces_to_is_gone(monkeypatch):
    """The announcement fails once the terminal has hung up: that failure must not escape the signal
    handler into whatever update was running."""
    monkeypatch.setattr(sys, "stderr", _HungUpTerminal())
    with StopOnSignal() as stop:
        signal.raise_signal(signal.SIGHUP)
    assert stop.received == StopReason("SIGHUP", 129)


def test_a_stopped_run_exits_with_its_status_when_its_message_cannot_be_written(monkeypatch, tmp_path):
    def stopped(cfg, run_dir):
        raise TrainingStopped(StopReason.of_signal(signal.SIGHUP), 4, 0, 4, 10, run_dir / "checkpoints/last.pt")

    monkeypatch.setattr(cli_train, "train", stopped)
    hydra = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path)), mode=RunMode.RUN)
    monkeypatch.setattr(cli_train, "HydraConfig", SimpleNamespace(get=lambda: hydra))
    monkeypatch.setattr(sys, "stderr", _HungUpTerminal())
    with pytest.raises(SystemExit) as exit_info:
        cli_train.run(None)
    assert exit_info.value.code == 129


@pytest.mark.parametrize(("rank", "told"), [("0", True), ("1", False)])
def test_under_torchrun_rank_0_alone_says_how_to_continue_with_torchrun(monkeypatch, tmp_path, capsys, rank, told):
    """Every rank stops on the signal torchrun forwards: each printed the line, and an nmt-train command
    that would continue a two-process run in one process."""
    def stopped(cfg, run_dir):
        raise TrainingStopped(StopReason.of_signal(signal.SIGTERM), 4, 0, 4, 10, run_dir / "checkpoints/last.pt")

    monkeypatch.setattr(cli_train, "train", stopped)
    hydra = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path / "run")), mode=RunMode.RUN)
    monkeypatch.setattr(cli_train, "HydraConfig", SimpleNamespace(get=lambda: hydra))
    monkeypatch.setattr(sys, "argv", ["nmt-train", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"])
    for name, value in {"RANK": rank, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        cli_train.run(None)
    assert exit_info.value.code == 143
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("to continue: ")]
    assert lines == ([f"to continue: torchrun --nproc_per_node=2 -m nmt.train experiment=smoke "
                      f"hydra.run.dir={tmp_path / 'run'} resume=true"] if told else [])


@pytest.mark.parametrize(("rank", "told"), [("0", True), ("1", False)])
def test_under_torchrun_rank_0_alone_prints_the_result(monkeypatch, tmp_path, capsys, rank, told):
    monkeypatch.setattr(cli_train, "train", lambda cfg, run_dir: {"best_metric": "bleu", "best_score": 12.5})
    hydra = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path)), mode=RunMode.RUN)
    monkeypatch.setattr(cli_train, "HydraConfig", SimpleNamespace(get=lambda: hydra))
    monkeypatch.setenv("RANK", rank)
    cli_train.run(None)
    printed = capsys.readouterr().out
    assert printed == (f"best validation BLEU 12.50; checkpoints: {tmp_path / 'checkpoints'}\n" if told else "")


@pytest.mark.parametrize(("environ", "start"), [
    ({}, "nmt-train "),
    ({"WORLD_SIZE": "1"}, "nmt-train "),
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4"}, "torchrun --nproc_per_node=4 -m nmt.train "),
    ({"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"},
     "torchrun --nnodes=2 --nproc_per_node=4 <its rendezvous options> -m nmt.train "),
])
def test_the_resume_command_starts_as_the_run_was_started(environ, start):
    assert cli_train.launcher(environ) == start


def test_a_refused_write_to_standard_output_is_an_error_and_a_closed_one_a_sigpipe():
    full, closed = OSError(28, "No space left on device"), BrokenPipeError(32, "Broken pipe")
    assert StopReason.of_output_error(full) == StopReason("a failed write to standard output "
                                                          "(No space left on device)", 2)
    assert StopReason.of_output_error(closed).exit_status == 128 + signal.SIGPIPE


def test_outside_training_no_stop_is_requested_and_the_failure_stays_the_callers():
    assert StopOnSignal.request_current(StopReason("SIGPIPE", 141)) is False
    with StopOnSignal() as stop:
        assert StopOnSignal.request_current(StopReason("SIGPIPE", 141)) is True
        assert StopOnSignal.request_current(StopReason("SIGTERM", 143)) is True  # the first reason stays
        assert stop.received == StopReason("SIGPIPE", 141)
    assert StopOnSignal.current is None


def test_sigterm_in_a_sweeps_job_prints_the_command_that_continues_that_job_alone(multi30k_root, cache, tmp_path):
    """The command line of the sweep (-m, seed=1,2) would start the sweep again; the job's own
    overrides, its folder and resume=true continue the stopped job."""
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    sweep = tmp_path / "sweep"
    stderr = terminated_once_saved(["-m", *TINY, f"data.cache_dir={cache}", f"hydra.sweep.dir={sweep}", "seed=1,2,3"],
                                   sweep / "1/checkpoints/last.pt", env, tmp_path)
    lines = stderr.splitlines()
    command = next(line for line in lines if line.startswith("to continue job #1: "))
    whole = lines[lines.index(command) + 1]
    assert whole.startswith("(the sweep's jobs after #1 did not run; to continue the whole sweep: nmt-train -m ")
    assert not (sweep / "2").exists()
    command = shlex.split(command.removeprefix("to continue job #1: "))
    assert "-m" not in command and "seed=2" in command and "seed=1,2,3" not in command
    assert command[-2:] == ["hydra.run.dir=sweep/1", "resume=true"]
    step = load_checkpoint(sweep / "1/checkpoints/last.pt")["progress"]["step"]
    resumed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {sweep}/1/checkpoints/last.pt at step {step}" in resumed.stdout
    assert load_checkpoint(sweep / "1/checkpoints/last.pt")["progress"]["step"] == 8
    whole = shlex.split(whole.removeprefix("(the sweep's jobs after #1 did not run; to continue the whole sweep: "
                                           ).removesuffix(")"))
    assert whole[-2:] == ["hydra.sweep.dir=sweep", "resume=auto"] and "seed=1,2,3" in whole
    rerun = subprocess.run(whole, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert [load_checkpoint(sweep / f"{job}/checkpoints/last.pt")["progress"]["step"] for job in range(3)] == [8] * 3


@pytest.mark.parametrize(("first", "second", "status"), [
    (signal.SIGINT, signal.SIGINT, 130), (signal.SIGINT, signal.SIGTERM, 143),
    # a scheduler's SIGTERM twice, a terminal's SIGHUP twice: exit status 130 and "interrupted", as for Ctrl-C
    (signal.SIGTERM, signal.SIGTERM, 143), (signal.SIGHUP, signal.SIGHUP, 129),
])
def test_a_second_signal_stops_at_once_with_its_status_and_without_a_traceback(capsys, first, second, status):
    """The first signal only asks (the update finishes, last.pt is saved); the second one, for a user
    who will not wait, interrupts there and then."""
    reached = []

    def task(_):
        with StopOnSignal() as stop:
            signal.raise_signal(first)
            reached.append(stop.received)
            signal.raise_signal(second)
            reached.append("after the second signal")

    try:
        with pytest.raises(SystemExit) as exit_info:
            exit_on_user_error(task)(None)
    except KeyboardInterrupt:
        pytest.fail("the interruption escaped the command (a traceback, not exit status 130)")
    assert reached == [StopReason.of_signal(first)] and exit_info.value.code == status
    err = capsys.readouterr().err
    assert "send it again to stop at once" in err and "Traceback" not in err
    assert err.endswith(f"stopped at once by a second signal, {signal.Signals(second).name}; the checkpoint on disk "
                        "is the previous complete one\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back all the same


def test_a_signal_the_process_was_started_to_ignore_stays_ignored():
    """E.g. `nohup` or a background job started with SIGINT ignored: training must not start listening to it."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with StopOnSignal() as stop:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
            assert stop.received is None
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_signals_keep_their_usual_effect():
    """Training in a thread (a notebook, a server) cannot install handlers; it trains without them."""
    outcome = {}

    def in_thread():
        try:
            with StopOnSignal() as stop:
                outcome["received"] = stop.received
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            outcome["error"] = exc

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert outcome == {"received": None}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- NaN / Inf losses -----------------------------------------------------------------------------

def poison_training_forward(monkeypatch, bad_calls) -> list[int]:
    """Training forward passes whose 1-based number is in `bad_calls` return NaN logits."""
    real_forward, calls = Seq2Seq.forward, []

    def forward(self, *args, **kwargs):
        logits, rest = real_forward(self, *args, **kwargs)
        if self.training:
            calls.append(1)
            if len(calls) in bad_calls:
                logits = logits * float("nan")
        return logits, rest

    monkeypatch.setattr(Seq2Seq, "forward", forward)
    return calls


def test_nan_loss_skips_the_update_with_a_warning(multi30k_root, cache, tmp_path, monkeypatch, caplog):
    calls = poison_training_forward(monkeypatch, bad_calls={3, 4})
    with caplog.at_level(logging.WARNING):
        summary = train(config(multi30k_root, cache, "trainer.max_steps=5", "trainer.valid_every=5",
                               "trainer.max_nonfinite_steps=3"), tmp_path)
    assert summary["steps"] == 5 and len(calls) == 7  # two batches were used without an update
    warnings = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
    assert warnings == ["step 3: loss is nan, update skipped (1 in a row; training stops at "
                        "trainer.max_nonfinite_steps=3)",
                        "step 3: loss is nan, update skipped (2 in a row; training stops at "
                        "trainer.max_nonfinite_steps=3)"]
    state = load_checkpoint(tmp_path / "checkpoints/last.pt")
    assert all(torch.isfinite(p).all() for p in state["model"].values())
    assert state["progress"]["nonfinite_in_a_row"] == 0


def test_nan_losses_in_a_row_stop_with_one_line_and_keep_the_last_good_checkpoint(
        multi30k_root, cache, tmp_path, monkeypatch, capsys):
    poison_training_forward(monkeypatch, bad_calls=set(range(4, 100)))
    cfg = config(multi30k_root, cache, "trainer.max_steps=10", "trainer.valid_every=10",
                 "trainer.save_every=2", "trainer.max_nonfinite_steps=3")
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda c: train(c, tmp_path))(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    last = tmp_path / "checkpoints/last.pt"
    assert err == ("error: training diverged: 3 updates in a row had a non-finite loss (last: nan at "
                   "step 4; trainer.max_nonfinite_steps=3); lower optimizer.lr or check the data; the last "
                   f"checkpoint {last} is kept; add resume=true to continue from it")
    state = load_checkpoint(last)
    assert state["progress"]["step"] == 2
    assert all(torch.isfinite(p).all() for p in state["model"].values())


# --- out of memory --------------------------------------------------------------------------------

def test_cuda_out_of_memory_in_a_step_is_one_line_naming_the_batch_size(multi30k_root, cache, tmp_path,
                                                                        monkeypatch, capsys):
    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB "
                                     "total)\nSee documentation for Memory Management")

    monkeypatch.setattr(trainer_module, "train_step", out_of_memory)
    cfg = config(multi30k_root, cache, "trainer.max_steps=3")
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda c: train(c, tmp_path))(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: CUDA out of memory in training step 1 (a batch of ")
    assert "lower trainer.batch_tokens (now 256)" in err and "no checkpoint had been written yet" in err


def test_out_of_memory_while_validating_names_the_validation_batch_options(multi30k_root, cache, tmp_path,
                                                                           monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(trainer_module, "validate", out_of_memory)
    expected = (r"^host out of memory while validating at step 2; lower trainer.valid_batch_sentences "
                r"\(now 256\) or trainer.batch_tokens")
    with pytest.raises(TrainingError, match=expected):
        train(config(multi30k_root, cache, "trainer.max_steps=2"), tmp_path)


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(tmp_path):
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with out_of_memory_advice("here", "do this", tmp_path):
            raise RuntimeError("shape mismatch")

