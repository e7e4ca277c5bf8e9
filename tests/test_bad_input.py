"""Bad input: every mistake is one line naming the culprit and a non-zero exit, never a traceback;
odd but valid input (a BOM, empty or huge lines, control characters, mixed scripts) just works.

Errors are checked the way the commands report them: `exit_on_user_error` around the task (what
Hydra runs), or the console-script `main()` for mistakes caught before Hydra starts.
"""

import contextlib
import io
import logging
import os
import re
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from user_errors import config_error, main_error, one_line_error

import nmt.cli.align
import nmt.cli.average
import nmt.cli.evaluate
import nmt.cli.plot
import nmt.cli.serve
import nmt.cli.train
import nmt.cli.translate
import nmt.inference.evaluate
from nmt.cli.common import (
    composable_command_line,
    compose_checked,
    config_dir,
    exit_on_user_error,
    quote_text_overrides,
)
from nmt.cli.outputs import check_output_file
from nmt.data.pipeline import prepare_data, validation_overlap_warning
from nmt.data.readers import decode_lines, read_lines
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
from nmt.errors import DataError
from nmt.inference.evaluate import evaluate
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import save_checkpoint
from nmt.training.trainer import train

GERMAN = ["Ein Hund rennt über die Wiese.", "Zwei Männer spielen Fußball.", "Eine Frau liest ein Buch.",
          "Kinder spielen im Park.", "Ein Mann fährt Fahrrad."]
ENGLISH = ["A dog runs across the meadow.", "Two men play football.", "A woman reads a book.",
           "Children play in the park.", "A man rides a bike."]
OTHER_SCRIPTS = ["Собака бежит по лугу.", "狗在草地上跑。", "الكلب يركض في المرج.",
                 "कुत्ता दौड़ता है।", "Ο σκύλος τρέχει."]
TINY_MODEL = ["model.emb_size=8", "model.enc_hidden=8", "model.dec_hidden=8"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_corpus(folder: Path, split: str, src: list[str] | bytes, tgt: list[str] | bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in (("de", src), ("en", tgt)):
        data = lines if isinstance(lines, bytes) else "".join(f"{line}\n" for line in lines).encode()
        (folder / f"{split}.{lang}").write_bytes(data)


def files_config(folder: Path, *overrides: str):
    """A `data=files` config reading <folder>/{train,val}.{de,en}, with a tiny model."""
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[
            "data=files", f"data.files.train='{folder}/train.{{lang}}'",
            f"data.files.val='{folder}/val.{{lang}}'",
            "data.cache=false", "tokenizer.vocab_size=60", *TINY_MODEL, "trainer.max_steps=1",
            "trainer.progress=false", "trainer.plot_sentences=0", *overrides])


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A valid little corpus: train and val splits of 4 x 5 aligned sentences."""
    write_corpus(tmp_path / "corpus", "train", GERMAN * 4, ENGLISH * 4)
    write_corpus(tmp_path / "corpus", "val", GERMAN, ENGLISH)
    return tmp_path / "corpus"


# --- the command line -----------------------------------------------------------------------------

ATTENTIONS = "additive, concat, dot, general, multihead, scaled_dot"


@pytest.mark.parametrize(("args", "message"), [
    (["trainer.max_stepz=3"], "trainer.max_stepz is not an option (did you mean trainer.max_steps?)"),
    # the hint looks at every attention's options, not only the picked additive's
    (["model.attention.num_head=8"], "model.attention.num_head is not an option (did you mean model.attention.num_heads?)"),
    (["model/attention=bogus"], f"model/attention=bogus is not an option; choose one of: {ATTENTIONS}"),
    (["data=bogus"], "data=bogus is not an option; choose one of: files, hub, multi30k"),  # not _common, a base
    (["experiment=smok"], "experiment=smok is not an option; choose one of: m30k_deen_best, m30k_deen_fast, m30k_deen_ref, m30k_deen_small, m30k_ende_best, smoke"),
    (["trainer.max_steps"], "cannot parse the override 'trainer.max_steps' (missing EQUAL at '<EOF>')"),
    (["trainer.max_steps=1,2"], "trainer.max_steps=1,2: a comma is ambiguous; write a list as key=[a,b], text as "
                                "key='a,b', or add -m to run one job per value"),
])
def test_unknown_config_key_or_group_option_is_one_line_with_the_choices(capsys, monkeypatch, args, message):
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *args).startswith(message)


@pytest.mark.parametrize("arg", ["=2", "=", "=abc", "~=2"])
@pytest.mark.parametrize("main", [nmt.cli.translate.main, nmt.cli.train.main])
def test_an_override_without_a_name_says_so(capsys, monkeypatch, main, arg):
    """`=2` was taken for a config group named "": "=2 is not an option;  takes the name of one of its configs"."""
    required = ["checkpoint=x.pt"] if main is nmt.cli.translate.main else []
    assert main_error(capsys, monkeypatch, main, *required, arg) == (
        f"{arg}: the option's name is missing before the '='; write key=value")


@pytest.mark.parametrize(("args", "message"), [
    (["model.attention.num_heads=8"], "model.attention.num_heads is not an option of model/attention=additive; "
                                      "model/attention=multihead has it: add model/attention=multihead to the command line"),
    (["experiment=m30k_deen_best", "scheduler.total_steps=100"],  # the experiment keeps the default plateau
     "scheduler.total_steps is not an option of scheduler=plateau; scheduler=cosine has it: add scheduler=cosine "
     "to the command line"),
    (["data.files.train=x.{lang}"], "data.files is not an option of data=multi30k; data=files has it: add data=files "
                                    "to the command line"),
    # the command line picked the group: which config has the option is the news
    (["scheduler=cosine", "scheduler.patience=2"], "scheduler.patience is not an option of scheduler=cosine; "
                                                   "scheduler=plateau has it"),
    (["model/attention=dot", "model.attention={num_heads: 2}"],
     "model.attention.num_heads is not an option of model/attention=dot; model/attention=multihead has it"),
])
def test_an_option_of_a_config_the_command_line_does_not_pick_names_the_config_that_has_it(
        capsys, monkeypatch, args, message):
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *args) == message


GROUP_OF_OPTIONS = "must be a group of options such as"


@pytest.mark.parametrize(("args", "message"), [
    (["trainer=5"], "trainer=5 is not an option; trainer takes the name of one of its configs: default"),
    (["experiment=smoke", "data=[1]"], "data=[1] is not an option; data takes the name of one of its configs: "
                                       "files, hub, multi30k"),
    (["model/attention=[dot,5]"], f"model/attention=[dot,5] is not an option; model/attention takes the name of "
                                  f"one of its configs: {ATTENTIONS}"),
    (["model.attention=5"], f"model.attention {GROUP_OF_OPTIONS} model.attention.name=...; got 5"),
    (["experiment=smoke", "model.attention=null"], f"model.attention {GROUP_OF_OPTIONS} model.attention.name=...; "
                                                   "got None"),
    (["experiment=smoke", "data=[files]"], "data=[files] is not an option; data takes the name of one of its configs"),
    (["model/attention=[dot,general]"], "model/attention=[dot,general] is not an option"),  # would merge the two
    (["experiment=smoke", "~device"], "~device: options cannot be removed; give device=VALUE instead"),
    (["experiment=smoke", "~trainer.max_epochs"], "~trainer.max_epochs: options cannot be removed"),  # a null one
    (["model.attention=[1]"], "cannot set model.attention=[1]: Cannot merge DictConfig with ListConfig"),
    (["hydra=5"], "cannot compose the options: Config group override must be a string or a list. Got int"),
    (["model.attention={nme: dot}"], "model.attention.nme is not an option (did you mean model.attention.name?)"),
    # data.files is a group only where data=files chose it
    (["experiment=smoke", "data=files", "data.files=3"], f"data.files {GROUP_OF_OPTIONS} data.files.train=...; got 3"),
])
def test_a_group_of_options_given_one_value_is_one_line_and_leaves_no_run_folder(capsys, monkeypatch, tmp_path,
                                                                                  args, message):
    """Hydra crashes on a config group chosen with a number, and composes a group of options set to
    one value, which the command would only meet, with a traceback, where it reads the group."""
    run = tmp_path / "run"
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *args, f"hydra.run.dir={run}").startswith(message)
    assert not run.exists()


def users_configs(tmp_path: Path, name: str, text: str) -> Path:
    """A folder of the user's own configs (--config-dir) holding experiment/<name>.yaml."""
    (tmp_path / "mine/experiment").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mine/experiment" / f"{name}.yaml").write_text(text)
    return tmp_path / "mine"


@pytest.mark.parametrize("multirun", [False, True])
def test_a_users_experiment_file_that_sets_a_group_to_one_value_is_one_line(capsys, monkeypatch, tmp_path, multirun):
    """Checked before Hydra starts, for a run and for each job of a sweep (-m) alike."""
    mine = users_configs(tmp_path, "bad", "# @package _global_\ntrainer: 5\n")
    flags = ["-m", "--config-dir", str(mine)] if multirun else ["--config-dir", str(mine)]
    run = f"hydra.{'sweep' if multirun else 'run'}.dir={tmp_path / 'run'}"
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, *flags, "experiment=bad", run)
    assert message == f"trainer {GROUP_OF_OPTIONS} trainer.max_steps=...; got 5"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arg", "message"), [
    ("+trainer.max_step=3", "trainer.max_step, set by +trainer.max_step=3, is not an option "
                            "(did you mean trainer.max_steps?)"),
    ("++trainer.max_step=3", "trainer.max_step, set by ++trainer.max_step=3, is not an option "
                             "(did you mean trainer.max_steps?)"),
    ("+resumes={from: x}", "resumes, set by +resumes={from: x}, is not an option (did you mean resume?)"),
])
def test_an_option_added_with_a_plus_is_refused_when_nothing_reads_it(capsys, monkeypatch, tmp_path, arg, message):
    """Hydra adds any key given with `+`; the run would go on without the setting the user meant."""
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, "experiment=smoke", arg, f"data.root={tmp_path}",
                      f"hydra.run.dir={tmp_path / 'run'}") == message
    assert not (tmp_path / "run").exists()


def test_an_option_added_for_an_interpolation_to_read_is_accepted(tmp_path):
    assert compose_checked("train", ["+base_lr=0.002", "optimizer.lr=${base_lr}"]).optimizer.lr == 0.002
    mine = users_configs(tmp_path, "shared_size", "# @package _global_\nsize: 64\n"
                                                  "model:\n  enc_hidden: ${size}\n  dec_hidden: ${size}\n")
    overrides, _ = composable_command_line(["--config-dir", str(mine), "experiment=shared_size"])
    cfg = compose_checked("train", overrides)
    assert (cfg.model.enc_hidden, cfg.model.dec_hidden) == (64, 64)


def test_an_unknown_option_in_a_users_experiment_is_named_not_silently_ignored(capsys, monkeypatch, tmp_path):
    """The command line's unknown keys Hydra rejects; a config file's it merges, and nothing reads them."""
    mine = users_configs(tmp_path, "typo", "# @package _global_\ntrainer:\n  batch_tokenz: 6000\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "--config-dir", str(mine), "experiment=typo",
                         f"hydra.run.dir={tmp_path / 'run'}")
    assert message == ("trainer.batch_tokenz, set in a config file (experiment=typo), is not an option "
                       "(did you mean trainer.batch_tokens?)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", [
    "trainer:\n  batch_tokens: 6000\n",
    "# a comment above the header hides it\n# @package _global_\ndefaults:\n  - override /model/attention: dot\n",
])
def test_an_experiment_without_its_package_header_says_so(capsys, monkeypatch, tmp_path, text):
    mine = users_configs(tmp_path, "headless", text)
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "--config-dir", str(mine), "experiment=headless",
                         f"hydra.run.dir={tmp_path / 'run'}")
    assert message == ("experiment=headless puts its options under experiment.*: an experiment's first line must be "
                       "`# @package _global_`")


def test_a_users_config_that_is_not_yaml_is_named_with_its_line(capsys, monkeypatch, tmp_path):
    mine = users_configs(tmp_path, "broken", "# @package _global_\ntrainer:\n  max_steps: [1\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, f"--config-dir={mine}", "experiment=broken",
                         f"hydra.run.dir={tmp_path / 'run'}")
    assert message.startswith(f"{mine / 'experiment/broken.yaml'}, line 4: ")
    assert message.endswith("(not valid YAML)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("defaults: [_inference, _decoding, _self_]\nport: 8000\n",  # not built on serve.yaml: no checkpoint, no limits
     "checkpoint is missing from the config; a config of your own should build on the command's: "
     "defaults: [serve, _self_]"),
    ("defaults: [serve, _self_]\ncheckpoint: x.pt\nport: [8000\n", "line 4: "),
])
def test_a_users_config_in_place_of_the_commands_is_checked_before_it_runs(capsys, monkeypatch, tmp_path, text,
                                                                          message):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/my_server.yaml").write_text(text)
    error = main_error(capsys, monkeypatch, nmt.cli.serve.main, "--config-dir", str(tmp_path / "mine"),
                       "--config-name", "my_server")
    assert error.startswith(message) or error.startswith(f"{tmp_path / 'mine/my_server.yaml'}, {message}")


def test_a_config_name_found_nowhere_is_one_line(capsys, monkeypatch, tmp_path):
    message = main_error(capsys, monkeypatch, nmt.cli.translate.main, "-cd", str(tmp_path), "-cn", "nosuch")
    assert message == f"--config-name nosuch: there is no nosuch.yaml in {tmp_path}"


def test_a_missing_folder_of_configs_is_one_line(capsys, monkeypatch, tmp_path):
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "-cd", str(tmp_path / "nowhere"), "experiment=x")
    assert message == f"-cd {tmp_path / 'nowhere'}: no such folder"
    (tmp_path / "configs.yaml").write_text("a: 1\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "-cd", str(tmp_path / "configs.yaml"), "experiment=x")
    assert message == f"-cd {tmp_path / 'configs.yaml'}: a file, not a folder"


def test_a_mapping_where_a_value_goes_names_the_override_that_gave_it(capsys, monkeypatch):
    message = main_error(capsys, monkeypatch, nmt.cli.translate.main, "checkpoint=x.pt", "input={a: 1}")
    assert message == "input.a, set by input={a: 1}, is not an option (did you mean input?)"


def test_a_group_of_serving_options_given_one_value_is_one_line(capsys, monkeypatch):
    message = main_error(capsys, monkeypatch, nmt.cli.serve.main, "checkpoint=x.pt", "limits=5")
    assert message == f"limits {GROUP_OF_OPTIONS} limits.max_text_chars=...; got 5"


def test_a_run_folder_that_cannot_be_created_is_one_line(capsys, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, f"hydra.run.dir={tmp_path}/file/run")
    folder = tmp_path / "file"
    assert message == f"cannot create hydra.run.dir={folder}/run: {folder} is a file, not a folder"
    assert "cannot write the run folder" in one_line_error(capsys, train, files_config(tmp_path),
                                                            tmp_path / "file/run")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("args", [["hydra.run.dir=/proc/nmt-run"],
                                  ["-m", "seed=1,2", "hydra.sweep.dir=/proc/nmt-sweep"]])
def test_a_run_folder_the_kernel_refuses_is_one_line(capsys, monkeypatch, args):
    """os.access lets root write in /proc, where making a folder fails: Hydra's traceback before."""
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "experiment=smoke", *args)
    assert message.startswith(f"cannot create {args[-1]}: /proc is not writable (")


INFERENCE_MAINS = {"translate": (nmt.cli.translate.main, ["checkpoint=x.pt"]),
                   "evaluate": (nmt.cli.evaluate.main, ["checkpoint=x.pt"]),
                   "align": (nmt.cli.align.main, ["method=diagonal", "src_file=a.de", "tgt_file=a.en"]),
                   "average": (nmt.cli.average.main, ["checkpoints=[a.pt]"]),
                   "plot": (nmt.cli.plot.main, ["checkpoint=x.pt", "src=x"]),
                   "serve": (nmt.cli.serve.main, ["checkpoint=x.pt"])}


@pytest.mark.parametrize("command", INFERENCE_MAINS)
def test_an_inference_commands_run_folder_that_cannot_be_created_is_one_line(capsys, monkeypatch, tmp_path,
                                                                           command):
    """Hydra creates hydra.run.dir for every command (a NotADirectoryError traceback before), though
    only nmt-train writes in it."""
    (tmp_path / "file").write_text("")
    monkeypatch.chdir(tmp_path)
    for name in ("x.pt", "a.pt", "a.de", "a.en"):  # the files the commands read are there (not loaded)
        (tmp_path / name).touch()
    main, args = INFERENCE_MAINS[command]
    message = main_error(capsys, monkeypatch, main, *args, f"hydra.run.dir={tmp_path}/file/run")
    assert message == f"cannot create hydra.run.dir={tmp_path}/file/run: {tmp_path}/file is a file, not a folder"


def test_an_inference_command_runs_in_an_existing_folder_it_cannot_write(capsys, monkeypatch, tmp_path):
    """It writes nothing in its run folder (the current one, by default): only one to create is checked."""
    (tmp_path / "empty.pt").touch()
    (tmp_path / "in.de").write_text("Ein Hund.\n")
    monkeypatch.chdir("/proc" if Path("/proc/self").is_dir() else tmp_path)
    message = main_error(capsys, monkeypatch, nmt.cli.translate.main, f"checkpoint={tmp_path}/empty.pt",
                         f"input={tmp_path}/in.de")
    assert message == f"cannot load checkpoint {tmp_path}/empty.pt: the file is empty"  # the task ran: Hydra made no folder


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_train_from_python_checks_its_run_folder_with_the_kernel(capsys, tmp_path):
    """train() called without the command's checks: os.access said yes, and it failed after the data."""
    message = one_line_error(capsys, train, files_config(tmp_path / "no_corpus_here"), Path("/proc/nmt-run"))
    assert message.startswith("cannot write the run folder /proc/nmt-run: /proc is not writable (")


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.max_steps=abc", "trainer.max_steps must be null or a positive integer; got 'abc'"),
    ("trainer.label_smoothing=1.5", "trainer.label_smoothing must be a number in [0, 1); got 1.5"),
    ("trainer.compile=yes", "trainer.compile must be auto, true or false; got 'yes'"),
    ("trainer.keep_best_checkpoints=-1", "trainer.keep_best_checkpoints must be an integer >= 0; got -1"),
    ("trainer.ema_decay=1", "trainer.ema_decay must be null (no weight averaging) or a number in (0, 1), "
                            "e.g. 0.999; got 1"),
    ("model.attention.name=bogus", f"unknown attention 'bogus'; choose one of: {ATTENTIONS}"),
    ("tokenizer.subword_alpha=2", "tokenizer.subword_alpha must be a number from 0 (off) to 1; got 2"),
    ("data.cache_dir=2024", "data.cache_dir must be a folder's path (a name of digits goes in quotes: "
                            "data.cache_dir='2024'); got 2024"),
    ("data.src_lang=5", "data.src_lang must be a language code, e.g. de; got 5"),
    # beyond any address space, so that no machine's allocator can say yes and then fill it
    ("model.enc_hidden=10000000000000", "a model of these sizes does not fit in memory (894,069.7 GiB for one "
                                        "weight); lower model.emb_size, model.enc_hidden or model.dec_hidden"),
])
def test_bad_option_values_fail_before_any_data_is_read(capsys, tmp_path, override, message):
    missing = tmp_path / "no_corpus_here"  # reading it would be a different error
    assert one_line_error(capsys, train, files_config(missing, override), tmp_path / "run") == message


# --- data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cache", ["false", "true"])  # with a cache, the file is first met by its key
def test_missing_data_file_is_named(capsys, corpus, tmp_path, cache):
    (corpus / "val.en").unlink()
    config = files_config(corpus, f"data.cache={cache}", f"data.cache_dir={tmp_path / 'cache'}")
    assert one_line_error(capsys, train, config, tmp_path / "run") == f"{corpus}/val.en: no such file"


def test_missing_data_folder_is_named(capsys, tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=[f"data.root={tmp_path}/nowhere", *TINY_MODEL,
                                          "data.url='file:///nonexistent/{split}.{lang}'"])
    message = one_line_error(capsys, train, cfg, tmp_path / "run")
    assert message.startswith("could not download file:///nonexistent/train.de") and \
        message.endswith(f"save it as {tmp_path}/nowhere/multi30k/train.de.gz (and beside it "
                         "train.en.gz)")  # the split's other file too, for a download by hand
    assert not (tmp_path / "nowhere").exists()  # the folders made for the download are taken back


def test_source_and_target_line_counts_that_differ_name_both_files(capsys, corpus, tmp_path):
    write_corpus(corpus, "train", GERMAN * 4, ENGLISH * 4 + ["one more"])
    message = one_line_error(capsys, train, files_config(corpus), tmp_path / "run")
    assert message == (f"parallel files differ in length: {corpus}/train.de has 20 lines, "
                       f"{corpus}/train.en has 21 lines")


def test_invalid_utf8_names_file_and_line_and_can_be_replaced(capsys, corpus, tmp_path):
    write_corpus(corpus, "train", "".join(f"{s}\n" for s in GERMAN * 4).encode().replace(b"Buch", b"B\xfcch"),
                 ENGLISH * 4)
    message = one_line_error(capsys, train, files_config(corpus), tmp_path / "run")
    assert message == (f"{corpus}/train.de:3: invalid UTF-8 (byte 0xfc at byte column 22); set "
                       "data.on_decode_error=replace to replace bad bytes")
    data = prepare_data(files_config(corpus, "data.on_decode_error=replace"))
    assert len(data.train_src_ids) == 20


def test_a_byte_order_mark_is_accepted_silently(corpus):
    for path in (corpus / "val.de", corpus / "train.en"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    data = prepare_data(files_config(corpus))
    assert data.valid_src_text[0] == GERMAN[0] and len(data.train_tgt_ids) == 20


@pytest.mark.parametrize(("overrides", "cause"), [(["data.max_len=1"], "20 too long"),
                                                  ([], "20 with an empty side")])
def test_a_corpus_empty_after_filtering_says_why(capsys, corpus, tmp_path, overrides, cause):
    if not overrides:
        write_corpus(corpus, "train", GERMAN * 4, [""] * 20)
    message = one_line_error(capsys, train, files_config(corpus, *overrides), tmp_path / "run")
    assert message.startswith("training corpus is empty after cleaning (read 20") and cause in message


def test_a_pair_longer_than_a_batch_holds_is_left_out_of_training_with_one_warning(corpus, tmp_path, caplog):
    """With data.max_len=null nothing else bounds a pair: one of 20,000 words once took 24 GB as a
    batch of its own. A pair that no batch of trainer.batch_tokens holds is left out, and said so."""
    long_de, long_en = " ".join(["Hund"] * 300), " ".join(["dog"] * 300)
    write_corpus(corpus, "train", [*GERMAN * 4, long_de], [*ENGLISH * 4, long_en])
    config = files_config(corpus, "data.max_len=null", "trainer.batch_tokens=64", "trainer.max_steps=3")
    with caplog.at_level(logging.WARNING, logger="nmt"):
        summary = train(config, tmp_path / "run")
    assert summary["steps"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "left out" in r.getMessage()]
    assert warnings == ["left out 1 of 21 training pairs longer than one batch of trainer.batch_tokens=64 holds "
                        "(62 subword tokens a side); raise trainer.batch_tokens to train on them, or set "
                        "data.max_len to drop long pairs when the data is prepared"]


def test_a_pair_a_sampled_segmentation_makes_longer_than_a_batch_holds_is_warned_about(corpus, tmp_path, caplog):
    """Subword sampling (tokenizer.subword_alpha) draws longer segmentations than the prepared one: a pair
    that fit the budget may not in some epoch, and is then left out of that epoch, with a warning."""
    long_de, long_en = " ".join(["Hund"] * 150), " ".join(["dog"] * 150)
    write_corpus(corpus, "train", [*GERMAN * 4, long_de], [*ENGLISH * 4, long_en])
    prepared = prepare_data(files_config(corpus, "data.max_len=null"))
    budget = max(len(ids) for ids in [*prepared.train_src_ids, *prepared.train_tgt_ids]) + 2  # fits: see _over_budget
    config = files_config(corpus, "data.max_len=null", f"trainer.batch_tokens={budget}", "trainer.max_steps=null",
                          "trainer.max_epochs=2", "trainer.valid_every=1000", "tokenizer.subword_alpha=0.05",
                          "tokenizer.subword_nbest=-1")
    with caplog.at_level(logging.WARNING, logger="nmt"):
        train(config, tmp_path / "run")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "left out" in r.getMessage()]
    assert warnings and all(w.startswith(("epoch 1's sampled segmentation: left out 1 of 21 training pairs",
                                          "epoch 2's sampled segmentation: left out 1 of 21 training pairs"))
                            for w in warnings), warnings


def test_validation_pairs_longer_than_a_batch_holds_are_warned_about(corpus, tmp_path, caplog):
    """Nothing filters the validation split: a very long pair is decoded in full at every validation."""
    long_de, long_en = " ".join(["Hund"] * 300), " ".join(["dog"] * 300)
    write_corpus(corpus, "val", [*GERMAN[:3], long_de], [*ENGLISH[:3], long_en])
    config = files_config(corpus, "trainer.batch_tokens=64", "trainer.max_steps=1", "trainer.valid_max_len_b=2")
    with caplog.at_level(logging.WARNING, logger="nmt"):
        train(config, tmp_path / "run")
    warnings = [r.getMessage() for r in caplog.records if "validation pairs are longer" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("1 of 4 validation pairs are longer than one batch of trainer.batch_tokens=64 holds "
                                  "(the longest: ")
    longest = int(warnings[0].split("(the longest: ")[1].split(" ")[0].replace(",", ""))
    assert longest >= 300  # every "Hund" is a piece at least
    assert validation_long_pairs(config, corpus) is None


def validation_long_pairs(config, corpus):
    """The warning with the long pair gone from the validation split."""
    from nmt.training.validation import ValidationData, long_pairs_warning

    write_corpus(corpus, "val", GERMAN[:3], ENGLISH[:3])
    data = prepare_data(config)
    return long_pairs_warning(ValidationData(data.valid_src_ids, data.valid_tgt_ids, data.valid_tgt_text), 64)


def test_a_corpus_of_pairs_longer_than_a_batch_holds_is_refused(capsys, corpus, tmp_path):
    config = files_config(corpus, "data.max_len=null", "trainer.batch_tokens=4")
    assert one_line_error(capsys, train, config, tmp_path / "run") == (
        "every training pair is longer than one batch of trainer.batch_tokens=4 holds (2 subword tokens a side); "
        "raise trainer.batch_tokens")


@pytest.mark.parametrize("same", ["path", "link"])
def test_validating_on_the_training_files_is_warned_about(corpus, tmp_path, caplog, same):
    """Early stopping and best.pt chosen on training data mean nothing: the same file, by its path or
    through a link, for data.files.train and data.files.val gets a warning."""
    val = corpus
    if same == "link":
        val = tmp_path / "linked"
        val.symlink_to(corpus)
    config = files_config(corpus, f"data.files.val='{val}/train.{{lang}}'")
    with caplog.at_level(logging.WARNING, logger="nmt"):
        train(config, tmp_path / "run")
    warnings = [r.getMessage() for r in caplog.records if "validating on the training data" in r.getMessage()]
    assert warnings == [f"data.files.train and data.files.val name the same file ({corpus}/train.de, "
                        f"{corpus}/train.en): validating on the training data makes early stopping and best.pt "
                        "meaningless; validate on held-out pairs"]


def test_validation_split_naming_the_training_split_is_warned_about_and_held_out_files_are_not(corpus):
    assert validation_overlap_warning(files_config(corpus).data) is None
    assert validation_overlap_warning(files_config(corpus, "data.valid_split=train").data).startswith(
        "data.train_split and data.valid_split are both 'train'")


HUB_DATA = {"source": "hub", "name": "opus_books", "config": "en-fr", "src_lang": "en", "tgt_lang": "fr"}


@pytest.mark.parametrize(("splits", "valid_split", "advice"), [
    ({"train": "train", "val": "train"}, "val",
     "hold out a part, e.g. data.splits='{train: \"train[:-1000]\", val: \"train[-1000:]\"}'"),
    ({"train": "train[:50%]", "val": "train[:50%]"}, "val", "give them parts that do not overlap"),
    ({"train": "train", "val": "validation"}, "train", "validate on held-out pairs"),
])
def test_a_hub_split_read_for_training_and_validation_is_warned_about(splits, valid_split, advice):
    """A dataset with a train split only (opus_books) is validated on a slice of it held out from training."""
    warning = validation_overlap_warning({**HUB_DATA, "splits": splits, "valid_split": valid_split})
    assert warning is not None and warning.endswith(advice)
    assert "validating on the training data makes early stopping and best.pt meaningless" in warning


def test_held_out_slices_of_one_hub_split_are_not_warned_about():
    splits = {"train": "train[:-1000]", "val": "train[-1000:]"}
    assert validation_overlap_warning({**HUB_DATA, "splits": splits}) is None
    assert validation_overlap_warning({**HUB_DATA, "splits": {"train": "train", "val": "validation"}}) is None


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=60), bom=st.booleans())
def test_reader_accepts_any_bytes_or_names_the_line_of_the_first_bad_byte(data, bom):
    data = (b"\xef\xbb\xbf" if bom else b"") + data
    assume(not _utf16_or_old_mac(data))  # refused in either mode: tests/test_data_readers.py
    try:
        lines = decode_lines(data, "corpus.de")
    except DataError as exc:
        line = data.count(b"\n", 0, _first_invalid_byte(data)) + 1
        assert str(exc).startswith(f"corpus.de:{line}: invalid UTF-8")
        assert "\n" not in str(exc)
        lines = decode_lines(data, "corpus.de", on_decode_error="replace")
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    assert len(lines) == text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    assert all("\n" not in line and not line.endswith("\r") for line in lines)
    assert not lines or not lines[0].startswith("\ufeff")


def _utf16_or_old_mac(data: bytes) -> bool:
    """Bytes the readers refuse as not UTF-8 text whatever on_decode_error says: a UTF-16 or UTF-32
    byte-order mark, a line starting with two letters of UTF-16, or one line with \\r line ends inside."""
    one_line = data.removesuffix(b"\n").removesuffix(b"\r")
    return (data.startswith((b"\xff\xfe", b"\xfe\xff", b"\0\0\xfe\xff"))
            or any(re.match(rb"(?:[^\0]\0){2}|(?:\0[^\0]){2}", line) for line in data.split(b"\n"))
            or (b"\n" not in one_line and b"\r" in one_line))


def _first_invalid_byte(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    raise AssertionError("valid UTF-8 was refused")


# --- checkpoints ----------------------------------------------------------------------------------

SAMPLE = [*GERMAN, *ENGLISH, *OTHER_SCRIPTS]


def make_checkpoint(path: Path) -> Path:
    """An untrained tiny model with a tokenizer trained on a few sentences in five scripts."""
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        config = OmegaConf.to_container(compose("train", overrides=TINY_MODEL), resolve=True)
    tokenizer = SubwordTokenizer.train(SAMPLE * 3, vocab_size=120, seed=0)
    torch.manual_seed(0)
    model = build_model(config["model"], tokenizer.vocab_size, tokenizer.vocab_size, shared_vocab=True)
    tokenizers = Tokenizers(tokenizer, tokenizer, joint=True)
    save_checkpoint({"model": model.state_dict(), "config": config, "tokenizers": tokenizers.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.mark.parametrize(("content", "message"), [
    (None, "resume={path}: no such file; resume takes true, false, auto or the path of a checkpoint file"),
    (b"", "cannot load checkpoint {path}: "),
    ("truncated", "cannot load checkpoint {path}: "),
    ("weights_only", "{path} holds no training state (no optimizer, schedule, progress, rng), so "
                     "training cannot resume from it"),
])
def test_missing_corrupt_or_weights_only_checkpoint_cannot_be_resumed(capsys, corpus, tmp_path, checkpoint,
                                                                       content, message):
    path = tmp_path / "ckpt.pt"
    if content == "truncated":
        path.write_bytes(checkpoint.read_bytes()[:5000])
    elif content == "weights_only":
        path.write_bytes(checkpoint.read_bytes())
    elif content is not None:
        path.write_bytes(content)
    error = one_line_error(capsys, train, files_config(corpus, f"resume={path}"), tmp_path / "run")
    assert error.startswith(message.format(path=path))


@pytest.mark.parametrize(("option", "value", "wanted"), [
    ("emb_size", "big", "a positive integer"),  # a TypeError in torch, where build_model made the embedding
    ("dropout", 2.0, "a number in [0, 1)"),     # a ValueError in torch
])
def test_a_checkpoint_config_option_edited_to_the_wrong_kind_is_named(capsys, checkpoint, tmp_path, option, value,
                                                                       wanted):
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["model"][option] = value
    edited = tmp_path / "edited.pt"
    save_checkpoint(state, edited)
    (tmp_path / "text.de").write_text("Ein Hund.\n")
    message = one_line_error(capsys, nmt.cli.translate.run, translate_config(edited, f"input={tmp_path}/text.de"))
    assert message == (f"cannot read checkpoint {edited}: its config.model is not what nmt writes there (edited by "
                       f"hand, or written by another program?): model.{option} must be {wanted}; got {value!r}")


def test_translate_to_an_output_path_that_cannot_be_written(capsys, checkpoint, tmp_path):
    (tmp_path / "file").write_text("")
    cfg = translate_config(checkpoint, f"output={tmp_path}/file/out.txt", f"input={tmp_path}/file")
    message = one_line_error(capsys, nmt.cli.translate.run, cfg)
    assert message == f"cannot write output={tmp_path}/file/out.txt: Not a directory"


def _file_size_limit_2_kb() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))


def test_translations_whose_write_fails_part_way_leave_the_old_output_whole(checkpoint, tmp_path):
    """A file size limit stands in for a full disk (Python ignores SIGXFSZ: the write is an OSError).
    Written in place, output= lost its old translations and kept the first 2 KB of the new ones."""
    (tmp_path / "text.de").write_text("ein hund läuft über die wiese\n" * 1000)
    output = tmp_path / "out.en"
    output.write_text("the old translations\n")
    done = subprocess.run(["nmt-translate", f"checkpoint={checkpoint}", f"input={tmp_path}/text.de", f"output={output}",
                           "device=cpu", "beam_size=1", "max_len_b=3"], cwd=tmp_path, capture_output=True, text=True,
                          preexec_fn=_file_size_limit_2_kb, timeout=300)
    assert (done.returncode, done.stderr) == (2, f"error: cannot write output={output}: File too large\n")
    assert output.read_text() == "the old translations\n"


def test_translating_a_file_onto_itself_is_refused_and_the_file_kept(capsys, checkpoint, tmp_path):
    source = tmp_path / "text.de"
    source.write_text("Ein Hund.\n")
    cfg = translate_config(checkpoint, f"input={source}", f"output={tmp_path}/./text.de")
    message = one_line_error(capsys, nmt.cli.translate.run, cfg)
    assert message == (f"output={tmp_path}/./text.de is also input={source}: writing it would destroy what the "
                       "command reads; choose another output")
    assert source.read_text() == "Ein Hund.\n"
    before = checkpoint.read_bytes()
    cfg = translate_config(checkpoint, f"input={source}", f"output={checkpoint}")
    assert one_line_error(capsys, nmt.cli.translate.run, cfg).startswith(f"output={checkpoint} is also checkpoint=")
    assert checkpoint.read_bytes() == before


@contextlib.contextmanager
def standard_input_from(path: Path):
    """File descriptor 0 reads `path`, as after `< path` in a shell."""
    saved = os.dup(0)
    try:
        with open(path, "rb") as file:
            os.dup2(file.fileno(), 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def test_translating_standard_input_onto_its_own_file_is_refused_and_the_file_kept(capsys, checkpoint, tmp_path):
    """`nmt-translate output=text.de < text.de` wrote the translations over the input."""
    source = tmp_path / "text.de"
    source.write_text("Ein Hund.\n")
    cfg = translate_config(checkpoint, f"output={tmp_path}/./text.de", "beam_size=1")
    with standard_input_from(source):
        message = one_line_error(capsys, nmt.cli.translate.run, cfg)
    assert message == (f"output={tmp_path}/./text.de is also the file standard input reads (< {tmp_path}/./text.de): "
                       "writing it would destroy what the command reads; choose another output")
    assert source.read_text() == "Ein Hund.\n"
    cfg = translate_config(checkpoint, f"input={source}", f"output={tmp_path}/out.en", "beam_size=1")
    with standard_input_from(source):  # read from input=, which is not the output
        exit_on_user_error(nmt.cli.translate.run)(cfg)
    assert len((tmp_path / "out.en").read_text().splitlines()) == 1


@pytest.mark.parametrize("option", ["reference", "prefix"])
def test_translating_onto_the_reference_or_prefix_file_is_refused_and_the_file_kept(capsys, checkpoint, tmp_path,
                                                                                  option):
    (tmp_path / "text.de").write_text("Ein Hund.\n")
    given = tmp_path / "given.en"
    given.write_text("A dog.\n")
    cfg = translate_config(checkpoint, f"input={tmp_path / 'text.de'}", f"{option}={given}", f"output={given}")
    message = one_line_error(capsys, nmt.cli.translate.run, cfg)
    assert message.startswith(f"output={given} is also {option}={given}: writing it would destroy")
    assert given.read_text() == "A dog.\n"


def test_aligning_onto_the_gold_file_is_refused_and_the_file_kept(capsys, tmp_path):
    for name, text in (("s.de", "ein hund\n"), ("t.en", "a dog\n"), ("gold.txt", "0-0 1-1\n")):
        (tmp_path / name).write_text(text)
    cfg = command_config("align", "method=diagonal", f"src_file={tmp_path}/s.de", f"tgt_file={tmp_path}/t.en",
                         f"gold={tmp_path}/gold.txt", f"output={tmp_path}/gold.txt")
    message = one_line_error(capsys, nmt.cli.align.run, cfg)
    assert message.startswith(f"output={tmp_path}/gold.txt is also gold={tmp_path}/gold.txt")
    assert (tmp_path / "gold.txt").read_text() == "0-0 1-1\n"


def test_evaluate_into_a_folder_that_cannot_be_written(capsys, checkpoint, tmp_path):
    (tmp_path / "src.txt").write_text("Ein Hund.\n")
    (tmp_path / "ref.txt").write_text("A dog.\n")
    (tmp_path / "file").write_text("")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", f"src_file={tmp_path}/src.txt",
                                             f"ref_file={tmp_path}/ref.txt", f"output_dir={tmp_path}/file/x",
                                             "beam_size=1", "device=cpu"])
    assert one_line_error(capsys, evaluate, cfg).startswith(f"cannot write results to {tmp_path}/file/x")


def test_evaluate_refuses_a_checkpoint_folder_it_cannot_write_its_report_in_before_decoding(capsys, checkpoint,
                                                                                           tmp_path, monkeypatch):
    """The folder was found out only when the report was written, after the whole test set was decoded.
    (A folder root cannot write in, such as one with the immutable attribute, is simulated.)"""
    (tmp_path / "src.txt").write_text("Ein Hund.\n")
    (tmp_path / "ref.txt").write_text("A dog.\n")
    folder = checkpoint.parent
    monkeypatch.setattr(nmt.cli.evaluate, "folder_write_problem",
                        lambda path: f"{path} is not writable (Operation not permitted)" if path == folder else None)
    monkeypatch.setattr(nmt.inference.evaluate.Translator, "load", lambda *args: pytest.fail("decoding started"))
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", f"src_file={tmp_path}/src.txt",
                                             f"ref_file={tmp_path}/ref.txt", "beam_size=1", "device=cpu"])
    assert one_line_error(capsys, nmt.cli.evaluate.run, cfg) == (
        f"cannot write the report next to the checkpoint ({folder} is not writable (Operation not permitted)); "
        "give output_dir=FOLDER")


def test_a_checkpoint_that_cannot_be_written_keeps_the_old_one(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match=f"cannot write checkpoint {tmp_path}/file/last.pt"):
        save_checkpoint({"model": {}}, tmp_path / "file/last.pt")


# --- nmt-translate on odd input -------------------------------------------------------------------

def translate_config(checkpoint: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", "beam_size=2",
                                               *overrides])


def translate_stdin(cfg, data: bytes) -> str:
    """What `nmt-translate` writes to stdout for `data` on stdin."""
    stdin, stdout = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), io.StringIO()
    real_stdin = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            nmt.cli.translate.run(cfg)
    finally:
        sys.stdin = real_stdin
    return stdout.getvalue()


# Control characters, line separators other than \n, zero-width and replacement characters, an emoji.
ODD_CHARACTERS = ("\x00\x07\x08\x0b\x0c\x1b\x1c\x1f\x7f\x85\xa0\u200b\u200e\u2028\u2029\ufeff\ufffd"
                  "\U0001f415\t\r ")
line_text = st.one_of(
    st.just(""),
    st.text(alphabet=" \t\u3000\xa0", max_size=4),
    st.text(alphabet=st.sampled_from("".join(SAMPLE) + ODD_CHARACTERS), max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line_text, max_size=6))
def test_translate_gives_one_output_line_per_input_line_whatever_the_text(checkpoint, lines):
    assume(not (len(lines) == 1 and "\r" in lines[0].removesuffix("\r")))  # old-Mac line ends: refused
    cfg = translate_config(checkpoint, "max_len_b=5")
    out = translate_stdin(cfg, "".join(f"{line}\n" for line in lines).encode())
    assert out.count("\n") == len(lines) and (out == "" or out.endswith("\n"))
    outputs = out.split("\n")[:-1]
    for line, translation in zip(lines, outputs, strict=True):
        if not line.strip():
            assert translation == ""


def test_translate_survives_10000_character_lines(checkpoint):
    mixed = ("".join(OTHER_SCRIPTS) + ODD_CHARACTERS) * 120
    lines = ["", " ".join(GERMAN * 300)[:10_000], mixed, "x" * 10_000, "Ein Hund."]
    assert all(len(line) >= 10_000 for line in lines[1:4])
    # Short outputs keep this fast: the point is reading, tokenizing and encoding 10,000 characters.
    cfg = translate_config(checkpoint, "max_len_a=0", "max_len_b=3")
    out = translate_stdin(cfg, "\n".join(lines).encode())
    assert out.count("\n") == len(lines) and out.startswith("\n")


def test_translate_invalid_utf8_on_stdin_names_the_line(capsys, checkpoint):
    with pytest.raises(SystemExit) as exit_info:
        cfg = translate_config(checkpoint)
        exit_on_user_error(lambda _: translate_stdin(cfg, b"gut\nschl\xe9cht\n"))(None)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: <stdin>:2: invalid UTF-8 (byte 0xe9 at byte column 5); "
                                       "convert the input to UTF-8 (e.g. iconv -f latin1 -t utf-8)\n")


def test_translate_file_input_and_stdin_split_lines_alike(checkpoint, tmp_path):
    data = "a\x0bb\x1cc\u2028d\r\n\ne\n".encode()
    (tmp_path / "in.txt").write_bytes(data)
    assert read_lines(tmp_path / "in.txt") == decode_lines(data, "<stdin>") == ["a\x0bb\x1cc\u2028d", "", "e"]
    out = translate_stdin(translate_config(checkpoint), data)
    assert out.count("\n") == 3



# --- the inference commands' options --------------------------------------------------------------

def command_config(name: str, *overrides: str):
    """configs/<name>.yaml as the command composes it, free text quoted as nmt-plot does."""
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        device = ["device=cpu"] if name != "average" else []
        return compose(name, overrides=quote_text_overrides([*overrides, *device], {"src", "ref"}))


@pytest.mark.parametrize(("main", "args", "message"), [
    (nmt.cli.translate.main, [], "checkpoint is required: nmt-translate checkpoint=PATH < input.txt"),
    (nmt.cli.evaluate.main, ["beam_size=1"], "checkpoint is required: nmt-evaluate checkpoint=PATH"),
    (nmt.cli.average.main, [], "checkpoints is required: nmt-average checkpoints=FOLDER"),
    (nmt.cli.align.main, ["checkpoint=x.pt", "src_file=s.de"], "tgt_file is required: nmt-align checkpoint=PATH"),
    (nmt.cli.align.main, [], "src_file and tgt_file are required: nmt-align"),
    (nmt.cli.plot.main, ["src=Ein Hund."], "checkpoint is required: nmt-plot checkpoint=PATH"),
    (nmt.cli.serve.main, [], "checkpoint is required: nmt-serve checkpoint=PATH"),
    (nmt.cli.train.main, ["data=files"], "data.files.train and data.files.val are required; add "
                                         "data.files.train=... data.files.val=..."),
])
def test_a_required_option_left_out_is_named_with_the_usage(capsys, monkeypatch, main, args, message):
    assert main_error(capsys, monkeypatch, main, *args).startswith(message)


@pytest.mark.parametrize(("command", "overrides", "message"), [
    ("translate", ["beam_size=abc"], "beam_size must be a positive integer; got 'abc'"),
    ("translate", ["beam_size=2.5"], "beam_size must be a positive integer; got 2.5"),
    ("translate", ["beam_size=0"], "beam_size must be a positive integer; got 0"),
    ("translate", ["beam_size=-3"], "beam_size must be a positive integer; got -3"),
    ("translate", ["nbest=abc"], "nbest must be a positive integer; got 'abc'"),
    ("translate", ["nbest=6"], "nbest=6 needs beam_size >= 6, got beam_size=5"),
    ("translate", ["length_penalty=abc"], "length_penalty must be a number from 0 to 10; got 'abc'"),
    ("translate", ["max_len_a=abc"], "max_len_a must be a number from 0 to 1000 (output tokens per source token); "
                                     "got 'abc'"),
    ("translate", ["max_len_a=1e30"], "max_len_a must be a number from 0 to 1000"),  # overflowed: empty output
    ("translate", ["max_len_b=-1"], "max_len_b must be an integer from 0 to 100000; got -1"),
    ("translate", ["max_len_b=999999999"], "max_len_b must be an integer from 0 to 100000"),
    ("translate", ["max_output_len=0"], "max_output_len must be null (no cap) or an integer from 1 to 100000; got 0"),
    ("evaluate", ["max_output_len=abc"], "max_output_len must be null (no cap) or an integer from 1 to 100000; "
                                         "got 'abc'"),
    ("serve", ["max_output_len=2.5"], "max_output_len must be null (no cap) or an integer from 1 to 100000; got 2.5"),
    ("plot", ["src=Ein Hund.", "max_output_len=999999999"], "max_output_len must be null (no cap) or an integer"),
    ("translate", ["length_penalty=inf"], "length_penalty must be a number from 0 to 10; got inf"),
    ("translate", ["length_penalty=60"], "length_penalty must be a number from 0 to 10; got 60"),  # NaN scores
    ("serve", ["length_penalty=nan"], "length_penalty must be a number from 0 to 10; got nan"),
    # inf x log(1) is NaN: NaN scores, and a report holding Infinity, which is not JSON
    ("evaluate", ["coverage_penalty=inf"], "coverage_penalty must be a finite number >= 0 (0: off); got inf"),
    ("translate", ["coverage_penalty=nan"], "coverage_penalty must be a finite number >= 0 (0: off); got nan"),
    ("translate", ["max_len_a=0", "max_len_b=0"], "max_len_a=0 and max_len_b=0 allow no output at all"),
    ("translate", ["batch_sentences=0"], "batch_sentences must be a positive integer; got 0"),
    ("evaluate", ["beam_size=abc"], "beam_size must be a positive integer; got 'abc'"),
    ("evaluate", ["attention_stats=maybe"], "attention_stats must be true or false; got 'maybe'"),
    ("align", ["src_file=s.de", "tgt_file=s.en", "batch_sentences=abc"],
     "batch_sentences must be a positive integer; got 'abc'"),
    ("plot", ["src=Ein Hund.", "vmax=abc"], "vmax must be null (the largest weight) or a finite number > 0; got 'abc'"),
    ("plot", ["src=Ein Hund.", "vmax=0"], "vmax must be null (the largest weight) or a finite number > 0; got 0"),
    ("plot", ["src=Ein Hund.", "vmax=-1"], "vmax must be null (the largest weight) or a finite number > 0; got -1"),
    ("plot", ["src=Ein Hund.", "vmax=inf"], "vmax must be null (the largest weight) or a finite number > 0; got inf"),
    ("plot", ["src=Ein Hund.", "ref="], "ref= is empty; give the translation to plot"),
    ("plot", ["src=", "output=a.png"], "src= is empty; give the sentence to plot"),
    ("serve", ["port=abc"], "port must be an integer from 0 to 65535 (0: any free port); got 'abc'"),
    ("serve", ["port=-1"], "port must be an integer from 0 to 65535 (0: any free port); got -1"),
    ("serve", ["port=99999"], "port must be an integer from 0 to 65535 (0: any free port); got 99999"),
    ("serve", ["host=999.1.1.1"], "host must be an IP address (four numbers from 0 to 255) or a host name"),
    ("serve", ["log_level=loud"], "log_level must be one of critical, error, warning, info, debug, trace; got 'loud'"),
    ("serve", ["limits.max_texts=abc"], "limits.max_texts must be a positive integer; got 'abc'"),
    # inf answered no request, and SIGTERM no longer stopped the server
    ("serve", ["batching.window_ms=inf"], "batching.window_ms must be a number of milliseconds from 0 to 10000; got inf"),
    ("serve", ["batching.window_ms=1e300"], "batching.window_ms must be a number of milliseconds from 0 to 10000"),
    ("serve", ["batching.window_ms=nan"], "batching.window_ms must be a number of milliseconds from 0 to 10000"),
    ("serve", ["beam_size=abc"], "beam_size must be a positive integer; got 'abc'"),
    ("translate", ["no_repeat_ngram_size=-1"], "no_repeat_ngram_size must be an integer >= 0 (0: off); got -1"),
    ("evaluate", ["no_repeat_ngram_size=1.5"], "no_repeat_ngram_size must be an integer >= 0 (0: off); got 1.5"),
    ("serve", ["no_repeat_ngram_size=two"], "no_repeat_ngram_size must be an integer >= 0 (0: off); got 'two'"),
    # Hydra reads digits as a number and brackets as a list; the commands need a file name
    ("translate", ["input=2024"], "input must be a path (a name of digits goes in quotes: input='2024'); got 2024"),
    ("translate", ["prefix=[a]"], "prefix must be a path"),
    ("translate", ["reference=-"], "reference=- cannot be standard input, which holds the sentences to translate; "
                                   "give the reference lines in a file"),
    ("evaluate", ["src_file=5", "ref_file=6"], "src_file must be a path"),
    # An empty path (an unset shell variable): nmt-evaluate scored the default split instead, the others
    # read or wrote the folder "."
    ("evaluate", ["src_file=", "ref_file="], "src_file= is empty; give a path"),
    ("evaluate", ["src_file=s.de", "ref_file="], "ref_file= is empty; give a path"),
    ("translate", ["input="], "input= is empty; give a path"),
    ("translate", ["output="], "output= is empty; give a path"),
    ("align", ["src_file=", "tgt_file=s.en"], "src_file= is empty; give a path"),
    ("align", ["src_file=s.de", "tgt_file="], "tgt_file= is empty; give a path"),
    ("plot", ["src_file="], "src_file= is empty; give a path"),
    ("evaluate", ["output_dir=true"], "output_dir must be a path"),
    ("plot", ["src_file=5"], "src_file must be a path"),
    ("plot", ["src=Ein Hund.", "output=.png"], "output=.png: the file name must end in one of: .png, .svg, .pdf"),
    ("align", ["src_file=s.de", "tgt_file=s.en", "gold=5"], "gold must be a path"),
    ("average", ["checkpoints=[a.pt,b.pt]", "output=5"], "output must be a path"),
    ("average", ["checkpoints=null"], "checkpoints=null names no checkpoint"),
])
def test_bad_inference_options_fail_before_the_checkpoint_is_loaded(capsys, command, overrides, message):
    # The checkpoint does not exist: loading it first would be a different error.
    checkpoint = [] if command == "average" else ["checkpoint=/nonexistent/model.pt"]  # nmt-average: checkpoints=
    cfg = command_config(command, *checkpoint, *overrides)
    run = getattr(nmt.cli, command).run
    assert one_line_error(capsys, run, cfg).startswith(message)


@pytest.mark.parametrize(("command", "device"), [("translate", "mps"), ("translate", "xpu"), ("translate", "meta"),
                                               ("evaluate", "mps"), ("align", "mps"), ("plot", "mps"),
                                               ("serve", "mps")])
def test_a_device_the_commands_do_not_run_on_is_refused_before_the_checkpoint_is_loaded(capsys, command, device):
    """torch knows mps, xpu and meta; the commands failed with a traceback when they loaded the model there."""
    files = {"align": ["src_file=s.de", "tgt_file=s.en"], "plot": ["src=Ein Hund."]}.get(command, [])
    cfg = command_config(command, "checkpoint=/nonexistent/model.pt", *files)
    cfg.device = device
    message = one_line_error(capsys, getattr(nmt.cli, command).run, cfg)
    assert message == f"device='{device}' is not valid; use auto, cpu, cuda or cuda:N"


@pytest.mark.parametrize("command", ["translate", "align", "plot"])
def test_an_output_in_a_missing_folder_is_refused_before_any_work(capsys, tmp_path, command):
    files = ["src_file=s.de", "tgt_file=s.en"] if command == "align" else ["src=Ein Hund."] * (command == "plot")
    cfg = command_config(command, "checkpoint=/nonexistent/model.pt", f"output={tmp_path}/nowhere/out.png", *files)
    message = one_line_error(capsys, getattr(nmt.cli, command).run, cfg)
    assert message == f"cannot write output={tmp_path}/nowhere/out.png: No such file or directory"
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["translate", "align", "plot", "average"])
def test_an_output_the_kernel_refuses_is_refused_before_any_work(capsys, command):
    """os.access lets root write in /proc, where making a file fails: found after decoding before."""
    files = {"align": ["src_file=s.de", "tgt_file=s.en"], "plot": ["src=Ein Hund."],
             "average": ["checkpoints=[/nonexistent/a.pt,/nonexistent/b.pt]"]}.get(command, [])
    model = [] if command == "average" else ["checkpoint=/nonexistent/model.pt"]
    output = "/proc/nmt-out." + {"plot": "png", "average": "pt"}.get(command, "txt")
    cfg = command_config(command, *model, f"output={output}", *files)
    message = one_line_error(capsys, getattr(nmt.cli, command).run, cfg)
    assert message.startswith(f"cannot write output={output}: /proc is not writable (")


def test_an_output_file_is_checked_without_being_changed(tmp_path):
    kept = tmp_path / "out.txt"
    kept.write_text("earlier output\n")
    os.utime(kept, (1_000_000, 1_000_000))
    check_output_file(str(kept), "output")
    check_output_file(str(tmp_path / "new.txt"), "output")
    assert kept.read_text() == "earlier output\n" and kept.stat().st_mtime == 1_000_000
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.txt"]  # the probe file is gone


def test_serve_names_an_address_it_cannot_listen_on(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = command_config("serve", "checkpoint=/nonexistent/model.pt", f"port={port}")
        message = one_line_error(capsys, nmt.cli.serve.run, cfg)
    assert message == f"cannot listen on host=127.0.0.1 port={port}: Address already in use"


def evaluate_files(tmp_path: Path, src: bytes, ref: bytes, *overrides: str):
    (tmp_path / "src.txt").write_bytes(src)
    (tmp_path / "ref.txt").write_bytes(ref)
    return command_config("evaluate", f"src_file={tmp_path}/src.txt", f"ref_file={tmp_path}/ref.txt",
                          f"output_dir={tmp_path}", "beam_size=1", *overrides)


def test_evaluate_on_empty_files_names_them(capsys, checkpoint, tmp_path):
    cfg = evaluate_files(tmp_path, b"", b"", f"checkpoint={checkpoint}")
    assert one_line_error(capsys, nmt.cli.evaluate.run, cfg) == (
        f"src_file={tmp_path}/src.txt and ref_file={tmp_path}/ref.txt are empty: nothing to score")


UTF8_HINT = "invalid UTF-8 (byte 0xfc at byte column 2); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"


def test_evaluate_and_plot_on_invalid_utf8_give_a_hint_they_can_follow(capsys, checkpoint, tmp_path):
    cfg = evaluate_files(tmp_path, b"gut\nB\xfcch\n", b"good\nbook\n", f"checkpoint={checkpoint}")
    assert one_line_error(capsys, nmt.cli.evaluate.run, cfg) == f"{tmp_path}/src.txt:2: {UTF8_HINT}"
    cfg = command_config("plot", f"checkpoint={checkpoint}", f"src_file={tmp_path}/src.txt",
                         f"output={tmp_path}/a.png")
    assert one_line_error(capsys, nmt.cli.plot.run, cfg) == f"{tmp_path}/src.txt:2: {UTF8_HINT}"


def test_average_never_overwrites_a_checkpoint_training_resumes_from(capsys, checkpoint, tmp_path):
    last = tmp_path / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    save_checkpoint({**state, "optimizer": {}, "progress": {"step": 3}}, last)
    before = last.read_bytes()
    other = tmp_path / "other.pt"
    other.write_bytes(checkpoint.read_bytes())
    cfg = command_config("average", f"checkpoints=[{checkpoint},{other}]", f"output={last}")
    assert one_line_error(capsys, nmt.cli.average.run, cfg) == (
        f"will not overwrite output={last}: it holds training state (optimizer, progress) that a run "
        "resumes from; choose another output")
    assert last.read_bytes() == before
    averaged = command_config("average", f"checkpoints=[{checkpoint},{other}]", f"output={tmp_path}/avg.pt")
    nmt.cli.average.run(averaged)
    nmt.cli.average.run(averaged)  # an earlier average may be replaced
    assert "into" in capsys.readouterr().out
    missing = command_config("average", f"checkpoints=[{checkpoint},{other}]", f"output={tmp_path}/typo/avg.pt")
    assert one_line_error(capsys, nmt.cli.average.run, missing) == (
        f"cannot write output={tmp_path}/typo/avg.pt: No such file or directory")
    assert not (tmp_path / "typo").exists()


def test_average_never_overwrites_a_kept_or_other_checkpoint_only_an_earlier_average(capsys, checkpoint, tmp_path):
    """A kept step-<S>.pt holds no training state: `output=step-150.pt` silently replaced it with the
    average of others, which a later `nmt-average checkpoints=FOLDER` then averaged in as step 150."""
    state = torch.load(checkpoint, weights_only=True)
    for step in (50, 100, 150):
        save_checkpoint({**state, "step": step, "valid_score": 20.0 + step / 100}, tmp_path / f"step-{step}.pt")
    model = tmp_path / "model.pt"
    model.write_bytes(checkpoint.read_bytes())
    for output, what in (("step-150.pt", "a checkpoint that training kept (step 150)"),
                         ("model.pt", "a model's checkpoint")):
        before = (tmp_path / output).read_bytes()
        cfg = command_config("average", f"checkpoints=[{tmp_path}/step-50.pt,{tmp_path}/step-100.pt]",
                             f"output={tmp_path / output}")
        assert one_line_error(capsys, nmt.cli.average.run, cfg) == (
            f"will not overwrite output={tmp_path / output}: it is {what}, not an earlier nmt-average output; "
            "choose another output")
        assert (tmp_path / output).read_bytes() == before
    folder = command_config("average", f"checkpoints={tmp_path}")
    nmt.cli.average.run(folder)
    nmt.cli.average.run(folder)  # its averaged.pt, from the run before, is replaced
    assert capsys.readouterr().out.count("averaged 3 checkpoints (step-50.pt, step-100.pt, step-150.pt)") == 2


# --- data=files paths with {lang} -----------------------------------------------------------------

def test_path_templates_with_braces_work_unquoted_as_the_readme_writes_them(capsys, monkeypatch):
    args = ["data=files", "data.files.train=corpus/train.{lang}.gz", "data.files.val=corpus/dev.{lang}",
            "+data.files.test=null", "+data.files.extra=x/{lang}"]
    monkeypatch.setattr(sys, "argv", ["nmt-train", *args, "--cfg", "job"])
    nmt.cli.train.main()
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.data.files == {"train": "corpus/train.{lang}.gz", "val": "corpus/dev.{lang}", "test": None,
                                  "extra": "x/{lang}"}


def test_a_parse_error_hint_mentions_braces(capsys, monkeypatch):
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "trainer.max_steps=[1")
    assert message.endswith("quote values with spaces, commas, brackets or braces: key='a, b'")


def test_a_misspelt_option_of_a_group_in_an_experiment_is_refused_whichever_config_the_command_line_picks(
        capsys, monkeypatch, tmp_path):
    """Options of another config of the group are let through (the shipped experiments' plateau patience
    under scheduler=cosine); a misspelling is an option of none of them, and the experiment is blamed."""
    mine = users_configs(tmp_path, "typo", "# @package _global_\nscheduler:\n  patiance: 3\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "--config-dir", str(mine), "experiment=typo",
                         "scheduler=cosine", f"hydra.run.dir={tmp_path / 'run'}")
    assert message == ("scheduler.patiance, set in a config file (experiment=typo), is not an option "
                       "(did you mean scheduler.patience?)")  # the hint looks at the replaced plateau too


@pytest.mark.parametrize(("text", "key", "picked", "owner"), [
    ("scheduler:\n  total_steps: 1000\n", "scheduler.total_steps", "scheduler=plateau", "scheduler=cosine"),
    ("data:\n  streaming: true\n", "data.streaming", "data=multi30k", "data=hub"),
    # the experiment replaced plateau itself: its patience is its own mistake, not a leftover
    ("defaults:\n  - override /scheduler: cosine\n  - _self_\nscheduler:\n  patience: 1\n", "scheduler.patience",
     "scheduler=cosine", "scheduler=plateau"),
])
def test_an_option_of_a_config_nothing_picked_is_refused_as_it_would_be_lost(tmp_path, text, key, picked, owner):
    mine = users_configs(tmp_path, "unpicked", "# @package _global_\n" + text)
    message = config_error("train", "--config-dir", str(mine), "experiment=unpicked")
    assert message == f"{key}, set in a config file (experiment=unpicked), is not an option of {picked}; {owner} has it"


def test_a_misspelling_in_an_experiment_that_picks_a_config_itself_is_hinted_from_every_config_of_the_group(tmp_path):
    mine = users_configs(tmp_path, "typo", "# @package _global_\ndefaults:\n  - m30k_deen_best\n"
                                           "  - override /scheduler: cosine\n  - _self_\nscheduler:\n  patiance: 2\n")
    assert config_error("train", "--config-dir", str(mine), "experiment=typo") == (
        "scheduler.patiance, set in a config file (experiment=typo), is not an option (did you mean scheduler.patience?)")


def test_a_misspelt_option_in_a_users_own_config_names_its_file_not_the_experiment(monkeypatch, tmp_path):
    mine = users_configs(tmp_path, "small", "# @package _global_\ntrainer:\n  max_steps: 2\n")
    (mine / "my_run.yaml").write_text("defaults: [train, _self_]\ntrainer:\n  batch_tokenz: 500\n")
    (mine / "greedy.yaml").write_text("defaults: [translate, _self_]\ncheckpoint: x.pt\nbeam_sise: 1\n")
    monkeypatch.chdir(tmp_path)
    message = config_error("train", "--config-dir", "mine", "--config-name", "my_run", "experiment=small")
    assert message == ("trainer.batch_tokenz, set in mine/my_run.yaml, is not an option "
                       "(did you mean trainer.batch_tokens?)")
    message = config_error("translate", "--config-dir", "mine", "--config-name", "greedy")
    assert message == "beam_sise, set in mine/greedy.yaml, is not an option (did you mean beam_size?)"


def test_an_option_the_users_own_config_sets_for_a_config_it_replaced_itself_is_refused(tmp_path):
    """Its own pick is cosine: plateau's patience, which nothing would read, is its mistake."""
    (tmp_path / "my_run.yaml").write_text(
        "defaults:\n  - train\n  - override scheduler: cosine\n  - _self_\nscheduler:\n  patience: 1\n")
    message = config_error("train", "--config-dir", str(tmp_path), "--config-name", "my_run")
    assert message == (f"scheduler.patience, set in {tmp_path}/my_run.yaml, is not an option of scheduler=cosine; "
                       "scheduler=plateau has it")


def test_a_data_config_copied_from_before_the_shared_options_were_renamed_says_how_to_mend_it(
        capsys, monkeypatch, tmp_path):
    (tmp_path / "mine/data").mkdir(parents=True)
    (tmp_path / "mine/data/old_copy.yaml").write_text("defaults: [common, _self_]\nsource: multi30k\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, "--config-dir", str(tmp_path / "mine"),
                         "data=old_copy", f"hydra.run.dir={tmp_path / 'run'}")
    assert message.startswith("In 'data/old_copy': Could not load 'data/common'.")
    assert message.endswith("write `defaults: [_common, _self_]`")
