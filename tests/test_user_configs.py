"""A user's own experiments, kept in a folder of their own and given with --config-dir, train as the
shipped ones do: they pick config options, set values, and show in --cfg job and the run's config."""

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tiny_checkpoint import make_checkpoint
from user_errors import config_error, main_error

import nmt.cli.common
import nmt.cli.train
import nmt.cli.translate
from nmt.cli.common import composable_command_line, compose_checked
from nmt.cli.config_shape import override_error
from nmt.errors import ConfigError

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


def composed(my_configs: Path, *args: str):
    """The config nmt-train composes and checks for `--config-dir my_configs` and `args`."""
    overrides, users_config = composable_command_line(["--config-dir", str(my_configs), *args])
    return compose_checked("train", overrides, users_config=users_config)


def refusal(my_configs: Path, *args: str) -> str:
    """The one-line error nmt-train gives for `--config-dir my_configs` and `args`."""
    return config_error("train", "--config-dir", str(my_configs), *args)


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


def test_cfg_job_refuses_a_misspelt_option_in_a_users_experiment_as_a_run_does(capsys, monkeypatch, my_configs):
    """Hydra printed the config with the misspelt key in it, exit status 0, and the run then refused it."""
    (my_configs / "experiment/typo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - _self_\ntrainer:\n  batch_tokenz: 60\n")
    message = ("trainer.batch_tokenz, set in a config file (experiment=typo), is not an option "
               "(did you mean trainer.batch_tokens?)")
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, "--config-dir", str(my_configs), "experiment=typo",
                      "--cfg", "job") == message
    assert refusal(my_configs, "experiment=typo") == message  # the same words as for a run


def test_split_names_an_experiment_adds_are_not_taken_for_misspelt_options(my_configs):
    (my_configs / "experiment/more_splits.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - _self_\ndata:\n  files:\n    test_2: x/{lang}\n")
    cfg = composed(my_configs, "experiment=more_splits")
    assert cfg.data.files.test_2 == "x/{lang}" and cfg.model.attention.name == "dot"


def test_a_users_own_decoding_config_replaces_the_commands(monkeypatch, tmp_path):
    """--config-name picks a config of the user's (saved decoding settings) that builds on the command's."""
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "greedy_de_en.yaml").write_text(
        f"defaults: [translate, _self_]\ncheckpoint: {checkpoint}\nbeam_size: 1\nmax_len_b: 3\n")
    overrides, users_config = composable_command_line(["--config-dir", str(mine), "--config-name", "greedy_de_en",
                                                       "max_len_a=0"])
    cfg = compose_checked("translate", overrides, users_config=users_config)
    assert (cfg.checkpoint, cfg.beam_size, cfg.max_len_a, cfg.max_len_b) == (str(checkpoint), 1, 0, 3)
    assert cfg.length_penalty == 1.0  # what the user's file leaves alone comes from translate.yaml
    (tmp_path / "in.txt").write_text("ein hund\nzwei männer\n")
    monkeypatch.setattr(sys, "argv", ["nmt-translate", "--config-dir", str(mine), "--config-name", "greedy_de_en",
                                      f"input={tmp_path / 'in.txt'}", f"output={tmp_path / 'out.txt'}", "device=cpu"])
    nmt.cli.translate.main()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()) <= 3 for line in lines)  # max_len_b=3 from the user's file


@pytest.mark.parametrize(("experiment", "group", "option", "unread"), [
    ("m30k_deen_best", "scheduler", "cosine", "patience"),  # README's "Levers tried" ran this
    ("m30k_ende_best", "scheduler", "inverse_sqrt", "factor"),
])
def test_a_shipped_experiment_takes_another_config_of_a_group_it_sets_options_of(experiment, group, option, unread):
    """The experiment's options for its own pick (plateau's patience) are no misspelling of the user's;
    nothing would read them, and they are taken out."""
    cfg = compose_checked("train", [f"experiment={experiment}", f"{group}={option}"])
    assert cfg[group].name == option and unread not in cfg[group]


@pytest.mark.parametrize("setting", ["scheduler.patience=1", "++scheduler.patience=1"])
def test_an_option_of_the_replaced_config_set_on_the_command_line_is_refused_not_lost(setting):
    """m30k_deen_best's plateau patience is in the merged config, so Hydra takes the command line's
    patience=1; under cosine nothing would read it."""
    with pytest.raises(ConfigError) as refused:
        compose_checked("train", ["experiment=m30k_deen_best", "scheduler=cosine", setting])
    said = "scheduler.patience" if setting.startswith("scheduler") else f"scheduler.patience, set by {setting},"
    assert str(refused.value) == f"{said} is not an option of scheduler=cosine; scheduler=plateau has it"


def test_a_users_experiment_trains_when_the_command_line_replaces_an_attention_it_set_options_of(
        monkeypatch, my_configs, tmp_path):
    """The experiment's num_heads, for the multihead attention it picked, is taken out for general."""
    (my_configs / "experiment/heads.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - override /model/attention: multihead\n  - _self_\n"
        "model:\n  attention:\n    num_heads: 2\n")
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["nmt-train", "--config-dir", str(my_configs), "experiment=heads",
                                      "model/attention=general", f"hydra.run.dir={run}"])
    nmt.cli.train.main()
    used = OmegaConf.load(run / "config.yaml")
    assert used.model.attention == {"name": "general"}
    assert (run / "checkpoints/last.pt").is_file()


@pytest.fixture(params=["run", "sweep", "sweep checked in its jobs"])
def run_argv(request, monkeypatch, tmp_path) -> tuple[list[str], list[str]]:
    """The flags and run folder overrides of a run in tmp_path/run, where the checks happen: before Hydra
    starts for a run; for a sweep (-m), before Hydra starts too, each job's; for a sweep whose jobs only
    its sweeper knows (an optimizing one, as if hydra/sweeper=optuna), in each job as it starts."""
    run = tmp_path / "run"
    if request.param == "run":
        return [], [f"hydra.run.dir={run}"]
    if request.param == "sweep checked in its jobs":
        monkeypatch.setattr(nmt.cli.common, "sweeper_params", lambda cfg: None)
    return ["-m"], [f"hydra.sweep.dir={run}", "hydra.sweep.subdir=."]


@pytest.mark.parametrize(("experiment", "setting", "error"), [
    # the experiment's multihead set num_heads, which the command line's dot drops; the user's own setting is refused
    ("heads", "model.attention.num_heads=2",
     "model.attention.num_heads is not an option of model/attention=dot; model/attention=multihead has it"),
    ("tiny_dot", "+model.attention.num_heads=2", "model.attention.num_heads, set by +model.attention.num_heads=2, "
                                                 "is not an option of model/attention=dot; model/attention=multihead has it"),
])
def test_an_option_of_another_attention_set_on_the_command_line_is_refused(capsys, monkeypatch, my_configs,
                                                                          tmp_path, experiment, setting, error, run_argv):
    """The user's own setting is refused, not lost, for a run and a sweep alike (run_argv)."""
    (my_configs / "experiment/heads.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - override /model/attention: multihead\n  - _self_\n"
        "model:\n  attention:\n    num_heads: 2\n")
    flags, folder = run_argv
    monkeypatch.setattr(sys, "argv", ["nmt-train", *flags, "--config-dir", str(my_configs), f"experiment={experiment}",
                                      "model/attention=dot", setting, *folder])
    with pytest.raises(SystemExit) as stopped:
        nmt.cli.train.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {error}"


@pytest.mark.parametrize("name", ["greedy", "greedy.yaml", "/greedy"])
def test_config_name_is_taken_with_or_without_yaml_and_a_leading_slash_as_hydra_takes_it(tmp_path, name):
    (tmp_path / "greedy.yaml").write_text("defaults: [translate, _self_]\nbeam_size: 1\n")
    assert composable_command_line(["--config-dir", str(tmp_path), "--config-name", name]) == (
        [f"hydra.searchpath=['file://{tmp_path}','file://{nmt.cli.common.config_dir()}']"], (str(tmp_path), "greedy"))


@pytest.mark.parametrize("mode", ["hydra.mode=MULTIRUN", "hydra.mode='MULTIRUN'", "++hydra.mode=MULTIRUN"])
def test_hydra_mode_multirun_leaves_the_sweep_to_hydra_as_dash_m_does(my_configs, mode):
    assert composable_command_line(["--config-dir", str(my_configs), mode, "seed=1,2"]) is None
    assert composable_command_line([mode, "model/attention=dot,general"]) is None


def test_removing_the_optional_experiment_is_allowed_as_hydra_allows_it():
    assert override_error(str(nmt.cli.common.config_dir()), ["experiment=smoke", "~experiment"]) is None
    assert compose_checked("train", ["experiment=smoke", "~experiment"]).trainer.max_steps is None


def test_a_nested_experiment_may_replace_a_config_its_base_set_options_of(monkeypatch, my_configs, tmp_path, run_argv):
    """cos_total picks cosine and sets its total_steps; cos_plateau builds on it and picks plateau.
    Checked for a run and a sweep alike (run_argv)."""
    (my_configs / "experiment/cos_total.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - override /scheduler: cosine\n  - _self_\n"
        "scheduler:\n  total_steps: 1000\n")
    (my_configs / "experiment/cos_plateau.yaml").write_text(
        "# @package _global_\ndefaults:\n  - cos_total\n  - override /scheduler: plateau\n  - _self_\n")
    cfg = composed(my_configs, "experiment=cos_plateau")
    assert cfg.scheduler.name == "plateau" and "total_steps" not in cfg.scheduler
    flags, folder = run_argv
    monkeypatch.setattr(sys, "argv", ["nmt-train", *flags, "--config-dir", str(my_configs), "experiment=cos_plateau",
                                      *folder])
    nmt.cli.train.main()
    used = OmegaConf.load(tmp_path / "run/config.yaml")
    assert used.scheduler.name == "plateau" and "total_steps" not in used.scheduler


def test_an_experiment_that_picks_a_config_itself_may_not_set_options_of_the_one_it_replaced(
        capsys, monkeypatch, my_configs, tmp_path, run_argv):
    """cos_patience builds on tiny_dot, which keeps plateau; it picks cosine and sets plateau's patience,
    which nothing would read. Refused for a run and a sweep alike (run_argv)."""
    (my_configs / "experiment/cos_patience.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - override /scheduler: cosine\n  - _self_\n"
        "scheduler:\n  patience: 1\n")
    flags, folder = run_argv
    monkeypatch.setattr(sys, "argv", ["nmt-train", *flags, "--config-dir", str(my_configs), "experiment=cos_patience",
                                      *folder])
    with pytest.raises(SystemExit) as stopped:
        nmt.cli.train.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: scheduler.patience, set in a config file (experiment=cos_patience), is not an option of "
        "scheduler=cosine; scheduler=plateau has it")
    assert not (tmp_path / "run/checkpoints").exists()


def test_a_users_own_config_may_have_its_pick_replaced_on_the_command_line(monkeypatch, my_configs, tmp_path, run_argv):
    """my_run (--config-name) picks cosine and sets its total_steps; the command line picks plateau, and
    total_steps, which nothing would read, is taken out. Checked for a run and a sweep alike (run_argv)."""
    (my_configs / "my_run.yaml").write_text(
        "defaults:\n  - train\n  - override scheduler: cosine\n  - _self_\nscheduler:\n  total_steps: 1000\n")
    run = tmp_path / "run"
    flags, folder = run_argv
    monkeypatch.setattr(sys, "argv", ["nmt-train", *flags, "--config-dir", str(my_configs), "--config-name", "my_run",
                                      "experiment=tiny_dot", "scheduler=plateau", *folder])
    nmt.cli.train.main()
    used = OmegaConf.load(run / "config.yaml")
    assert used.scheduler.name == "plateau" and "total_steps" not in used.scheduler
    assert used.model.attention.name == "dot" and (run / "checkpoints/last.pt").is_file()


def test_a_misspelt_option_in_a_users_own_config_that_picks_their_own_corpus_is_refused(my_configs):
    """The command's config is composed, for the comparison, with the user's folder searched too:
    without it their data=my_corpus did not compose and nothing was checked."""
    (my_configs / "my_run.yaml").write_text(
        "defaults:\n  - train\n  - override data: my_corpus\n  - _self_\ntrainer:\n  batch_tokenz: 500\n")
    overrides, users_config = composable_command_line(["--config-dir", str(my_configs), "--config-name", "my_run"])
    with pytest.raises(ConfigError) as refused:
        compose_checked("train", overrides, users_config=users_config)
    assert str(refused.value) == (f"trainer.batch_tokenz, set in {my_configs}/my_run.yaml, is not an option "
                                  "(did you mean trainer.batch_tokens?)")


def test_a_misspelt_option_in_a_users_own_corpus_config_is_refused_naming_its_file(capsys, monkeypatch, my_configs,
                                                                                  tmp_path, run_argv):
    """None of the shipped data configs has max_lenn, so nothing would read it: refused, as it is in an
    experiment, for a run and a sweep alike (run_argv)."""
    with (my_configs / "data/my_corpus.yaml").open("a") as corpus:
        corpus.write("max_lenn: 80\n")
    flags, folder = run_argv
    monkeypatch.setattr(sys, "argv", ["nmt-train", *flags, "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      *folder])
    with pytest.raises(SystemExit) as stopped:
        nmt.cli.train.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: data.max_lenn, set in {my_configs}/data/my_corpus.yaml, is not an option (did you mean data.max_len?)")
    assert not (tmp_path / "run/checkpoints").exists()


def test_a_users_own_group_config_writing_other_groups_options_is_checked_too(my_configs):
    """A config of the data group put at the top of the config (`@package _global_`) may set any
    option; a misspelt one is named with its file."""
    (my_configs / "data/named.yaml").write_text("# @package _global_\ndefaults: [/data/my_corpus, _self_]\nname: mine\n")
    assert composed(my_configs, "experiment=tiny_dot", "data=named").name == "mine"
    (my_configs / "data/de_en_batch.yaml").write_text(
        "# @package _global_\ndefaults: [/data/my_corpus, _self_]\nmodel:\n  attention:\n    num_heads: 2\n")
    assert refusal(my_configs, "experiment=tiny_dot", "data=de_en_batch") == (
        f"model.attention.num_heads, set in {my_configs}/data/de_en_batch.yaml, is not an "
        "option of model/attention=dot; model/attention=multihead has it")


def test_a_users_own_attention_config_may_set_only_what_a_shipped_attention_has(my_configs):
    (my_configs / "model/attention").mkdir(parents=True)
    (my_configs / "model/attention/two_heads.yaml").write_text("defaults: [multihead, _self_]\nnum_heads: 2\n")
    cfg = composed(my_configs, "experiment=tiny_dot", "model/attention=two_heads")
    assert (cfg.model.attention.name, cfg.model.attention.num_heads) == ("multihead", 2)
    (my_configs / "model/attention/two_head.yaml").write_text("defaults: [multihead, _self_]\nnum_head: 2\n")
    assert refusal(my_configs, "experiment=tiny_dot", "model/attention=two_head") == (
        f"model.attention.num_head, set in {my_configs}/model/attention/two_head.yaml, is "
        "not an option (did you mean model.attention.num_heads?)")


def test_a_users_own_corpus_config_that_builds_on_no_shipped_one_is_refused(my_configs):
    """Without `defaults: [files, _self_]` the corpus config lacks the options every corpus has (root,
    languages, cleaning), which the run would only miss when it reads them."""
    (my_configs / "data/bare.yaml").write_text("source: files\nformat: text\nfiles:\n  train: a.{lang}\n")
    assert refusal(my_configs, "data=bare") == (
        f"data.root is missing from {my_configs}/data/bare.yaml; a data config of your own "
        "should build on one of the package's: defaults: [files, _self_]")


def test_a_group_of_the_users_own_is_checked_and_leaves_the_rest_checked(my_configs):
    """+preset=fast adds a group the package does not have; the command's config is still composed
    for the comparison, so neither its own options nor an experiment's escape the check."""
    (my_configs / "preset").mkdir()
    (my_configs / "preset/fast.yaml").write_text("# @package _global_\ntrainer:\n  batch_tokens: 700\n")
    (my_configs / "preset/typo.yaml").write_text("# @package _global_\ntrainer:\n  batch_tokenz: 700\n")
    (my_configs / "experiment/dot_typo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - _self_\ntrainer:\n  max_stepz: 3\n")
    # merged after the trainer's defaults
    assert composed(my_configs, "experiment=tiny_dot", "+preset=fast").trainer.batch_tokens == 700
    for experiment, preset, error in [
        ("tiny_dot", "typo", f"trainer.batch_tokenz, set in {my_configs}/preset/typo.yaml, is not an option "
                             "(did you mean trainer.batch_tokens?)"),
        ("dot_typo", "fast", "trainer.max_stepz, set in a config file (experiment=dot_typo), is not an option "
                             "(did you mean trainer.max_steps?)"),
    ]:
        assert refusal(my_configs, f"experiment={experiment}", f"+preset={preset}") == error


def test_a_misspelling_in_the_users_config_that_theirs_builds_on_names_that_file(my_configs):
    (my_configs / "data/base_typo.yaml").write_text("defaults: [files, _self_]\nmax_lenn: 80\n")
    (my_configs / "data/on_base.yaml").write_text(
        "defaults: [base_typo, _self_]\nfiles:\n  train: a.{lang}\n  val: b.{lang}\n")
    assert refusal(my_configs, "data=on_base") == (
        f"data.max_lenn, set in {my_configs}/data/base_typo.yaml, is not an option "
        "(did you mean data.max_len?)")


def test_an_option_of_another_shipped_config_than_the_one_a_users_config_builds_on_is_refused(my_configs):
    """hub's revision under a corpus of files would not be read; only the package's configs are named
    as having it, not the user's own."""
    with (my_configs / "data/my_corpus.yaml").open("a") as corpus:
        corpus.write("revision: v1\n")
    assert refusal(my_configs, "experiment=tiny_dot") == (
        f"data.revision, set in {my_configs}/data/my_corpus.yaml, is not an option of "
        "data=my_corpus; data=hub has it")


@pytest.mark.parametrize("multirun", [False, True])
def test_an_option_added_for_hydras_own_settings_to_read_is_accepted(monkeypatch, my_configs, tmp_path, multirun):
    """+tag=abc 'hydra.run.dir=runs/${tag}': Hydra's settings read it, before Hydra starts and in the job."""
    folder = ([f"hydra.sweep.dir={tmp_path}/sweep_${{tag}}", "hydra.sweep.subdir=."] if multirun
              else [f"hydra.run.dir={tmp_path}/run_${{tag}}"])
    monkeypatch.setattr(sys, "argv", ["nmt-train", *(["-m"] if multirun else []), "--config-dir", str(my_configs),
                                      "experiment=tiny_dot", "+tag=abc", *folder])
    nmt.cli.train.main()
    assert (tmp_path / ("sweep_abc" if multirun else "run_abc") / "checkpoints/last.pt").is_file()


def test_an_option_oc_select_reads_is_accepted():
    cfg = compose_checked("train", ["+base_lr=0.002", "optimizer.lr=${oc.select:base_lr,0.001}"])
    assert cfg.optimizer.lr == 0.002


def test_a_config_of_the_users_own_group_without_the_package_header_says_so(my_configs):
    """Without `# @package _global_` its options go under preset.*, where nothing reads them."""
    (my_configs / "preset").mkdir()
    (my_configs / "preset/plain.yaml").write_text("optimizer:\n  lr: 0.002\n")
    assert refusal(my_configs, "experiment=tiny_dot", "+preset=plain") == (
        f"{my_configs}/preset/plain.yaml puts its options under preset.*, which nothing "
        "reads: the first line of a config of your own group must be `# @package _global_`")


def test_a_helper_option_whose_readers_the_command_line_all_set_is_dropped_not_refused(my_configs):
    """size is read only through enc_hidden: ${size} and dec_hidden: ${size}; with both set on the
    command line nothing reads it, which is no mistake of the user's."""
    (my_configs / "experiment/sized.yaml").write_text(
        "# @package _global_\ndefaults:\n  - tiny_dot\n  - _self_\nsize: 16\nmodel:\n  enc_hidden: ${size}\n"
        "  dec_hidden: ${size}\n")
    assert composed(my_configs, "experiment=sized").model.enc_hidden == 16
    cfg = composed(my_configs, "experiment=sized", "model.enc_hidden=12", "model.dec_hidden=12")
    assert (cfg.model.enc_hidden, cfg.model.dec_hidden) == (12, 12) and "size" not in cfg
    (my_configs / "experiment/sized_typo.yaml").write_text(  # a misspelling beside a helper is still one
        "# @package _global_\ndefaults:\n  - sized\n  - _self_\ntrainer:\n  max_stepz: 3\n")
    assert refusal(my_configs, "experiment=sized_typo", "model.enc_hidden=12", "model.dec_hidden=12") == (
        "trainer.max_stepz, set in a config file (experiment=sized_typo), is not an option "
        "(did you mean trainer.max_steps?)")


def passed_over(group: str, name: str, path: Path) -> str:
    return (f"{group}={name} picks the package's config, not {path}: Hydra looks in the package's configs first; "
            f"give yours another name ({group}/my_{name}.yaml) and pick it with {group}=my_{name}")


def test_a_users_config_named_like_the_packages_that_is_picked_is_refused_not_passed_over(my_configs):
    """Hydra searches the package's configs first: the user's experiment/smoke.yaml never ran."""
    (my_configs / "experiment/smoke.yaml").write_text("# @package _global_\ntrainer:\n  max_steps: 5\n")
    assert refusal(my_configs, "experiment=smoke") == passed_over("experiment", "smoke",
                                                                  my_configs / "experiment/smoke.yaml")
    (my_configs / "experiment/smoke.yaml").unlink()
    (my_configs / "model/attention").mkdir(parents=True)  # named like the package's, but not picked
    (my_configs / "model/attention/dot.yaml").write_text("name: dot\n")
    assert composed(my_configs, "experiment=tiny_dot", "model/attention=general").model.attention.name == "general"


def test_a_users_config_named_like_the_default_pick_says_it_is_the_default(my_configs):
    """The user never typed data=multi30k: train.yaml's default picked it."""
    (my_configs / "data/multi30k.yaml").write_text("defaults: [multi30k, _self_]\nmax_len: 20\n")
    assert refusal(my_configs, "model/attention=dot") == (
        f"data=multi30k (the default, or an experiment's pick) takes the package's config, not {my_configs}/data/"
        "multi30k.yaml: Hydra looks in the package's configs first; give yours another name (data/my_multi30k.yaml) "
        "and pick it with data=my_multi30k")


@pytest.mark.parametrize("own_config", [False, True])
def test_a_users_config_built_on_the_packages_of_its_name_is_refused_not_a_traceback(my_configs, own_config):
    """data/multi30k.yaml built on multi30k: with the user's folder searched first (their config in
    place of the command's, --config-name), it built on itself, and the check ended in a RecursionError.
    Hydra takes the package's multi30k (it searches the package first): theirs is passed over."""
    (my_configs / "data/multi30k.yaml").write_text("defaults: [multi30k, _self_]\nmax_len: 20\n")
    (my_configs / "my_run.yaml").write_text("defaults: [train, _self_]\n")
    if not own_config:
        assert refusal(my_configs, "data=multi30k") == passed_over("data", "multi30k", my_configs / "data/multi30k.yaml")
        return
    assert refusal(my_configs, "--config-name", "my_run", "data=multi30k") == (
        f"{my_configs}/data/multi30k.yaml is passed over: Hydra takes the package's data/multi30k.yaml in its place "
        "(it looks in the package's configs first); give yours a name the package does not use")


def test_a_users_train_yaml_built_on_train_is_named_when_another_config_of_theirs_is_run(my_configs):
    """my_run's `defaults: [train, _self_]` takes the package's train.yaml (Hydra searches it first), so
    theirs is passed over; the check, composing with their folder first, blamed data/hub.yaml."""
    (my_configs / "train.yaml").write_text("defaults: [train, _self_]\n")
    (my_configs / "data/hub.yaml").write_text("defaults: [multi30k, _self_]\n")
    (my_configs / "my_run.yaml").write_text("defaults: [train, _self_]\nseed: 3\n")
    assert refusal(my_configs, "--config-name", "my_run") == (
        f"{my_configs}/train.yaml is passed over: Hydra takes the package's train.yaml in its place (it looks in the "
        "package's configs first); give yours a name the package does not use")


def test_a_users_config_named_like_the_commands_is_refused_not_passed_over(my_configs):
    (my_configs / "train.yaml").write_text("defaults: [train, _self_]\nseed: 7\n")
    with pytest.raises(ConfigError) as refused:
        composable_command_line(["--config-dir", str(my_configs), "--config-name", "train"])
    assert str(refused.value) == (f"--config-name train picks the package's train.yaml, not {my_configs}/train.yaml: "
                                  "Hydra looks in the package's configs first; give yours another name (my_train.yaml)")


LOOP_A_B = {"data/a.yaml": "defaults: [b, _self_]\n", "data/b.yaml": "defaults: [a, _self_]\n"}


@pytest.mark.parametrize(("files", "args", "looping"), [
    ({"loop.yaml": "defaults: [loop, _self_]\n"}, ["--config-name", "loop"], "loop.yaml"),
    (LOOP_A_B, ["data=a"], "data/a.yaml"),
    # the picked config is named, not another loop of the folder's
    ({**LOOP_A_B, "data/self_loop.yaml": "defaults: [self_loop, _self_]\n"}, ["data=self_loop"], "data/self_loop.yaml"),
    # nor a config named like the package's that nothing picks
    ({**LOOP_A_B, "experiment/smoke.yaml": "# @package _global_\nseed: 3\n"}, ["data=b"], "data/b.yaml"),
])
def test_a_users_config_that_builds_on_itself_is_named(my_configs, files, args, looping):
    """Hydra follows the defaults lists round until Python's recursion limit: a RecursionError traceback."""
    for name, text in files.items():
        (my_configs / name).write_text(text)
    assert refusal(my_configs, *args) == f"{my_configs / looping} builds on itself: its defaults list leads back to it"


BIG_CORPUS = "# @package _global_\ndefaults:\n  - /data/multi30k@data\n  - _self_\ndata:\n  max_len: 40\n" \
             "trainer:\n  batch_tokens: 1234\n"


def test_an_option_a_global_group_config_sets_for_a_group_merged_after_it_is_refused_not_lost(my_configs):
    """train.yaml merges data before trainer, so trainer=default set batch_tokens back to 4096."""
    (my_configs / "data/big.yaml").write_text(BIG_CORPUS)
    assert refusal(my_configs, "data=big") == (
        f"trainer.batch_tokens: {my_configs}/data/big.yaml sets it to 1234, but trainer=default, which train.yaml "
        "merges after data, sets it to 4096; set it in an experiment or on the command line")



def test_a_global_group_config_is_named_before_an_option_of_its_group_that_it_left_without_options(my_configs):
    """Building on no data config, it leaves data= without options: data.max_len=50 failed first, with
    "data is not an option (did you mean data.url?)", which points away from the config."""
    (my_configs / "data/big.yaml").write_text("# @package _global_\ntrainer:\n  batch_tokens: 1234\n")
    assert refusal(my_configs, "data=big", "data.max_len=50") == (
        f"trainer.batch_tokens: {my_configs}/data/big.yaml sets it to 1234, but trainer=default, which train.yaml "
        "merges after data, sets it to 4096; set it in an experiment or on the command line")
    # The command line's other options stay: here the one that settles batch_tokens, so what is left is named
    assert refusal(my_configs, "data=big", "data.max_len=50", "trainer.batch_tokens=1234") == (
        f"data is missing from {my_configs}/data/big.yaml; a data config of your own should build on one of the "
        "package's: defaults: [files, _self_]")

def test_options_a_global_group_config_sets_that_nothing_sets_back_are_taken(my_configs):
    """Its own group's options, an option the command line then sets, and a group of the user's own,
    merged last, are no loss."""
    (my_configs / "data/big.yaml").write_text(BIG_CORPUS)
    cfg = composed(my_configs, "data=big", "trainer.batch_tokens=800")
    assert (cfg.data.max_len, cfg.trainer.batch_tokens) == (40, 800)
    (my_configs / "preset").mkdir()
    (my_configs / "preset/big_batches.yaml").write_text("# @package _global_\ntrainer:\n  batch_tokens: 1234\n")
    assert composed(my_configs, "+preset=big_batches").trainer.batch_tokens == 1234


def test_a_sweep_ends_with_a_table_of_its_runs(capsys, monkeypatch, my_configs, tmp_path):
    monkeypatch.setattr(sys, "argv", ["nmt-train", "-m", "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      "model/attention=dot,general", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    nmt.cli.train.main()
    printed = capsys.readouterr().out.splitlines()
    start = printed.index(f"2 runs (also in {tmp_path / 'sweep/summary.tsv'}):")
    header, first, second = (line.split() for line in printed[start + 1:start + 4])
    assert header == ["job", "model/attention", "parameters", "steps", "epochs", "seconds", "metric", "best"]
    assert (first[:2], second[:2], first[3], first[6]) == (["#0", "dot"], ["#1", "general"], "2", "bleu")
    rows = (tmp_path / "sweep/summary.tsv").read_text().splitlines()
    assert rows[0].split("\t")[-3:] == ["overrides", "best_checkpoint", "error"]
    assert rows[2].split("\t")[-2:] == [str(tmp_path / "sweep/1/checkpoints/best.pt"), ""]


def test_a_single_run_has_no_sweep_summary_and_no_warning_about_one(capsys, monkeypatch, recwarn, my_configs,
                                                                      tmp_path):
    """A single run has no job number: the summary's callback leaves it alone (it warned, through Hydra)."""
    monkeypatch.setattr(sys, "argv", ["nmt-train", "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    nmt.cli.train.main()
    assert "runs (also in" not in capsys.readouterr().out
    assert not [warning for warning in recwarn if "Callback" in str(warning.message)]


def test_a_group_config_whose_header_a_comment_hides_is_not_taken_as_global(my_configs):
    """Hydra stops reading the header at the first line that is not `# @key value`: the options go
    under data.*, which has no data.data, rather than to the top, where trainer=default set one back."""
    (my_configs / "data/big.yaml").write_text("# my corpus\n" + BIG_CORPUS.replace("/data/multi30k@data", "multi30k"))
    assert refusal(my_configs, "data=big") == (f"data.data, set in {my_configs}/data/big.yaml, is not an option "
                                               "(did you mean data.format?)")


def sweep_whose_first_job_fails(capsys, monkeypatch, my_configs, tmp_path, *overrides: str) -> tuple[str, list[str]]:
    """Runs a two-job sweep of tiny_dot whose job #0 fails; checks that job #1 trained, that the last line
    names the failed job and the exit status is 2, and returns standard error and the summary table's rows."""
    monkeypatch.setattr(sys, "argv", ["nmt-train", "-m", "--config-dir", str(my_configs), "experiment=tiny_dot",
                                      *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    with pytest.raises(SystemExit) as stopped:
        nmt.cli.train.main()
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == ("error: training could not go on in 1 of the sweep's jobs: #0 (their "
                                            "messages are above)")
    assert (tmp_path / "sweep/1/checkpoints/best.pt").is_file()
    table = out[out.index("2 runs (also in"):].splitlines()
    assert table[2].split()[-1] == "failed"
    return err, table


def test_a_sweeps_job_whose_settings_the_data_refuse_is_reported_and_the_next_job_runs(capsys, monkeypatch,
                                                                                       my_configs, tmp_path):
    """A vocabulary the corpus cannot fill is found only when that job reads its data: the error, without
    the job's number, ended the whole sweep there, with no table."""
    err, _ = sweep_whose_first_job_fails(capsys, monkeypatch, my_configs, tmp_path, "tokenizer.vocab_size=5000,40")
    assert "error: job #0: tokenizer.vocab_size=5000 is too large for " in err


def test_a_sweeps_job_whose_training_diverges_is_reported_and_the_next_job_runs(capsys, monkeypatch, my_configs,
                                                                                tmp_path):
    """A learning rate too large for the model is one of a sweep's results, not a reason to drop the
    jobs after it; the table marks it and the exit status says a job failed."""
    err, table = sweep_whose_first_job_fails(capsys, monkeypatch, my_configs, tmp_path, "optimizer.lr=1e38,5e-4",
                                             "trainer.max_nonfinite_steps=1")
    assert "error: job #0: training diverged: 1 update had a non-finite loss" in err
    assert table[3].split()[-2] == "bleu" and float(table[3].split()[-1]) >= 0
