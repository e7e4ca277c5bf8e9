"""trainer.best_metric: the validation figure (BLEU, chrF or loss) that picks best.pt and the kept
checkpoints and steers early stopping and the plateau schedule."""

import logging
import math

import pytest
from test_training import tiny_config as training_config

from nmt.errors import ConfigError
from nmt.training.checkpoint import load_checkpoint, save_checkpoint
from nmt.training.options import check_trainer_options
from nmt.training.resume import ADDED_TRAINER_OPTIONS
from nmt.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HIGHER_IS_BETTER = {"bleu": ("valid_bleu", 1), "chrf": ("valid_chrf", 1), "loss": ("valid_loss", -1)}


def tiny_config(multi30k_root, tmp_path, *extra):
    """test_training's tiny run, validated every 2 of 10 updates, keeping 2 checkpoints, halving the
    rate at every validation without a better score."""
    return training_config(multi30k_root, tmp_path, "trainer.max_steps=10", "trainer.valid_every=2",
                           "trainer.keep_best_checkpoints=2", "trainer.early_stopping_patience=null",
                           "scheduler.patience=0", *extra)


@pytest.mark.parametrize("metric", ["bleu", "chrf", "loss"])
def test_best_checkpoint_kept_checkpoints_and_schedule_follow_the_chosen_metric(multi30k_root, tmp_path,
                                                                                 caplog, metric):
    caplog.set_level(logging.INFO, logger="nmt.training.trainer")
    summary = train(tiny_config(multi30k_root, tmp_path, f"trainer.best_metric={metric}"), tmp_path / "run")
    key, sign = HIGHER_IS_BETTER[metric]
    history = summary["history"]
    scores = [sign * h[key] for h in history]
    best = max(range(len(history)), key=lambda i: (scores[i], -i))  # the first of equal scores: ties do not improve
    checkpoints = tmp_path / "run/checkpoints"
    assert load_checkpoint(checkpoints / "best.pt")["progress"]["step"] == history[best]["step"]
    assert summary["best_metric"] == metric and summary["best_score"] == pytest.approx(history[best][key])
    assert summary["best_bleu"] == max(h["valid_bleu"] for h in history)
    last = load_checkpoint(checkpoints / "last.pt")
    ranked = sorted(([s, h["step"]] for s, h in zip(scores, history, strict=True)), reverse=True)[:2]
    assert last["progress"]["kept"] == ranked
    assert sorted(p.name for p in checkpoints.glob("step-*.pt")) == sorted(f"step-{s}.pt" for _, s in ranked)
    assert last["schedule"]["best"] == pytest.approx(max(scores))  # the plateau schedule saw the same scores
    marked = {"bleu": f"BLEU {history[best]['valid_bleu']:.2f} (best)",
              "chrf": f"chrF {history[best]['valid_chrf']:.2f} (best)",
              "loss": f"valid loss {history[best]['valid_loss']:.3f} (best)"}[metric]
    assert f"step {history[best]['step']:>6} |" in caplog.text and marked in caplog.text


def test_loss_and_bleu_choose_differently_on_this_run(multi30k_root, tmp_path):
    """The check above means something: on the same run the metrics disagree about the best step."""
    history = train(tiny_config(multi30k_root, tmp_path), tmp_path / "run")["history"]
    by_loss = min(history, key=lambda h: h["valid_loss"])["step"]
    by_bleu = max(history, key=lambda h: h["valid_bleu"])["step"]
    assert by_loss != by_bleu


@pytest.mark.parametrize("patience", [1, 2])
def test_training_stops_early_at_the_patience_th_validation_in_a_row_without_a_better_score(
        multi30k_root, tmp_path, caplog, patience):
    """trainer.early_stopping_patience=N ends the run at the N-th validation in a row whose score is not
    above the best so far (a tie is no improvement), and a resumed run then has nothing to do."""
    cfg = tiny_config(multi30k_root, tmp_path, "trainer.max_steps=20", "optimizer.lr=1e-9",  # nearly frozen weights
                      f"trainer.early_stopping_patience={patience}")
    caplog.set_level(logging.INFO, logger="nmt.training.trainer")
    summary = train(cfg, tmp_path / "run")
    scores = [h["valid_bleu"] for h in summary["history"]]
    stop, best, without = None, -math.inf, 0
    for i, score in enumerate(scores):
        best, without = (score, 0) if score > best else (best, without + 1)
        if without == patience:
            stop = i
            break
    assert stop is not None and stop == len(scores) - 1  # stopped there, and no validation later
    assert summary["steps"] == 2 * (stop + 1) < 20
    assert f"early stopping: no better BLEU in {patience} validations" in caplog.text
    resumed = train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=20", "optimizer.lr=1e-9",
                                f"trainer.early_stopping_patience={patience}", "resume=true"), tmp_path / "run")
    assert resumed["steps"] == summary["steps"]
    assert f"stopped early after {patience} validations without a better BLEU" in caplog.text


def test_an_unknown_metric_is_refused_naming_the_option(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, "trainer.best_metric=ppl")
    with pytest.raises(ConfigError, match="^trainer.best_metric must be one of bleu, chrf, loss; got 'ppl'"):
        check_trainer_options(cfg.trainer)


def test_a_run_resumes_only_with_the_metric_it_started_with(multi30k_root, tmp_path):
    train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=2"), tmp_path / "run")
    with pytest.raises(ConfigError, match="trainer.best_metric=loss, but the run in .* chose its best checkpoints "
                                          "by bleu: resume with trainer.best_metric=bleu"):
        train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=4", "trainer.best_metric=loss", "resume=true"),
              tmp_path / "run")


def test_a_checkpoint_from_before_the_option_resumes_by_bleu(multi30k_root, tmp_path, caplog):
    """Its progress says best_bleu and its config has neither best_metric nor the options added
    after it: it resumes as a BLEU run, without a warning about changed settings."""
    train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=4"), tmp_path / "run")
    path = tmp_path / "run/checkpoints/last.pt"
    state = load_checkpoint(path)
    best_bleu = state["progress"].pop("best_score")
    state["progress"]["best_bleu"] = best_bleu
    for option in ADDED_TRAINER_OPTIONS:  # best_metric and the options added since
        del state["config"]["trainer"][option]
    save_checkpoint(state, path)
    caplog.set_level(logging.WARNING)
    summary = train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=6", "resume=true"), tmp_path / "run")
    assert "changed settings" not in caplog.text
    assert summary["steps"] == 6 and summary["best_score"] >= best_bleu and math.isfinite(summary["best_score"])
