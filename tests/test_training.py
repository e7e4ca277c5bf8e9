"""Training pieces: schedules, checkpoints, and a seeded CPU run that repeats exactly."""

import copy
import io
import logging
import math
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_checkpoint import CONFIG_SKELETON

from nmt.cli.common import config_dir
from nmt.data.batching import collate
from nmt.errors import CheckpointError, ConfigError
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import load_checkpoint, save_checkpoint
from nmt.training.optim import build_optimizer, build_schedule
from nmt.training.step import train_step
from nmt.training.trainer import train


def optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_warmup_is_linear_then_inverse_sqrt():
    opt = optimizer()
    schedule = build_schedule({"name": "inverse_sqrt", "warmup_steps": 4}, opt)
    rates = []
    for _ in range(16):
        rates.append(opt.param_groups[0]["lr"])
        schedule.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[15] == pytest.approx(math.sqrt(4 / 16))


def test_plateau_decays_after_patience_and_restores_from_state():
    opt = optimizer(0.1)
    schedule = build_schedule({"name": "plateau", "warmup_steps": 0, "factor": 0.5, "patience": 1,
                               "min_lr": 0.03}, opt)
    for score in [10.0, 9.0, 9.5]:  # best, then two validations without improvement
        schedule.on_validation(score)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    for score in [8.0, 8.0]:
        schedule.on_validation(score)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.03)  # floored at min_lr
    fresh_opt = optimizer(0.1)
    fresh = build_schedule({"name": "plateau", "warmup_steps": 0, "factor": 0.5, "patience": 1,
                            "min_lr": 0.03}, fresh_opt)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.03)


def test_a_restored_plateau_schedule_keeps_its_decays_but_takes_the_new_base_rate():
    settings = {"name": "plateau", "warmup_steps": 0, "factor": 0.5, "patience": 0, "min_lr": 0.0}
    schedule = build_schedule(settings, optimizer(0.1))
    schedule.on_validation(10.0)
    schedule.on_validation(9.0)  # halves the rate
    fresh_opt = optimizer(0.02)  # the run resumed with optimizer.lr=0.02
    fresh = build_schedule({**settings, "patience": 5}, fresh_opt)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.01)
    assert (fresh.base_lr, fresh.patience, fresh.best) == (0.02, 5, 10.0)


PLATEAU = {"name": "plateau", "warmup_steps": 0, "factor": 0.5, "min_lr": 0.02}


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_plateau_rates_equal_those_of_torchs_reduce_lr_on_plateau(patience):
    """The reference the docstring names: ReduceLROnPlateau in max mode, where a tie is no improvement,
    the count of validations without one starts again after each decay, and min_lr floors the rate."""
    scores = [1.0, 2.0, 2.0, 2.0, 1.5, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    ours_opt, torch_opt = optimizer(0.4), optimizer(0.4)
    schedule = build_schedule({**PLATEAU, "patience": patience}, ours_opt)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, mode="max", factor=0.5, patience=patience,
                                                           threshold=0.0, threshold_mode="abs", min_lr=0.02)
    ours, theirs = [], []
    for score in scores:
        schedule.on_validation(score)
        reference.step(score)
        ours.append(ours_opt.param_groups[0]["lr"])
        theirs.append(torch_opt.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs)
    assert theirs[-1] < 0.4  # the scores do decay the rate


def test_a_restored_plateau_schedule_counts_on_from_its_validations_without_improvement():
    settings = {**PLATEAU, "patience": 2, "min_lr": 0.0}
    scores = [10.0, 9.0, 9.0, 9.0, 9.0]
    one_go_opt = optimizer()
    one_go = build_schedule(settings, one_go_opt)
    expected = []
    for score in scores:
        one_go.on_validation(score)
        expected.append(one_go_opt.param_groups[0]["lr"])
    assert expected[2:] == pytest.approx([1.0, 0.5, 0.5])  # the third validation in a row without improvement
    stopped = build_schedule(settings, optimizer())
    for score in scores[:2]:  # stopped after one validation without improvement
        stopped.on_validation(score)
    resumed_opt = optimizer()
    resumed = build_schedule(settings, resumed_opt)
    resumed.load_state_dict(stopped.state_dict())
    rates = []
    for score in scores[2:]:
        resumed.on_validation(score)
        rates.append(resumed_opt.param_groups[0]["lr"])
    assert rates == pytest.approx(expected[2:])


def test_unknown_optimizer_and_schedule_names_list_the_choices():
    with pytest.raises(ConfigError, match="adam, adamw"):
        build_optimizer({"name": "sgd", "lr": 1, "betas": [0.9, 0.9], "weight_decay": 0}, [])
    with pytest.raises(ConfigError, match="plateau, inverse_sqrt, cosine"):
        build_schedule({"name": "linear"}, optimizer())


def cosine(opt, total_steps=None, warmup_steps=2, min_lr=0.01):
    return build_schedule({"name": "cosine", "warmup_steps": warmup_steps, "min_lr": min_lr,
                           "total_steps": total_steps}, opt)


def test_cosine_warms_up_then_anneals_to_min_lr_at_the_planned_last_update():
    opt = optimizer()
    schedule = cosine(opt)
    schedule.plan(12)  # the trainer's bound: 2 warmup updates, then 10 of decay
    rates = []
    for _ in range(14):
        rates.append(opt.param_groups[0]["lr"])
        schedule.step()
    assert rates[:2] == pytest.approx([0.5, 1.0])
    assert rates[6] == pytest.approx(0.01 + 0.99 * 0.5)  # halfway through the decay
    assert all(a > b for a, b in zip(rates[1:11], rates[2:12], strict=True))
    assert rates[11:] == pytest.approx([0.01] * 3)  # the last planned update (the 12th) and any after


def test_cosine_total_steps_given_in_the_config_wins_over_the_trainers_bound_and_survives_resume():
    opt = optimizer()
    schedule = cosine(opt, total_steps=6, warmup_steps=0, min_lr=0.0)
    schedule.plan(1000)
    for _ in range(2):  # the 3rd update of 6 runs at half the rate
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    fresh_opt = optimizer()
    fresh = cosine(fresh_opt, total_steps=6, warmup_steps=0, min_lr=0.0)
    fresh.load_state_dict(schedule.state_dict())
    fresh.plan(1000)
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_a_restored_cosine_keeps_the_planned_end_unless_the_config_now_fixes_one():
    opt = optimizer()
    schedule = cosine(opt, warmup_steps=0, min_lr=0.0)
    schedule.plan(8)  # the trainer's plan for a sampled epoch; on resume inside it, plan() is not called
    for _ in range(4):
        schedule.step()
    fresh_opt = optimizer()
    cosine(fresh_opt, warmup_steps=0, min_lr=0.0).load_state_dict(schedule.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    assert 0.0 < fresh_opt.param_groups[0]["lr"] < 1.0
    fixed_opt = optimizer()
    cosine(fixed_opt, total_steps=4, warmup_steps=0, min_lr=0.0).load_state_dict(schedule.state_dict())
    assert fixed_opt.param_groups[0]["lr"] == pytest.approx(0.0)  # scheduler.total_steps=4 given on resume


def test_cosine_without_a_finite_bound_keeps_the_base_rate():
    opt = optimizer()
    schedule = cosine(opt, warmup_steps=0)
    schedule.plan(math.inf)
    for _ in range(5):
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


@pytest.mark.parametrize("total", [0, -3, 2.5, True, "ten"])
def test_cosine_total_steps_must_be_a_positive_whole_number(total):
    with pytest.raises(ConfigError, match="scheduler.total_steps"):
        cosine(optimizer(), total_steps=total)


STEP_CFG = {"label_smoothing": 0.1, "precision": "fp32", "rdrop_alpha": 0.0, "clip_grad_norm": None}
SRC = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 17, 18, 19]]
TGT = [[20, 21], [22, 23, 24, 25, 26], [27], [28, 29, 5, 6, 7, 8, 9]]


def step_model(dropout=0.0):
    """A tiny seeded model (vocabulary of 30) for single training steps."""
    torch.manual_seed(0)
    cfg = {"rnn_type": "gru", "emb_size": 8, "enc_hidden": 8, "enc_layers": 1, "bidirectional": True,
           "dec_hidden": 8, "dec_layers": 1, "decoder_style": "bahdanau", "input_feeding": True, "dropout": dropout,
           "tie_embeddings": True, "tie_output": False, "attention": {"name": "additive"}}
    return build_model(cfg, 30, 30, shared_vocab=True)


def sgd_update(model, batches, hook=None, risk=None, **options):
    """(change of all parameters, loss, gradient norm) of one train_step on a copy of `model` with SGD
    at rate 1, so that the change is minus the (clipped) gradient; `hook` rewrites the source
    embeddings' gradient, `options` the trainer.* settings of STEP_CFG."""
    model = copy.deepcopy(model)
    if hook is not None:
        model.src_embed.weight.register_hook(hook)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    loss, norm = train_step(model, sgd, batches, OmegaConf.create({**STEP_CFG, **options}), torch.device("cpu"),
                            risk=risk)
    return torch.cat([p.detach().flatten() for p in model.parameters()]) - before, loss, norm


def test_accumulated_batches_update_as_one_batch_holding_them_all():
    """trainer.accumulate: the summed loss is divided by the target tokens of the whole update, not
    each batch by its own (the two batches hold 9 and 10 target tokens)."""
    model = step_model()
    first, second = collate(SRC[:2], TGT[:2], [0, 1]), collate(SRC[2:], TGT[2:], [2, 3])
    assert first.n_tgt_tokens != second.n_tgt_tokens
    accumulated, loss_accumulated, _ = sgd_update(model, [first, second])
    together, loss_together, _ = sgd_update(model, collate(SRC, TGT, [0, 1, 2, 3]))
    torch.testing.assert_close(accumulated, together)
    assert loss_accumulated == pytest.approx(loss_together, rel=1e-6)


def test_gradients_are_clipped_to_trainer_clip_grad_norm():
    model, batch = step_model(), collate(SRC, TGT, [0, 1, 2, 3])
    free, _, norm = sgd_update(model, batch)
    assert norm == pytest.approx(free.norm().item(), rel=1e-5) and norm > 0.01
    clipped, _, clipped_norm = sgd_update(model, batch, clip_grad_norm=0.01)
    assert clipped_norm == pytest.approx(norm, rel=1e-5)  # the norm before clipping is reported
    torch.testing.assert_close(clipped, free * (0.01 / norm), rtol=1e-4, atol=1e-6)
    assert clipped.norm().item() == pytest.approx(0.01, rel=1e-4)
    loose, _, _ = sgd_update(model, batch, clip_grad_norm=10 * norm)  # a bound above the norm changes nothing
    torch.testing.assert_close(loose, free)


def test_an_infinite_gradient_with_a_finite_loss_skips_the_update():
    """E.g. an overflow in the backward: the weights stay as they were, and the norm tells the trainer."""
    model, batch = step_model(), collate(SRC, TGT, [0, 1, 2, 3])
    change, loss, norm = sgd_update(model, batch, hook=lambda grad: grad + math.inf, clip_grad_norm=1.0)
    assert math.isfinite(loss) and not math.isfinite(norm)
    assert torch.equal(change, torch.zeros_like(change))


def minimal_state():
    return {"model": {"w": torch.arange(3.0)}, "config": CONFIG_SKELETON, "tokenizers": {"src": b"x"}}


def test_checkpoint_round_trip_leaves_no_temporary_files(tmp_path):
    save_checkpoint(minimal_state(), tmp_path / "last.pt")
    save_checkpoint(minimal_state(), tmp_path / "last.pt")  # overwriting works too
    state = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(state["model"]["w"], torch.arange(3.0)) and state["tokenizers"]["src"] == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class Payload:
    """Any pickled object; a weights-only load must refuse to construct it."""


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({**minimal_state(), "format_version": 1, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_truncated_or_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "x.pt"
    if content is None:  # a valid torch file that is not an nmt checkpoint
        buffer = io.BytesIO()
        torch.save({"weights": torch.ones(1)}, buffer)
        content = buffer.getvalue()
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def tiny_config(multi30k_root, tmp_path, *extra):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[
            "experiment=smoke", f"data.root={multi30k_root}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.max_train_examples=300", "tokenizer.vocab_size=200", "trainer.max_steps=6",
            "trainer.valid_every=3", "trainer.valid_max_sentences=10", "trainer.progress=false",
            "model.emb_size=16", "model.enc_hidden=16", "model.dec_hidden=16", *extra])


def test_seeded_cpu_training_repeats_exactly(multi30k_root, tmp_path):
    """Two runs with the same seed give bitwise-equal weights and the same validation history."""
    cfg = tiny_config(multi30k_root, tmp_path)
    first = train(cfg, tmp_path / "a")
    second = train(cfg, tmp_path / "b")
    assert first["history"] == second["history"] and first["steps"] == 6
    a = load_checkpoint(tmp_path / "a/checkpoints/last.pt")["model"]
    b = load_checkpoint(tmp_path / "b/checkpoints/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(tiny_config(multi30k_root, tmp_path, "seed=7"), tmp_path / "c")
    assert other["history"] != first["history"]


def test_a_run_needs_a_bound(multi30k_root, tmp_path):
    cfg = tiny_config(multi30k_root, tmp_path, "trainer.max_steps=null", "trainer.max_epochs=null")
    with pytest.raises(ConfigError, match="max_steps"):
        train(cfg, tmp_path / "run")


def test_validation_after_the_last_epoch_is_labelled_with_that_epoch(multi30k_root, tmp_path):
    cfg = tiny_config(multi30k_root, tmp_path, "trainer.max_steps=null", "trainer.max_epochs=2",
                      "trainer.valid_every=1000")
    history = train(cfg, tmp_path / "run")["history"]
    assert [entry["epoch"] for entry in history] == [2]  # only the final validation; it ran after epoch 2


@pytest.mark.parametrize("noise", ["model.word_dropout=0.2", "tokenizer.subword_alpha=0.5"])
def test_a_cosine_run_bounded_by_epochs_ends_at_min_lr(multi30k_root, tmp_path, noise):
    """The trainer tells the schedule its last update (epochs x updates per epoch), with word dropout
    on, or with subword sampling, whose epochs hold more batches than the prepared segmentation's."""
    cfg = tiny_config(multi30k_root, tmp_path, "trainer.max_steps=null", "trainer.max_epochs=2",
                      "trainer.valid_every=1000", "trainer.batch_tokens=256", "scheduler=cosine", "scheduler.min_lr=1e-5",
                      noise)
    summary = train(cfg, tmp_path / "run")
    assert summary["steps"] > 2
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["schedule"]["total_steps"] == summary["steps"]
    assert summary["history"][-1]["lr"] == pytest.approx(1e-5)


def test_a_plateau_run_resumed_as_cosine_inside_a_sampled_epoch_plans_its_end_at_once(multi30k_root, tmp_path):
    """A plateau checkpoint holds no planned last update; resumed as cosine in the middle of a
    subword-sampled epoch (whose plan is otherwise kept from the checkpoint), the schedule plans from
    where the run is and still ends at min_lr, rather than at the base rate until the next epoch."""
    sampled = ("tokenizer.subword_alpha=0.5", "trainer.batch_tokens=256", "trainer.valid_every=1000",
               "trainer.max_epochs=1")
    train(tiny_config(multi30k_root, tmp_path, *sampled, "trainer.max_steps=2"), tmp_path / "run")
    assert "total_steps" not in load_checkpoint(tmp_path / "run/checkpoints/last.pt")["schedule"]
    cfg = tiny_config(multi30k_root, tmp_path, *sampled, "trainer.max_steps=null", "scheduler=cosine",
                      "scheduler.min_lr=1e-5", "resume=true")
    summary = train(cfg, tmp_path / "run")
    assert summary["epochs"] == 1 and summary["steps"] > 4
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["schedule"]["total_steps"] == summary["steps"]
    assert summary["history"][-1]["lr"] == pytest.approx(1e-5)


def test_logged_rates_are_those_the_updates_ran_at(multi30k_root, tmp_path):
    cfg = tiny_config(multi30k_root, tmp_path, "scheduler=inverse_sqrt", "scheduler.warmup_steps=4",
                      "optimizer.lr=1e-3", "trainer.log_every=1")
    train(cfg, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run/tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("train/lr")}
    warmup_then_decay = [1 / 4, 2 / 4, 3 / 4, 1.0, math.sqrt(4 / 5), math.sqrt(4 / 6)]  # updates 1..6
    assert logged == pytest.approx({step: 1e-3 * f for step, f in enumerate(warmup_then_decay, 1)}, rel=1e-6)


def test_logged_training_figures_are_those_of_the_updates_since_the_last_log(multi30k_root, tmp_path, monkeypatch):
    """train/loss and train/grad_norm (before clipping) are what the update gave; train/tokens_per_s is the target tokens
    (EOS included) of the updates since the previous log over their training time, the validations
    between them left out. A fake clock makes every update take 2 s and every validation 100 s."""
    import nmt.training.trainer as trainer_module
    from nmt.data.tokenizer import PAD

    clock, updates = [1000.0], []
    real_step, real_validate = trainer_module.train_step, trainer_module.Run.validate

    def step(model, optimizer, batches, *args):
        clock[0] += 2.0
        loss, norm = real_step(model, optimizer, batches, *args)
        updates.append({"loss": loss, "norm": norm, "tokens": sum(int((b.tgt_out != PAD).sum()) for b in batches)})
        return loss, norm

    def validate(self, scheduled):
        clock[0] += 100.0
        return real_validate(self, scheduled)

    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(trainer_module, "train_step", step)
    monkeypatch.setattr(trainer_module.Run, "validate", validate)
    # 6 updates, validated after 3 and 6; every gradient is clipped, and the norm logged is the one before
    train(tiny_config(multi30k_root, tmp_path, "trainer.log_every=2", "trainer.clip_grad_norm=0.01"), tmp_path / "run")
    assert min(update["norm"] for update in updates) > 0.01
    events = EventAccumulator(str(tmp_path / "run/tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = {tag: {event.step: event.value for event in events.Scalars(f"train/{tag}")}
              for tag in ("loss", "grad_norm", "tokens_per_s")}
    steps = [1, 2, 4, 6]  # the first update, then every trainer.log_every
    assert logged["loss"] == pytest.approx({s: updates[s - 1]["loss"] for s in steps}, rel=1e-6)
    assert logged["grad_norm"] == pytest.approx({s: updates[s - 1]["norm"] for s in steps}, rel=1e-6)
    tokens = [update["tokens"] for update in updates]
    assert logged["tokens_per_s"] == pytest.approx({1: tokens[0] / 2, 2: tokens[1] / 2, 4: (tokens[2] + tokens[3]) / 4,
                                                    6: (tokens[4] + tokens[5]) / 4}, rel=1e-6)


def test_onednn_cache_is_bounded_unless_the_user_set_it(monkeypatch):
    from nmt.training.runtime import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLE, bound_onednn_cache

    monkeypatch.delenv(ONEDNN_CACHE_VARIABLE, raising=False)
    bound_onednn_cache()
    assert os.environ[ONEDNN_CACHE_VARIABLE] == str(ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv(ONEDNN_CACHE_VARIABLE, "7")
    bound_onednn_cache()
    assert os.environ[ONEDNN_CACHE_VARIABLE] == "7"


@pytest.mark.parametrize(("capabilities", "native"), [
    ({"architecture": "x86_64", "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}, False),
    ({"architecture": "x86_64", "avx512_bf16": True}, True),
    ({"architecture": "x86_64", "amx_bf16": True}, True),
    ({"architecture": "aarch64"}, None),
])
def test_bf16_on_a_cpu_that_would_emulate_it_gets_a_warning(monkeypatch, capabilities, native):
    """A Xeon exposing AVX-512 without AVX512-BF16/AMX trained 3x slower in bf16 than in fp32."""
    from nmt.training.runtime import cpu_has_native_bf16, slow_bf16_warning

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert cpu_has_native_bf16() is native
    cpu = torch.device("cpu")
    warning = slow_bf16_warning(cpu, "bf16")
    assert (warning is not None) == (native is False)
    if warning:
        assert "trainer.precision=bf16" in warning and "fp32" in warning and "\n" not in warning
    assert slow_bf16_warning(cpu, "fp32") is None and slow_bf16_warning(cpu, "auto") is None
    assert slow_bf16_warning(torch.device("cuda"), "bf16") is None


@pytest.mark.parametrize(("policy", "threads", "warned"), [
    ("PASSIVE", 2, True), ("passive", 4, True), ("PASSIVE", 1, False), ("ACTIVE", 2, False), (None, 2, False),
])
def test_a_passive_openmp_wait_policy_gets_a_warning(monkeypatch, policy, threads, warned):
    """PASSIVE made bf16 CPU training 20% slower on the idle 2-core Xeon (BENCHMARKS.md, tenth round)."""
    from nmt.training.runtime import passive_wait_warning

    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    warning = passive_wait_warning(torch.device("cpu"), threads)
    assert (warning is not None) == warned
    if warning:
        assert "OMP_WAIT_POLICY=PASSIVE" in warning and "trainer.num_threads=1" in warning and "\n" not in warning
    assert passive_wait_warning(torch.device("cuda"), threads) is None


@pytest.mark.parametrize(("threads", "warned"), [(None, False), (1, False), (2, False), (3, True), (1000, True)])
def test_more_threads_than_usable_cores_get_a_warning(monkeypatch, threads, warned):
    from nmt.training import runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    warning = runtime.too_many_threads_warning(threads, "trainer.num_threads")
    assert (warning is not None) == warned
    if warning:
        assert warning == (f"trainer.num_threads={threads} is more than the 2 CPU core(s) this process may use: the "
                           "extra threads only slow it down; set trainer.num_threads=2 or null")


def test_usable_cores_are_the_affinity_of_the_process():
    from nmt.training.runtime import usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0))


def test_a_run_with_more_threads_than_cores_warns_once(multi30k_root, tmp_path, monkeypatch, caplog):
    from nmt.training import runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    threads = torch.get_num_threads()
    try:
        with caplog.at_level("WARNING"):
            train(tiny_config(multi30k_root, tmp_path, "trainer.num_threads=2", "trainer.max_steps=1",
                              "trainer.valid_every=1"), tmp_path / "run")
    finally:
        torch.set_num_threads(threads)  # the run set the process's count
    assert caplog.text.count("trainer.num_threads=2 is more than the 1 CPU core(s)") == 1


def test_trainer_compile_switches_fusion_on_for_the_run_only(multi30k_root, tmp_path, monkeypatch, caplog):
    """trainer.compile=true runs the whole training (and its validations) with fused kernels, and says so."""
    import nmt.training.trainer as trainer_module
    from nmt.models import fusion

    if not fusion.compiler_available():
        pytest.skip("no C++ compiler for torch.compile")
    seen = []
    real_update = trainer_module.Run.update
    monkeypatch.setattr(trainer_module.Run, "update",
                        lambda self, update: seen.append(fusion.fusion_enabled()) or real_update(self, update))
    with caplog.at_level(logging.INFO, logger="nmt.training.trainer"):
        summary = train(tiny_config(multi30k_root, tmp_path, "trainer.compile=true"), tmp_path / "run")
    assert "trainer.compile=true: element-wise steps run through torch.compile" in caplog.text
    assert summary["steps"] == 6 and seen == [True] * 6
    assert all(math.isfinite(entry["valid_loss"]) for entry in summary["history"])
    assert not fusion.fusion_enabled()  # switched back off after the run


@pytest.mark.parametrize("console", ["none", "hydra-like"])
def test_each_validation_line_reaches_the_terminal_once(multi30k_root, tmp_path, capsys, monkeypatch, console):
    """With a console log handler (as Hydra sets up for nmt-train) the line is logged above the
    progress bar; with none (train() called from Python) it is written directly. Never twice, never lost."""
    root = logging.getLogger()
    if console == "hydra-like":
        handler = logging.StreamHandler(sys.stdout)  # capsys's stdout, bound before training starts
        handler.setFormatter(logging.Formatter("[log] %(message)s"))
        monkeypatch.setattr(root, "handlers", [*root.handlers, handler])
        monkeypatch.setattr(root, "level", logging.INFO)
    train(tiny_config(multi30k_root, tmp_path, "trainer.progress=true"), tmp_path / "run")
    out = capsys.readouterr().out
    for step in (3, 6):
        assert out.count(f"step {step:>6} | epoch") == 1, out
    assert ("[log] step      3 | epoch" in out) == (console == "hydra-like")


def test_a_resumed_optimizer_keeps_the_hyperparameters_of_its_config():
    """torch's load_state_dict would bring back the checkpoint's (here AdamW's decoupled decay and
    betas); the optimizer built from the new config keeps its own and takes only the moments."""
    from nmt.training.resume import _load_optimizer_keeping_settings

    weight = torch.nn.Parameter(torch.ones(3))
    saved = build_optimizer({"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.01}, [weight])
    weight.grad = torch.ones(3)
    saved.step()
    now = build_optimizer({"name": "adam", "lr": 1e-3, "betas": [0.8, 0.99], "weight_decay": 0.0}, [weight])
    _load_optimizer_keeping_settings(now, saved.state_dict())
    group = now.param_groups[0]
    assert group["betas"] == (0.8, 0.99) and group["weight_decay"] == 0.0
    assert not group.get("decoupled_weight_decay", False)
    assert torch.equal(now.state[weight]["exp_avg"], saved.state[weight]["exp_avg"])


def test_trainer_num_threads_is_the_cpu_thread_count_the_updates_run_with(multi30k_root, tmp_path, monkeypatch):
    import nmt.training.trainer as trainer_module
    from nmt.training.runtime import seed_everything

    seen, real_update = [], trainer_module.Run.update
    monkeypatch.setattr(trainer_module.Run, "update",
                        lambda self, update: seen.append(torch.get_num_threads()) or real_update(self, update))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=2", "trainer.num_threads=1"), tmp_path / "run")
        assert seen == [1, 1]
        torch.set_num_threads(2)
        seed_everything(0, None)  # trainer.num_threads=null: torch's own count stays
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_device_auto_takes_the_gpu_when_there_is_one_and_an_explicit_cuda_without_one_is_refused(monkeypatch):
    from nmt.training.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=rf"^device={name} was requested but no CUDA GPU is available; "
                                              "use device=cpu$"):
            resolve_device(name)


@pytest.mark.parametrize(("count", "seen"), [(1, "1 GPU, cuda:0"), (2, "2 GPUs, cuda:0 to cuda:1")])
def test_a_gpu_number_past_the_gpus_there_are_is_refused(monkeypatch, count, seen):
    from nmt.training.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
    with pytest.raises(ConfigError, match=rf"^device=cuda:{count}: there is no GPU {count}; this machine has {seen}$"):
        resolve_device(f"cuda:{count}")


@pytest.mark.parametrize("name", ["mps", "xpu", "meta", "cpu:1", 0])
def test_a_device_the_commands_do_not_run_on_is_refused(monkeypatch, name):
    """torch knows mps, xpu and meta, but training and decoding there failed later with a traceback."""
    from nmt.training.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # device=0 is not taken as cuda:0 either
    with pytest.raises(ConfigError, match=rf"^device={name!r} is not valid; use auto, cpu, cuda or cuda:N$"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["cpu", "cpu:0"])
def test_the_cpu_is_taken_by_either_of_torchs_names(name):
    from nmt.training.runtime import resolve_device

    assert resolve_device(name).type == "cpu"


@pytest.mark.parametrize(("precision", "dtype"), [("auto", torch.float32), ("fp32", torch.float32),
                                                  ("bf16", torch.bfloat16)])
def test_cpu_products_run_in_bf16_only_with_precision_bf16(precision, dtype):
    """trainer.precision=auto stays fp32 on the CPU (bf16 is 3x slower where it is emulated)."""
    import warnings

    from nmt.training.runtime import autocast_context

    weights = torch.ones(4, 4)
    with autocast_context(torch.device("cpu"), precision):
        assert (weights @ weights).dtype == dtype
    with warnings.catch_warnings():  # torch warns that it cannot enable CUDA autocast on a machine without CUDA
        warnings.simplefilter("ignore")
        cuda = autocast_context(torch.device("cuda"), precision)
    # On a GPU, auto and bf16 mean bf16 autocast, fp32 none.
    assert isinstance(cuda, torch.autocast) == (precision != "fp32")
    if precision != "fp32":
        assert cuda.device == "cuda" and cuda.fast_dtype == torch.bfloat16
