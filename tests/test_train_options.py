"""nmt-train refuses a mistaken value with one line before Hydra creates the run folder, and a refused
command leaves an existing run folder byte for byte as it was (nmt.training.options, nmt.cli.train)."""

import hashlib
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import nmt.cli.train as cli_train
from nmt.cli.common import config_dir
from nmt.errors import ConfigError
from nmt.training.options import check_run_options

EXPERIMENTS = sorted(path.stem for path in (Path(config_dir()) / "experiment").glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("overrides", [[], *([f"experiment={name}"] for name in EXPERIMENTS),
                                       ["optimizer=adamw", "scheduler=cosine"], ["scheduler=inverse_sqrt"],
                                       ["model/attention=multihead"], ["model/attention=concat"],
                                       ["model.rnn_type=lstm", "model.decoder_style=luong"]])
def test_every_shipped_config_passes(overrides):
    check_run_options(composed(*overrides))


@pytest.mark.parametrize(("overrides", "message"), [
    (["optimizer.lr=abc"], "optimizer.lr must be a number > 0, e.g. 5e-4; got 'abc'"),
    (["optimizer.lr=-1"], "optimizer.lr must be a number > 0, e.g. 5e-4; got -1"),
    (["optimizer.lr=0"], "optimizer.lr must be a number > 0, e.g. 5e-4; got 0"),
    (["optimizer.betas=[0.9,1.0]"], "optimizer.betas must be two numbers in [0, 1), e.g. [0.9,0.999]; "
                                    "got [0.9, 1.0]"),
    (["optimizer.betas=abc"], "optimizer.betas must be two numbers in [0, 1), e.g. [0.9,0.999]; got 'abc'"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay must be a number >= 0; got -0.1"),
    (["optimizer.name=sgd"], "optimizer.name must be one of adam, adamw; got 'sgd'"),
    (["scheduler.factor=abc"], "scheduler.factor must be a number in (0, 1), e.g. 0.7; got 'abc'"),
    (["scheduler.factor=1"], "scheduler.factor must be a number in (0, 1), e.g. 0.7; got 1"),
    (["scheduler.patience=-1"], "scheduler.patience must be an integer >= 0; got -1"),
    (["scheduler.patience=1.5"], "scheduler.patience must be an integer >= 0; got 1.5"),
    (["scheduler.warmup_steps=abc"], "scheduler.warmup_steps must be an integer >= 0; got 'abc'"),
    (["scheduler.min_lr=-1"], "scheduler.min_lr must be a number >= 0; got -1"),
    (["scheduler=cosine", "scheduler.total_steps=0"], "scheduler.total_steps must be null or a positive "
                                                      "integer; got 0"),
    (["scheduler=inverse_sqrt", "scheduler.warmup_steps=-5"], "scheduler.warmup_steps must be an integer "
                                                              ">= 0; got -5"),
    (["model.dropout=1.5"], "model.dropout must be a number in [0, 1); got 1.5"),
    (["model.word_dropout=-0.1"], "model.word_dropout must be a number in [0, 1); got -0.1"),
    (["model.enc_layers=0"], "model.enc_layers must be a positive integer; got 0"),
    (["model.emb_size=abc"], "model.emb_size must be a positive integer; got 'abc'"),
    (["model.dec_hidden=true"], "model.dec_hidden must be a positive integer; got True"),
    (["model.bidirectional=yes"], "model.bidirectional must be true or false; got 'yes'"),
    (["model.rnn_type=rnn"], "model.rnn_type='rnn' is not valid; choose one of: gru, lstm"),
    (["model/attention=multihead", "model.attention.num_heads=3"],
     "model.attention.num_heads=3 must divide model.dec_hidden=512"),
    (["model.attention.name=bogus"], "unknown attention 'bogus'"),
    (["tokenizer.type=word"], "tokenizer.type must be one of unigram, bpe; got 'word'"),
    (["tokenizer.vocab_size=4"], "tokenizer.vocab_size must be an integer above 4; got 4"),
    (["tokenizer.joint=false"], "model.tie_embeddings=true needs one vocabulary for both languages"),
    (["seed=abc"], "seed must be an integer from 0 to 4294967295; got 'abc'"),
    (["seed=-1"], "seed must be an integer from 0 to 4294967295; got -1"),
    (["device=gpu"], "device='gpu' is not valid; use auto, cpu, cuda or cuda:N"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be null or a positive integer; got 'abc'"),
    (["data.tgt_lang=de"], "data.src_lang and data.tgt_lang are both 'de': source and target would be the "
                           "same text"),
    (["data.cache=off"], "data.cache must be true or false; got 'off'"),  # a cached corpus never reads it
    (["data=hub", "data.streaming=maybe"], "data.streaming must be true or false; got 'maybe'"),
    (["data.num_workers=0"], "data.num_workers must be null (all cores) or a positive integer; got 0"),
    # The bounds themselves, where a value just past them would start a run that makes no sense.
    (["trainer.valid_beam_size=0"], "trainer.valid_beam_size must be a positive integer; got 0"),
    (["trainer.label_smoothing=1"], "trainer.label_smoothing must be a number in [0, 1); got 1"),
    (["trainer.ema_decay=0"], "trainer.ema_decay must be null (no weight averaging) or a number in (0, 1), "
                              "e.g. 0.999; got 0"),
    (["trainer.risk_weight=0.5", "trainer.risk_candidates=1"],
     "trainer.risk_candidates must be an integer >= 2 (candidates per source for minimum risk training); got 1"),
    (["trainer.num_threads=0"], "trainer.num_threads must be null or a positive integer; got 0"),
    (["trainer.num_threads=-1"], "trainer.num_threads must be null or a positive integer; got -1"),
    (["trainer.early_stopping_patience=0"], "trainer.early_stopping_patience must be null or a positive "
                                            "integer; got 0"),
    (["optimizer.betas=[0.9,0.98,0.99]"], "optimizer.betas must be two numbers in [0, 1), e.g. [0.9,0.999]; "
                                          "got [0.9, 0.98, 0.99]"),
    (["tokenizer.character_coverage=0"],
     "tokenizer.character_coverage must be a number from 0.98 to 1 (SentencePiece's range); got 0"),
    # SentencePiece's own assertion, a traceback, after the data were read
    (["tokenizer.character_coverage=0.5"],
     "tokenizer.character_coverage must be a number from 0.98 to 1 (SentencePiece's range); got 0.5"),
])
def test_a_value_of_the_wrong_kind_names_the_option(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_run_options(composed(*overrides))
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("overrides", [
    ["trainer.clip_grad_norm=0"], ["trainer.clip_grad_norm=null"],  # the default config's "0 or null: no clipping"
    ["seed=4294967295"], ["seed=0"],  # SentencePiece and numpy take any unsigned 32-bit seed
    ["trainer.label_smoothing=0"], ["trainer.valid_max_len_b=0"], ["trainer.plot_sentences=0"],
    ["trainer.risk_weight=1", "trainer.risk_candidates=2"], ["tokenizer.character_coverage=1"],
    ["trainer.num_threads=1"], ["trainer.early_stopping_patience=1"], ["trainer.ema_decay=0.5"],
])
def test_values_at_the_documented_bounds_are_accepted(overrides):
    check_run_options(composed(*overrides))


def test_one_language_on_both_sides_is_allowed_where_the_target_has_its_own_column():
    check_run_options(composed("data=files", "data.format=tsv", "data.tgt_lang=de",
                               "data.files.train=x.tsv", "data.files.val=y.tsv"))
    with pytest.raises(ConfigError, match="both 'de'"):
        check_run_options(composed("data=files", "data.tgt_lang=de", "data.files.train='x.{lang}'",
                                   "data.files.val='y.{lang}'"))


# --- through the command: no run folder -------------------------------------------------------------

@pytest.mark.parametrize(("override", "message"), [
    ("trainer.max_steps=abc", "trainer.max_steps must be null or a positive integer"),
    ("model.rnn_type=rnn", "model.rnn_type='rnn' is not valid"),
    ("device=gpu", "device='gpu' is not valid"),
    ("device=mps", "device='mps' is not valid; use auto, cpu, cuda or cuda:N"),  # torch knows it; training failed there
    ("model.attention.name=bogus", "unknown attention 'bogus'"),
    ("tokenizer.type=word", "tokenizer.type must be one of unigram, bpe"),
    ("scheduler.factor=abc", "scheduler.factor must be a number in (0, 1)"),
    ("resume=true", "nothing to resume:"),
])
def test_a_mistaken_value_creates_no_run_folder(capsys, monkeypatch, tmp_path, override, message):
    run_dir = tmp_path / "runs" / "x"
    monkeypatch.setattr(sys, "argv", ["nmt-train", "experiment=smoke", f"hydra.run.dir={run_dir}", override])
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


# --- undoing Hydra's files when train refuses to start -----------------------------------------------

def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def as_hydra_does(run_dir: Path) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra/overrides.yaml").write_text("- resume=true\n- tokenizer.vocab_size=800\n")
    with open(run_dir / "train.log", "a") as log:
        log.write("resuming with changed settings ...\n")


@pytest.fixture
def old_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra/overrides.yaml").write_text("- experiment=smoke\n")
    (run_dir / "train.log").write_text("step 10 | ...\n")
    (run_dir / "config.yaml").write_text("seed: 42\n")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints/last.pt").write_bytes(b"weights")
    return run_dir


def test_a_refused_start_takes_back_what_hydra_wrote(old_run):
    before = folder_hashes(old_run)
    with pytest.raises(SystemExit), cli_train.undone_if_refused(old_run):
        as_hydra_does(old_run)
        sys.exit(2)
    assert folder_hashes(old_run) == before


def test_a_refused_new_run_leaves_no_folder(tmp_path):
    run_dir = tmp_path / "runs" / "new"
    with pytest.raises(SystemExit), cli_train.undone_if_refused(run_dir):
        as_hydra_does(run_dir)
        sys.exit(2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [0, 1, 130, 143])
def test_a_run_that_started_or_ended_otherwise_keeps_its_files(old_run, code):
    with pytest.raises(SystemExit), cli_train.undone_if_refused(old_run):
        as_hydra_does(old_run)
        sys.exit(code)
    assert "vocab_size=800" in (old_run / ".hydra/overrides.yaml").read_text()


def test_an_error_after_train_wrote_the_run_folder_keeps_the_log(old_run):
    """Training that diverged (exit 2) after config.yaml was written: its log is the run's."""
    with pytest.raises(SystemExit), cli_train.undone_if_refused(old_run):
        as_hydra_does(old_run)
        (old_run / "config.yaml").write_text("seed: 42\n# written again\n")
        sys.exit(2)
    assert "resuming with changed settings" in (old_run / "train.log").read_text()
