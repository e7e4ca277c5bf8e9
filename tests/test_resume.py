"""Resumed training equals uninterrupted training, bit for bit.

A tiny model trains N=8 updates in one go (the baseline); other runs stop earlier (in the middle of
an epoch, right after a validation, or on SIGINT) and are resumed to N. Parameters must be
`torch.equal`, and the logged training losses and the validation history identical. Dropout, a
plateau schedule that reacts to every validation, and an epoch boundary inside the run make every
piece of saved state matter.
"""

import hashlib
import json
import logging
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import nmt.cli.train as cli_train
import nmt.training.trainer as trainer_module
from nmt.cli.common import config_dir
from nmt.data.subword_sampling import SubwordSampling
from nmt.errors import CheckpointError, ConfigError
from nmt.training.checkpoint import load_checkpoint, save_checkpoint
from nmt.training.resume import checkpoint_to_resume
from nmt.training.signals import StopReason, TrainingStopped
from nmt.training.trainer import train

N, VALID_EVERY = 8, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(multi30k_root: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[
            "experiment=smoke", f"data.root={multi30k_root}", f"data.cache_dir={cache}",
            "data.max_train_examples=150", "data.max_len=30", "tokenizer.vocab_size=200",
            "model.emb_size=16", "model.enc_hidden=16", "model.dec_hidden=16", "model.dropout=0.3",
            "scheduler.patience=0", "scheduler.factor=0.5",  # a validation without a better BLEU halves lr
            "trainer.batch_tokens=256", f"trainer.max_steps={N}", f"trainer.valid_every={VALID_EVERY}",
            "trainer.valid_max_sentences=4", "trainer.valid_max_len_b=2",
            "trainer.early_stopping_patience=20", "trainer.plot_sentences=0", "trainer.log_every=1",
            "trainer.progress=false", *overrides])


def logged_losses(run_dir: Path) -> dict[int, float]:
    """train/loss per step as TensorBoard holds it, over every event file of the run."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars("train/loss")}


def assert_same_parameters(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"parameters differ: {different}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def baseline(multi30k_root, cache, tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("one_go")
    summary = train(config(multi30k_root, cache), run_dir)
    assert summary["steps"] == N and summary["epochs"] >= 1  # the run crosses an epoch boundary
    return {"dir": run_dir, "summary": summary, "losses": logged_losses(run_dir)}


def assert_equals_baseline(baseline: dict, run_dir: Path, summary: dict, continued: bool = True) -> None:
    """Same parameters, validations and (for a run continued in its own folder) logged losses."""
    assert_same_parameters(baseline["dir"] / "checkpoints/last.pt", run_dir / "checkpoints/last.pt")
    losses = logged_losses(run_dir)
    if continued:
        assert losses == baseline["losses"] and len(losses) == N
    else:  # a new folder holds the losses after the resume point only
        assert losses == {step: baseline["losses"][step] for step in losses} and min(losses) > 1
    scheduled = [h for h in summary["history"] if h["step"] % VALID_EVERY == 0]
    assert scheduled == baseline["summary"]["history"]
    assert summary["steps"] == N and summary["epochs"] == baseline["summary"]["epochs"]


@pytest.mark.parametrize(("stop_at", "resume"), [(3, "path"), (4, "true")])
def test_stop_and_resume_equals_one_go(multi30k_root, cache, baseline, tmp_path, stop_at, resume):
    """Stop at 3 (between validations) and resume=PATH into another folder; stop at 4 (right after a
    validation) and resume=true in the same folder. Both stops fall inside the first epoch."""
    first_dir = tmp_path / "first"
    first = train(config(multi30k_root, cache, f"trainer.max_steps={stop_at}"), first_dir)
    progress = load_checkpoint(first_dir / "checkpoints/last.pt")["progress"]
    assert progress["step"] == stop_at and progress["batches_done_in_epoch"] > 0
    assert first["history"][-1]["step"] == stop_at  # a run always validates its final model
    if resume == "path":
        run_dir, option = tmp_path / "second", f"resume={first_dir / 'checkpoints/last.pt'}"
    else:
        run_dir, option = first_dir, "resume=true"
    second = train(config(multi30k_root, cache, option), run_dir)
    assert_equals_baseline(baseline, run_dir, second, continued=resume == "true")


def test_sigint_saves_mid_epoch_and_resume_equals_one_go(multi30k_root, cache, baseline, tmp_path,
                                                          monkeypatch, capsys):
    real_step, calls = trainer_module.train_step, []

    def step_then_interrupt(*args):
        result = real_step(*args)
        calls.append(1)
        if len(calls) == 5:  # as if Ctrl-C came in the middle of update 5
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(trainer_module, "train_step", step_then_interrupt)
    with pytest.raises(TrainingStopped) as stopped:
        train(config(multi30k_root, cache), tmp_path)
    assert len(calls) == 5, "the interrupted update is finished, no further one is started"
    assert stopped.value.step == 5 and stopped.value.checkpoint == tmp_path / "checkpoints/last.pt"
    assert "SIGINT received: finishing the current step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers are put back
    monkeypatch.undo()
    second = train(config(multi30k_root, cache, "resume=true"), tmp_path)
    assert_equals_baseline(baseline, tmp_path, second)


def logged_rates(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars("train/lr")}


def test_a_run_resumed_with_other_optimizer_settings_trains_with_them(multi30k_root, cache, tmp_path):
    """README's advice after a divergence, a lower optimizer.lr on resume, must take effect: the
    checkpoint gives back the schedule's progress (its decays so far), the config its settings."""
    every_2 = "trainer.valid_every=2"  # two validations before the stop: the second, no better, halves the rate
    train(config(multi30k_root, cache, "trainer.max_steps=4", every_2), tmp_path)
    stopped = load_checkpoint(tmp_path / "checkpoints/last.pt")["schedule"]
    assert stopped["base_lr"] == pytest.approx(5e-4) and stopped["scale"] < 1.0  # a decay to keep
    train(config(multi30k_root, cache, every_2, "resume=true", "optimizer.lr=1e-4", "optimizer.weight_decay=0.1"),
          tmp_path)
    resumed = load_checkpoint(tmp_path / "checkpoints/last.pt")
    schedule, group = resumed["schedule"], resumed["optimizer"]["param_groups"][0]
    assert schedule["step_count"] == N and schedule["base_lr"] == pytest.approx(1e-4)
    assert group["lr"] == pytest.approx(1e-4 * schedule["scale"])
    assert group["weight_decay"] == pytest.approx(0.1)
    rates = logged_rates(tmp_path)
    assert rates[4] == pytest.approx(5e-4)  # update 4 ran before the validation that halved the rate
    assert rates[5] == pytest.approx(1e-4 * stopped["scale"])  # the new rate, with the decay so far


def test_resuming_a_finished_run_trains_nothing(multi30k_root, cache, baseline, caplog):
    last = baseline["dir"] / "checkpoints/last.pt"
    before = last.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        summary = train(config(multi30k_root, cache, "resume=true"), baseline["dir"])
    assert summary["steps"] == N and summary["history"] == baseline["summary"]["history"]
    assert last.stat().st_mtime_ns == before
    assert f"nothing to train: the run already reached trainer.max_steps={N}" in caplog.text


def test_a_run_saved_with_a_retired_option_resumes_without_a_changed_settings_warning(multi30k_root, cache,
                                                                                       tmp_path, caplog):
    """data.test_splits was read by nothing and is gone: runs saved with it resume as they were."""
    train(config(multi30k_root, cache, "trainer.max_steps=2"), tmp_path)
    last = tmp_path / "checkpoints/last.pt"
    state = load_checkpoint(last)
    state["config"]["data"]["test_splits"] = ["test_2016_flickr", "test_2017_flickr", "test_2017_mscoco"]
    save_checkpoint(state, last)
    with caplog.at_level(logging.WARNING):
        summary = train(config(multi30k_root, cache, "trainer.max_steps=3", "resume=true"), tmp_path)
    assert summary["steps"] == 3
    assert "changed settings" not in caplog.text


def test_resume_auto_starts_afresh_then_continues(multi30k_root, cache, tmp_path):
    first = train(config(multi30k_root, cache, "trainer.max_steps=2", "resume=auto"), tmp_path)
    second = train(config(multi30k_root, cache, "trainer.max_steps=3", "resume=auto"), tmp_path)
    assert (first["steps"], second["steps"]) == (2, 3)


def test_a_new_run_never_overwrites_an_existing_one(multi30k_root, cache, baseline):
    saved_config = (baseline["dir"] / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="already holds a run .*add resume=true"):
        train(config(multi30k_root, cache, "model.emb_size=32"), baseline["dir"])
    assert (baseline["dir"] / "config.yaml").read_text() == saved_config


def test_resume_from_another_run_into_a_folder_holding_a_run_is_refused_and_leaves_it_alone(multi30k_root, cache,
                                                                                             baseline, tmp_path):
    """It replaced that run's last.pt with the other run's continuation, beside the first run's best.pt."""
    other = tmp_path / "other"
    train(config(multi30k_root, cache, "trainer.max_steps=2"), other)
    last = baseline["dir"] / "checkpoints/last.pt"
    before = last.read_bytes()
    with pytest.raises(ConfigError, match=f"^{baseline['dir']} already holds a run .*; resume=.*continues another run: "
                                          "choose another hydra.run.dir for it"):
        train(config(multi30k_root, cache, f"resume={other / 'checkpoints/last.pt'}"), baseline["dir"])
    assert last.read_bytes() == before


def test_a_run_may_go_back_to_a_checkpoint_of_its_own_folder(tmp_path):
    """resume=PATH of the folder's own best.pt (going back to it) is the run itself, not another one."""
    (tmp_path / "checkpoints").mkdir()
    for name in ("last.pt", "best.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"x")
    assert checkpoint_to_resume(str(tmp_path / "checkpoints/best.pt"), tmp_path) == tmp_path / "checkpoints/best.pt"


def test_a_run_continued_in_a_new_folder_takes_its_best_checkpoint_along(multi30k_root, cache, tmp_path):
    """The continued run's best score is the first run's; with no better validation after it (a rate of 1e-30
    leaves the weights as they were), the new folder had no best.pt, and summary.json named one."""
    first = tmp_path / "first"
    train(config(multi30k_root, cache, "trainer.max_steps=2"), first)
    second = tmp_path / "second"
    summary = train(config(multi30k_root, cache, f"resume={first / 'checkpoints/last.pt'}", "trainer.max_steps=3",
                           "optimizer.lr=1e-30"), second)
    assert [h["step"] for h in summary["history"]][-1] == 3
    best = second / "checkpoints/best.pt"
    assert best.read_bytes() == (first / "checkpoints/best.pt").read_bytes()
    assert summary["best_checkpoint"] == str(best)


def test_resume_true_without_a_checkpoint_names_the_missing_file(multi30k_root, cache, tmp_path):
    missing = tmp_path / "checkpoints/last.pt"
    with pytest.raises(CheckpointError, match=f"nothing to resume: {missing} does not exist"):
        train(config(multi30k_root, cache, "resume=true"), tmp_path)


def test_resume_with_another_model_is_refused_and_leaves_the_run_folder_alone(multi30k_root, cache, baseline):
    """Forgetting `experiment=...` when resuming gives another model: refused before anything is written,
    pointing at the original settings."""
    saved_config = (baseline["dir"] / "config.yaml").read_text()
    expected = (r"holds a different model \(model.emb_size: 16 in the checkpoint, 32 now\); resume with the "
                rf"settings of the original run \(see {baseline['dir']}/config.yaml\)")
    with pytest.raises(CheckpointError, match=expected):
        train(config(multi30k_root, cache, "model.emb_size=32", "resume=true"), baseline["dir"])
    assert (baseline["dir"] / "config.yaml").read_text() == saved_config


def test_resume_in_the_other_direction_is_refused_and_leaves_the_run_folder_alone(multi30k_root, cache, baseline):
    """en->de over a de->en run has the same model sizes and joint vocabulary: it only warned, then
    went on training the de->en weights on en->de data with the de->en run's best score to beat."""
    saved_config = (baseline["dir"] / "config.yaml").read_text()
    expected = r"translates de->en, but this run is set to en->de \(data.src_lang, data.tgt_lang\)"
    with pytest.raises(CheckpointError, match=expected):
        train(config(multi30k_root, cache, "data.src_lang=en", "data.tgt_lang=de", "resume=true"), baseline["dir"])
    assert (baseline["dir"] / "config.yaml").read_text() == saved_config


def test_a_run_resumed_inside_a_sampled_epoch_finishes_it_on_the_sample_it_began_with(multi30k_root, cache,
                                                                                     tmp_path, monkeypatch):
    """SentencePiece samples differently in a new process, so the epoch's sample is kept beside the
    checkpoints; here any new sampling on resume fails the test, as another process's would differ."""
    sampled = "tokenizer.subword_alpha=0.1"
    train(config(multi30k_root, cache, sampled, "trainer.max_steps=4"), tmp_path / "one_go")
    train(config(multi30k_root, cache, sampled, "trainer.max_steps=2"), tmp_path / "resumed")
    assert (tmp_path / "resumed/checkpoints/epoch-sample.npz").is_file()

    def another_process(*args, **kwargs):
        raise AssertionError("the epoch in progress was sampled again")

    monkeypatch.setattr(SubwordSampling, "resegment", another_process)
    summary = train(config(multi30k_root, cache, sampled, "trainer.max_steps=4", "resume=true"), tmp_path / "resumed")
    assert summary["epochs"] == 0  # still inside the first epoch
    assert_same_parameters(tmp_path / "one_go/checkpoints/last.pt", tmp_path / "resumed/checkpoints/last.pt")


def test_subword_sampling_trains_on_other_batches_and_resumes_to_the_same_ones(multi30k_root, cache, baseline,
                                                                                tmp_path, caplog):
    """With tokenizer.subword_alpha each epoch is segmented again; a run stopped inside the first epoch
    samples that epoch again on resume, exactly as the uninterrupted run did. Only within one process:
    SentencePiece's draws do not repeat in another (README, "A resumed run is exact")."""
    sampled = "tokenizer.subword_alpha=0.1"
    with caplog.at_level(logging.INFO, logger="nmt.training.trainer"):
        one_go = train(config(multi30k_root, cache, sampled), tmp_path / "one_go")
    resamples = [r for r in caplog.records if "sampled a segmentation" in r.getMessage()]
    assert len(resamples) == one_go["epochs"] + 1  # every epoch begun, the unfinished last one included
    first = train(config(multi30k_root, cache, sampled, "trainer.max_steps=3"), tmp_path / "resumed")
    assert first["steps"] == 3
    second = train(config(multi30k_root, cache, sampled, "resume=true"), tmp_path / "resumed")
    assert_same_parameters(tmp_path / "one_go/checkpoints/last.pt", tmp_path / "resumed/checkpoints/last.pt")
    assert [h for h in second["history"] if h["step"] % VALID_EVERY == 0] == one_go["history"]
    # The sampled segmentation gave other batches than the prepared one: other weights.
    with pytest.raises(AssertionError, match="parameters differ"):
        assert_same_parameters(baseline["dir"] / "checkpoints/last.pt", tmp_path / "one_go/checkpoints/last.pt")


def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_resume_with_other_tokenizer_settings_leaves_the_run_folder_byte_for_byte(multi30k_root, cache,
                                                                                 baseline):
    """Only the data tells that the SentencePiece models differ: nothing is written before that."""
    before = folder_hashes(baseline["dir"])
    with pytest.raises(CheckpointError, match="was trained with other SentencePiece models"):
        train(config(multi30k_root, cache, "tokenizer.vocab_size=150", "resume=true"), baseline["dir"])
    assert folder_hashes(baseline["dir"]) == before


CLI_TINY = ["experiment=smoke", "data.max_train_examples=150", "data.max_len=30", "tokenizer.vocab_size=200",
            "model.emb_size=16", "model.enc_hidden=16", "model.dec_hidden=16", "trainer.batch_tokens=256",
            "trainer.max_steps=2", "trainer.valid_every=2", "trainer.valid_max_sentences=4",
            "trainer.valid_max_len_b=2", "trainer.plot_sentences=0", "trainer.progress=false",
            "trainer.num_threads=1"]


def test_a_refused_resume_through_the_command_leaves_hydras_files_too(multi30k_root, cache, tmp_path):
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    args = ["nmt-train", *CLI_TINY, f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    before = folder_hashes(tmp_path / "run")
    assert {".hydra/overrides.yaml", "train.log", "config.yaml", "spm.model"} <= before.keys()
    refused = subprocess.run([*args, "tokenizer.vocab_size=150", "resume=true"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.endswith("\n") and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[-1].startswith("error: checkpoint ") and "other SentencePiece" in \
        refused.stderr.splitlines()[-1]
    assert folder_hashes(tmp_path / "run") == before


def test_sigterm_in_the_final_validation_completes_the_run_and_is_reported(multi30k_root, cache, tmp_path,
                                                                          monkeypatch):
    """The run ends between validations (6 is no multiple of 4): SIGTERM during the extra validation
    finishes it and saves it, and the summary says a signal came, for the exit status."""
    real_validate = trainer_module.Run.validate

    def validate(self, scheduled):
        if not scheduled:
            signal.raise_signal(signal.SIGTERM)
        return real_validate(self, scheduled)

    monkeypatch.setattr(trainer_module.Run, "validate", validate)
    summary = train(config(multi30k_root, cache, "trainer.max_steps=6"), tmp_path)
    assert summary["stopped_by"] == StopReason("SIGTERM", 143)
    assert summary["steps"] == 6 and summary["history"][-1]["step"] == 6
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["progress"]["step"] == 6
    assert "stopped_by" not in json.loads((tmp_path / "summary.json").read_text())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are put back


@pytest.mark.parametrize(("signum", "status"), [(None, None), (signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_command_exits_with_the_signals_status_after_a_run_it_completed(monkeypatch, tmp_path, capsys,
                                                                           signum, status):
    stopped_by = {"stopped_by": StopReason.of_signal(signum)} if signum else {}
    summary = {"best_bleu": 1.5, "best_metric": "bleu", "best_score": 1.5, **stopped_by}
    monkeypatch.setattr(cli_train, "train", lambda cfg, run_dir: summary)
    runtime = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path)))
    monkeypatch.setattr(cli_train, "HydraConfig", SimpleNamespace(get=lambda: runtime))
    if status is None:
        cli_train.run(None)
    else:
        with pytest.raises(SystemExit) as exit_info:
            cli_train.run(None)
        assert exit_info.value.code == status
    out, err = capsys.readouterr()
    assert "best validation BLEU 1.50" in out  # the summary comes first either way
    name = signal.Signals(signum).name if signum else "SIG"
    assert (f"stopped by {name} as the run finished" in err) == (status is not None)
