"""init_from=CHECKPOINT: a new run (fine-tuning) that starts from a trained model's weights and
SentencePiece models, on other data, with a fresh optimizer, schedule and counters."""

import sys
from pathlib import Path

import pytest
import torch
from test_training import tiny_config

import nmt.cli.train as cli_train
from nmt.data.pipeline import cache_key
from nmt.data.tokenizer import Tokenizers
from nmt.errors import CheckpointError, ConfigError
from nmt.training.checkpoint import load_checkpoint
from nmt.training.options import check_run_options
from nmt.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def other_data(multi30k_root: Path) -> list[str]:
    """Another corpus than the parent run's Multi30k training split: local files (its validation split)."""
    val = str(multi30k_root / "multi30k" / "val.{lang}.gz")
    return ["data=files", f"data.files.train='{val}'", f"data.files.val='{val}'", "data.max_train_examples=200"]


@pytest.fixture(scope="module")
def parent(multi30k_root, tmp_path_factory) -> Path:
    """A trained run's best checkpoint (test_training's tiny run, dropout 0.1)."""
    folder = tmp_path_factory.mktemp("parent")
    train(tiny_config(multi30k_root, folder), folder / "run")
    return folder / "run/checkpoints/best.pt"


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())


def test_a_run_starts_from_the_checkpoint_on_other_data(multi30k_root, tmp_path, parent):
    # A rate too small to move the weights: after one update they must still be the parent's, not
    # those this seed initialises (the parent's seed is 42).
    still = ["trainer.max_steps=1", "trainer.valid_every=1", "optimizer.lr=1e-9", "seed=7", *other_data(multi30k_root)]
    summary = train(tiny_config(multi30k_root, tmp_path, *still, f"init_from={parent}", "model.dropout=0.3"),
                    tmp_path / "tuned")
    train(tiny_config(multi30k_root, tmp_path, *still), tmp_path / "fresh")
    start = load_checkpoint(parent)
    tuned = load_checkpoint(tmp_path / "tuned/checkpoints/last.pt")
    assert largest_difference(tuned["model"], start["model"]) < 1e-5
    assert largest_difference(load_checkpoint(tmp_path / "fresh/checkpoints/last.pt")["model"], start["model"]) > 0.01
    # Its own counters, history and optimizer; the parent's SentencePiece models, in the run folder too.
    assert summary["steps"] == 1 and [h["step"] for h in summary["history"]] == [1]
    assert tuned["progress"]["epoch"] == 0 and tuned["optimizer"]["state"][0]["step"].item() == 1
    assert tuned["tokenizers"] == start["tokenizers"]
    assert (tmp_path / "tuned/spm.model").read_bytes() == Tokenizers.from_dict(start["tokenizers"]).model_files()["spm.model"]
    assert (tmp_path / "fresh/spm.model").read_bytes() != (tmp_path / "tuned/spm.model").read_bytes()
    # Its validation pairs are the parent's, encoded with the same models: the parent's score comes back.
    scored = next(h for h in start["history"] if h["step"] == start["progress"]["step"])
    assert summary["history"][0]["valid_loss"] == pytest.approx(scored["valid_loss"], abs=1e-3)
    assert tuned["config"]["init_from"] == str(parent) and tuned["config"]["model"]["dropout"] == 0.3


def test_the_data_is_cached_apart_from_a_run_that_trains_its_own_models(multi30k_root, tmp_path, parent):
    cfg = tiny_config(multi30k_root, tmp_path, *other_data(multi30k_root))
    given = Tokenizers.from_dict(load_checkpoint(parent)["tokenizers"])
    assert cache_key(cfg, given) != cache_key(cfg)
    assert cache_key(cfg, given) == cache_key(cfg, Tokenizers.from_dict(load_checkpoint(parent)["tokenizers"]))


def test_a_fine_tuning_run_resumes_exactly_without_its_init_checkpoint(multi30k_root, tmp_path, parent):
    start = tmp_path / "start.pt"
    start.write_bytes(parent.read_bytes())
    overrides = [*other_data(multi30k_root), f"init_from={start}", "trainer.valid_every=2"]
    train(tiny_config(multi30k_root, tmp_path, *overrides, "trainer.max_steps=4"), tmp_path / "one_go")
    train(tiny_config(multi30k_root, tmp_path, *overrides, "trainer.max_steps=2"), tmp_path / "halves")
    start.unlink()  # the run's own checkpoints hold everything it needs
    summary = train(tiny_config(multi30k_root, tmp_path, *overrides, "trainer.max_steps=4", "resume=true"),
                    tmp_path / "halves")
    assert summary["steps"] == 4
    one_go = load_checkpoint(tmp_path / "one_go/checkpoints/last.pt")["model"]
    halves = load_checkpoint(tmp_path / "halves/checkpoints/last.pt")["model"]
    assert all(torch.equal(one_go[k], halves[k]) for k in one_go)


def test_resuming_a_fine_tuning_run_without_its_init_checkpoint_is_no_changed_setting(multi30k_root, tmp_path,
                                                                                       parent, caplog):
    overrides = [*other_data(multi30k_root), "trainer.valid_every=2"]
    train(tiny_config(multi30k_root, tmp_path, *overrides, f"init_from={parent}", "trainer.max_steps=2"), tmp_path / "run")
    with caplog.at_level("WARNING"):
        summary = train(tiny_config(multi30k_root, tmp_path, *overrides, "trainer.max_steps=3", "resume=true"),
                        tmp_path / "run")
    assert summary["steps"] == 3
    assert "changed settings" not in caplog.text


@pytest.mark.parametrize("started_from", ["afresh", "another checkpoint"])
def test_init_from_with_resume_of_a_run_that_did_not_start_from_it_is_refused(multi30k_root, tmp_path, parent,
                                                                              started_from):
    """The user means a new run from init_from; continuing the folder's run would silently not be one."""
    overrides = [*other_data(multi30k_root), "trainer.valid_every=2", "trainer.max_steps=2"]
    if started_from == "another checkpoint":
        other = tmp_path / "other.pt"
        other.write_bytes(parent.read_bytes())
        overrides.append(f"init_from={other}")
    train(tiny_config(multi30k_root, tmp_path, *overrides), tmp_path / "run")
    last = tmp_path / "run/checkpoints/last.pt"
    before = last.read_bytes()
    origin = f"from init_from={tmp_path / 'other.pt'}" if started_from == "another checkpoint" else "afresh"
    with pytest.raises(ConfigError) as error:
        train(tiny_config(multi30k_root, tmp_path, *overrides, f"init_from={parent}", "resume=true"), tmp_path / "run")
    assert str(error.value) == (f"init_from={parent} starts a new run, but resume continues the run of {last}, which "
                                f"started {origin}: drop init_from to continue that run, or start the new one in "
                                "another folder")
    assert last.read_bytes() == before


def test_another_model_is_refused_naming_the_option(multi30k_root, tmp_path, parent):
    cfg = tiny_config(multi30k_root, tmp_path, f"init_from={parent}", "model.dec_hidden=24")
    with pytest.raises(CheckpointError, match=r"holds a different model \(model.dec_hidden: 16 in the checkpoint, "
                                              r"24 now\): a fine-tuning run keeps the model"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_other_sentencepiece_settings_are_refused_naming_the_option(multi30k_root, tmp_path, parent):
    cfg = tiny_config(multi30k_root, tmp_path, f"init_from={parent}", "tokenizer.vocab_size=300")
    with pytest.raises(ConfigError, match=r"^tokenizer.vocab_size=300, but init_from=.* brings SentencePiece "
                                          r"models made with 200: give that value"):
        train(cfg, tmp_path / "run")


def test_a_missing_checkpoint_is_refused_before_any_folder_exists(capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "runs" / "x"
    missing = tmp_path / "nothing.pt"
    monkeypatch.setattr(sys, "argv", ["nmt-train", "experiment=smoke", f"hydra.run.dir={run_dir}",
                                      f"init_from={missing}"])
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == f"error: init_from={missing}: no such checkpoint file\n"
    assert not (tmp_path / "runs").exists()


def test_a_path_that_is_not_text_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, "init_from=5")
    with pytest.raises(ConfigError, match="^init_from must be null or a checkpoint path; got 5"):
        check_run_options(cfg)


def test_weights_of_another_shape_are_refused_in_one_line():
    """torch's load_state_dict lists every mismatch on lines of its own; the command prints one line."""
    from nmt.models.seq2seq import build_model
    from nmt.training.initial import initialise

    cfg = {"rnn_type": "gru", "emb_size": 8, "enc_hidden": 8, "enc_layers": 1, "bidirectional": True, "dec_hidden": 8,
           "dec_layers": 1, "decoder_style": "bahdanau", "input_feeding": True, "dropout": 0.0,
           "tie_embeddings": True, "tie_output": False, "attention": {"name": "additive"}}
    weights = build_model(cfg, 30, 30, shared_vocab=True).state_dict()
    weights = {name: torch.zeros(3, 3) if i < 2 else value for i, (name, value) in enumerate(weights.items())}
    with pytest.raises(CheckpointError) as error:
        initialise(build_model(cfg, 30, 30, shared_vocab=True), {"model": weights}, "parent.pt")
    message = str(error.value)
    assert message.startswith("init_from=parent.pt does not fit this model: Error(s) in loading state_dict for "
                              "Seq2Seq: size mismatch for ")  # the first weight that does not fit, named
    assert "torch.Size([3, 3]) from checkpoint" in message
    assert "\n" not in message
