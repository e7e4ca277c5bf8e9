"""A user's own experiments, kept in a folder of their own and given with --config-dir, train as the
shipped ones do: they pick config options, set values, and show in --cfg job and the run's config."""

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import nmt.cli.train
from nmt.cli.common import composable_overrides, compose_checked

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GERMAN = ["Ein Hund rennt über die Wiese.", "Zwei Männer spielen Fußball.", "Eine Frau liest ein Buch."]
ENGLISH = ["A dog runs across the meadow.", "Two men play football.", "A woman reads a book."]

MY_EXPERIMENT = """\
# @package _global_
defaults:
  - override /data: my_corpus
  - override /model/attention: dot
model:
  emb_size: 12
  enc_hidden: 10
  dec_hidden: 10
tokenizer:
  vocab_size: 40
trainer:
  max_steps: 2
  progress: false
  plot_sentences: 0
"""


MY_CORPUS = """\
defaults: [files, _self_]
files:
  train: "{corpus}/train.{{lang}}"
  val: "{corpus}/val.{{lang}}"
  test: "{corpus}/val.{{lang}}"   # split names are the user's: not mistaken for a misspelt option
cache: false
"""


@pytest.fixture
def my_configs(tmp_path) -> Path:
    """my_configs/experiment/tiny_dot.yaml, which picks my_configs/data/my_corpus.yaml, both the user's own."""
    for group in ("experiment", "data"):
        (tmp_path / "mine" / group).mkdir(parents=True)
    (tmp_path / "mine/experiment/tiny_dot.yaml").write_text(MY_EXPERIMENT)
    (tmp_path / "mine/data/my_corpus.yaml").write_text(MY_CORPUS.format(corpus=tmp_path / "corpus"))
    for split, copies in (("train", 4), ("val", 1)):
        for lang, lines in (("de", GERMAN), ("en", ENGLISH)):
            (tmp_path / f"corpus/{split}.{lang}").parent.mkdir(exist_ok=True)
            (tmp_path / f"corpus/{split}.{lang}").write_text("".join(f"{line}\n" for line in lines * copies))
    return tmp_path / "mine"


def test_a_users_experiment_trains_with_its_choices_and_values(monkeypatch, my_configs, tmp_path):
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["nmt-train", "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      f"hydra.run.dir={run}"])
    nmt.cli.train.main()
    used = OmegaConf.load(run / "config.yaml")
    assert used.model.attention.name == "dot" and used.data.source == "files" and used.data.cache is False
    assert used.data.files.train == f"{tmp_path}/corpus/train.{{lang}}"
    assert used.data.files.test == f"{tmp_path}/corpus/val.{{lang}}"
    assert (used.model.emb_size, used.model.enc_hidden, used.tokenizer.vocab_size) == (12, 10, 40)
    assert used.trainer.max_steps == 2
    assert (run / "checkpoints/last.pt").is_file()


def test_cfg_job_prints_a_users_experiment_over_the_defaults(capsys, monkeypatch, my_configs):
    monkeypatch.setattr(sys, "argv", ["nmt-train", "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      "model.dec_hidden=14", "--cfg", "job"])
    nmt.cli.train.main()
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.model.attention.name == "dot" and printed.model.emb_size == 12
    assert printed.model.dec_hidden == 14  # the command line over the user's file
    assert printed.optimizer.name == "adam"  # what the user's file leaves alone keeps its default


def test_split_names_an_experiment_adds_are_not_taken_for_misspelt_options(my_configs):
    (my_configs / "experiment/more_splits.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - _self_\ndata:\n  files:\n    test_2: x/{lang}\n")
    cfg = compose_checked("train", composable_overrides(["--config-dir", str(my_configs), "experiment=more_splits"]))
    assert cfg.data.files.test_2 == "x/{lang}" and cfg.model.attention.name == "dot"
