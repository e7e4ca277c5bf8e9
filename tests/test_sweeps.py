"""A sweep (`nmt-train -m model/attention=dot,general`) has every job's options checked before its
first job starts: a mistake in the last job must not wait until the others have trained, and each is
one line, not Hydra's report of several."""

from pathlib import Path

import pytest
from user_errors import main_error

import nmt.cli.align
import nmt.cli.common
import nmt.cli.evaluate
import nmt.cli.outputs
import nmt.cli.plot
import nmt.cli.train
import nmt.cli.translate
from nmt.cli.common import config_dir
from nmt.cli.sweep_summary import TSV_ONLY, FinishedJob, aligned, summary_rows
from nmt.cli.sweeps import sweep_jobs, swept_values, without_multirun_flag


def smoke_sweep(tmp_path: Path, *args: str) -> list[str]:
    """nmt-train -m over the smoke experiment, with a data root that holds no corpus: any job that
    started would fail on the data, so a refusal before the first job is the checks' own."""
    return ["-m", "experiment=smoke", f"data.root={tmp_path / 'no_corpus'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *args]


def test_jobs_are_listed_in_hydras_order():
    jobs = sweep_jobs(config_dir(), None, ["a=1,2", "b=x,y", "c=3"])
    assert jobs == [["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"], ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]
    assert swept_values(jobs[1], jobs) == ["a=1", "b=y"]
    assert sweep_jobs(config_dir(), None, ["seed=range(1,3)"]) == [["seed=1"], ["seed=2"]]


def test_a_glob_sweep_lists_the_packages_options_of_the_group():
    jobs = sweep_jobs(config_dir(), None, ["model/attention=glob(*,exclude=[multihead,scaled_dot])"])
    assert jobs == [[f"model/attention={name}"] for name in ("additive", "concat", "dot", "general")]


@pytest.mark.parametrize("flag", ["-m", "--multirun", "hydra.mode=MULTIRUN"])
def test_the_multirun_flag_is_what_makes_a_sweep(flag):
    assert without_multirun_flag([flag, "seed=1,2"]) == ["seed=1,2"]
    assert without_multirun_flag(["seed=1"]) is None


def test_a_mistaken_value_in_a_later_job_is_refused_before_the_first_job_starts(capsys, monkeypatch, tmp_path):
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, *smoke_sweep(tmp_path, "trainer.max_steps=1,x"))
    assert message == "job #1 of the sweep (trainer.max_steps=x): trainer.max_steps must be null or a positive " \
                      "integer; got 'x'"
    assert not (tmp_path / "sweep").exists()


def test_a_misspelt_config_in_a_sweep_is_one_line(capsys, monkeypatch, tmp_path):
    """Hydra's own report of it spans several lines and lists its search path."""
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, *smoke_sweep(tmp_path, "model/attention=dot,dott"))
    assert message == ("job #1 of the sweep (model/attention=dott): model/attention=dott is not an option; "
                       "choose one of: additive, concat, dot, general, multihead, scaled_dot")


def test_a_mistake_every_job_has_is_named_without_a_job(capsys, monkeypatch, tmp_path):
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "seed=1,2", "trainer.max_stepz=3"))
    assert message == "trainer.max_stepz is not an option (did you mean trainer.max_steps?); " \
                      "`nmt-train --cfg job` lists them all"


def test_an_option_of_a_config_one_job_replaces_is_refused_for_that_job(capsys, monkeypatch, tmp_path):
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "scheduler=plateau,cosine", "scheduler.patience=1"))
    assert message == "job #1 of the sweep (scheduler=cosine): scheduler.patience is not an option of " \
                      "scheduler=cosine; scheduler=plateau has it"


def test_a_later_jobs_folder_that_holds_a_run_is_refused_before_the_first_job_starts(capsys, monkeypatch,
                                                                                        tmp_path):
    (tmp_path / "sweep/1/checkpoints").mkdir(parents=True)
    (tmp_path / "sweep/1/checkpoints/last.pt").write_bytes(b"a run of an earlier sweep")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, *smoke_sweep(tmp_path, "seed=1,2"))
    assert message == (f"job #1 of the sweep (seed=2): {tmp_path}/sweep/1 already holds a run "
                       f"({tmp_path}/sweep/1/checkpoints/last.pt); add resume=true to continue it, or choose "
                       "another hydra.sweep.dir")
    assert not (tmp_path / "sweep/0").exists()


def test_jobs_that_would_share_a_folder_are_refused_before_the_first_starts(capsys, monkeypatch, tmp_path):
    """With hydra.sweep.subdir=. the second job would find the first one's run in its folder."""
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "seed=1,2", "hydra.sweep.subdir=."))
    assert message == (f"job #1 of the sweep (seed=2): it would run in {tmp_path}/sweep, as job #0 does; give "
                       "hydra.sweep.subdir a value that differs between jobs (its default: ${hydra.job.num})")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("sweep", "message"), [
    ("model/attention=glob(zz*)", "-m: model/attention=glob(zz*) gives no value to run (a glob() that matches no "
                                  "option, an empty range()), so the sweep would have no job"),
    ("seed=interval(0,1)", "-m: BasicSweeper does not support sweep type : INTERVAL_SWEEP"),
])
def test_a_sweep_hydra_would_run_no_job_of_or_cannot_run_is_refused(capsys, monkeypatch, tmp_path, sweep, message):
    """Hydra reports success for a sweep of no job, and a traceback for an interval."""
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *smoke_sweep(tmp_path, sweep)) == message


def test_a_glob_sweep_includes_the_users_own_configs(capsys, monkeypatch, tmp_path):
    (tmp_path / "mine/data").mkdir(parents=True)
    (tmp_path / "mine/data/my_ok.yaml").write_text("defaults: [multi30k, _self_]\nmax_len: 50\n")
    (tmp_path / "mine/data/my_typo.yaml").write_text("defaults: [multi30k, _self_]\nmax_lenn: 50\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "--config-dir", str(tmp_path / "mine"), "data=glob(my_*)"))
    assert message == (f"job #1 of the sweep (data=my_typo): data.max_lenn, set in {tmp_path}/mine/data/my_typo.yaml, "
                       "is not an option (did you mean data.max_len?)")


def test_the_sweep_a_users_config_declares_is_checked(capsys, monkeypatch, tmp_path):
    """hydra.sweeper.params: jobs Hydra's basic sweeper makes from the config, before the command line's."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/seeds.yaml").write_text("defaults: [train, _self_]\nhydra:\n  sweeper:\n    params:\n"
                                              "      seed: 1,x\n")
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "--config-dir", str(tmp_path / "mine"), "--config-name", "seeds"))
    assert message == "job #1 of the sweep (seed=x): seed must be an integer from 0 to 4294967295; got 'x'"


@pytest.mark.parametrize("override", ['hydra.sweeper.params={seed: "1,2"}', 'hydra.sweeper.params.seed="1,2"',
                                      '+hydra.sweeper.params.seed="1,2"'])
def test_the_sweep_declared_on_the_command_line_is_one_line_naming_where_it_can_be_declared(
        capsys, monkeypatch, tmp_path, override):
    """OmegaConf cannot add keys to the basic sweeper's null params: an AttributeError or AssertionError
    traceback, from Hydra itself before the checks composed sweeps, then from the checks."""
    message = main_error(capsys, monkeypatch, nmt.cli.train.main, *smoke_sweep(tmp_path, override))
    key = override.lstrip("+").partition("=")[0]
    assert message == (f"{key}: Hydra cannot set hydra.sweeper.params on the command line (it is null, and takes "
                       "no keys there); sweep on the command line (seed=1,2), or declare the sweep in a config of "
                       "yours (hydra: {sweeper: {params: {seed: '1,2'}}})")


@pytest.fixture
def placeholder_inputs(tmp_path, monkeypatch) -> None:
    """Empty files, in the working folder, for the checkpoints and texts the sweeps below name: they
    exist, as the checks before the first job want, and a job that started would fail on them."""
    monkeypatch.chdir(tmp_path)
    for name in ("none.pt", "a.pt", "b.pt", "in.de", "a.de", "a.en", "s.de", "s.en", "runA/checkpoints/best.pt",
                 "runB/checkpoints/best.pt", "run/checkpoints/best.pt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()


@pytest.mark.usefixtures("placeholder_inputs")
def test_an_evaluation_sweep_checks_each_jobs_decoding_options_before_the_first(capsys, monkeypatch, tmp_path):
    """The first job would fail on the empty checkpoint, were it started."""
    message = main_error(capsys, monkeypatch, nmt.cli.evaluate.main, "-m", f"checkpoint={tmp_path / 'none.pt'}",
                         "split=val", "length_penalty=0.6,-1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert message == "job #1 of the sweep (length_penalty=-1): length_penalty must be a number from 0 to 10; got -1"
    assert not (tmp_path / "sweep").exists()


def evaluation_sweep(tmp_path: Path, *args: str) -> list[str]:
    """nmt-evaluate -m over two runs' checkpoints, which do not exist: a job that started would fail."""
    runs = ",".join(str(tmp_path / run / "checkpoints/best.pt") for run in ("runA", "runB"))
    return ["-m", f"checkpoint={runs}", "src_file=s.de", "ref_file=s.en", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *args]


@pytest.mark.usefixtures("placeholder_inputs")
def test_evaluation_jobs_that_would_write_the_same_report_are_refused_before_the_first(capsys, monkeypatch,
                                                                                       tmp_path):
    """Both jobs wrote best.s.de.beam5.hyp and .json into output_dir: the second job's overwrote the first's."""
    message = main_error(capsys, monkeypatch, nmt.cli.evaluate.main,
                         *evaluation_sweep(tmp_path, f"output_dir={tmp_path / 'same'}"))
    assert message == (f"job #1 of the sweep (checkpoint={tmp_path}/runB/checkpoints/best.pt): it would write its "
                       f"report to {tmp_path}/same/best.s.de.beam5.json, as job #0 does, overwriting it; give each "
                       "job its own output_dir, e.g. output_dir=results/${hydra:job.num}")
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "same").exists()
    # Names that differ by beam size do not help checkpoints of the same name
    message = main_error(capsys, monkeypatch, nmt.cli.evaluate.main,
                         *evaluation_sweep(tmp_path, "output_dir=same", "beam_size=1,2"))
    assert message.startswith(f"job #2 of the sweep (checkpoint={tmp_path}/runB/checkpoints/best.pt beam_size=1): "
                              "it would write its report to same/best.s.de.beam1.json, as job #0 does")


@pytest.mark.usefixtures("placeholder_inputs")
def test_a_job_that_repeats_an_earlier_one_is_named_by_it(capsys, monkeypatch, tmp_path):
    """No value tells the two jobs apart: the message named job #1 by none, `job #1 of the sweep ():`."""
    checkpoint = tmp_path / "run/checkpoints/best.pt"
    message = main_error(capsys, monkeypatch, nmt.cli.evaluate.main, "-m", f"checkpoint={checkpoint},{checkpoint}",
                         "src_file=s.de", "ref_file=s.en", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert message.startswith("job #1 of the sweep (the same options as job #0): it would write its report to "
                              f"{tmp_path}/run/checkpoints/best.s.de.beam5.json, as job #0 does")


@pytest.mark.usefixtures("placeholder_inputs")
@pytest.mark.parametrize("args", [[], ["output_dir=results/${hydra:job.num}"]])  # the refusal's suggestion
def test_evaluation_jobs_with_reports_of_their_own_are_accepted(tmp_path, args):
    """Next to each checkpoint (the default), or in a folder per job."""
    nmt.cli.common.check_command_line("evaluate", evaluation_sweep(tmp_path, *args),
                                      check_options=nmt.cli.evaluate.check_options,
                                      job_outputs=nmt.cli.evaluate.outputs)


@pytest.mark.usefixtures("placeholder_inputs")
@pytest.mark.parametrize(("main", "args", "message"), [
    (nmt.cli.plot.main, ["src=Ein Hund.", "vmax=1,-1"],
     "job #1 of the sweep (vmax=-1): vmax must be null (the largest weight) or a finite number > 0; got -1"),
    (nmt.cli.align.main, ["src_file=a.de", "tgt_file=a.en", "batch_sentences=1,0"],
     "job #1 of the sweep (batch_sentences=0): batch_sentences must be a positive integer; got 0"),
    (nmt.cli.translate.main, ["input=in.de", "nbest=1,8"],
     "job #1 of the sweep (nbest=8): nbest=8 needs beam_size >= 8, got beam_size=5"),
])
def test_plot_align_and_translate_sweeps_check_each_jobs_options_before_the_first(capsys, monkeypatch, tmp_path,
                                                                                  main, args, message):
    assert main_error(capsys, monkeypatch, main, "-m", f"checkpoint={tmp_path / 'none.pt'}", *args,
                      f"output={tmp_path / 'out.png'}", f"hydra.sweep.dir={tmp_path / 'sweep'}") == message
    assert not (tmp_path / "sweep").exists()



@pytest.mark.usefixtures("placeholder_inputs")
@pytest.mark.parametrize(("main", "args", "output"), [
    (nmt.cli.plot.main, ["src=Ein Hund."], "out.png"),
    (nmt.cli.align.main, ["src_file=a.de", "tgt_file=a.en"], "links.txt"),
    (nmt.cli.translate.main, ["input=in.de"], "out.en"),
])
def test_plot_align_and_translate_jobs_that_would_write_one_output_are_refused(capsys, monkeypatch, tmp_path,
                                                                             main, args, output):
    """A sweep over checkpoints with one output= would leave only the last job's file."""
    message = main_error(capsys, monkeypatch, main, "-m", f"checkpoint={tmp_path}/a.pt,{tmp_path}/b.pt", *args,
                         f"output={tmp_path / output}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    stem, suffix = output.split(".")
    assert message == (f"job #1 of the sweep (checkpoint={tmp_path}/b.pt): it would write its output to "
                       f"{tmp_path / output}, as job #0 does, overwriting it; give each job its own output, "
                       f"e.g. output={tmp_path}/{stem}.${{hydra:job.num}}.{suffix}")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.usefixtures("placeholder_inputs")
@pytest.mark.parametrize(("main", "args", "message"), [
    (nmt.cli.evaluate.main, ["checkpoint=a.pt", "src_file=s.de,typo.de", "ref_file=s.en", "output_dir=out${hydra:job.num}"],
     "job #1 of the sweep (src_file=typo.de): typo.de: no such file"),
    (nmt.cli.evaluate.main, ["checkpoint=a.pt,typo.pt", "split=val"],
     "job #1 of the sweep (checkpoint=typo.pt): checkpoint not found: typo.pt"),
    (nmt.cli.translate.main, ["checkpoint=a.pt", "input=in.de,typo.de", "output=-"],
     "job #1 of the sweep (input=typo.de): typo.de: no such file"),
    (nmt.cli.translate.main, ["checkpoint=a.pt", "input=in.de", "prefix=a.en,typo.en", "output=-"],
     "job #1 of the sweep (prefix=typo.en): typo.en: no such file"),
    (nmt.cli.plot.main, ["checkpoint=[a.pt,b.pt],[a.pt,typo.pt]", "src=Ein Hund.", "output=out${hydra:job.num}.png"],
     "job #1 of the sweep (checkpoint=[a.pt,typo.pt]): checkpoint not found: typo.pt"),
    (nmt.cli.align.main, ["method=diagonal", "src_file=a.de", "tgt_file=a.en", "gold=a.en,typo.txt"],
     "job #1 of the sweep (gold=typo.txt): typo.txt: no such file"),
])
def test_a_sweeps_job_whose_file_is_missing_is_refused_before_the_first_starts(capsys, monkeypatch, tmp_path, main,
                                                                                args, message):
    """Job #0 ran to its end (a whole decoding), then job #1 failed on the file."""
    assert main_error(capsys, monkeypatch, main, "-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}") == message
    assert not (tmp_path / "sweep").exists()


@pytest.mark.usefixtures("placeholder_inputs")
@pytest.mark.parametrize("args", [["output=-"], ["output=out.${hydra:job.num}.en"]])
def test_translate_jobs_writing_to_standard_output_or_files_of_their_own_are_accepted(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.de").write_text("Ein Hund.\n")
    nmt.cli.common.check_command_line("translate", ["-m", "checkpoint=a.pt,b.pt", "input=in.de", *args],
                                      check_options=nmt.cli.translate.check_options,
                                      job_outputs=nmt.cli.outputs.output_file)

def test_the_jobs_of_a_sweeper_other_than_hydras_basic_one_are_each_checked_as_they_start(capsys, monkeypatch,
                                                                                          tmp_path):
    """An optimizing sweeper (Optuna's, Ax's) picks each job from the last one's result: no list of
    jobs exists up front, and each job checks its own options instead."""
    monkeypatch.setattr(nmt.cli.common, "sweeper_params", lambda cfg: None)
    message = main_error(capsys, monkeypatch, nmt.cli.train.main,
                         *smoke_sweep(tmp_path, "trainer.max_steps=x,1"))
    assert message == "trainer.max_steps must be null or a positive integer; got 'x'"
    assert (tmp_path / "sweep/multirun.yaml").is_file()  # Hydra started the sweep


def test_the_summary_of_a_sweep_has_a_column_per_swept_option_and_a_dash_for_a_run_without_results(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0/summary.json").write_text('{"steps": 40, "epochs": 2, "parameters": 1234567, '
                                             '"best_metric": "chrf", "best_score": 51.234, "best_checkpoint": "b.pt"}')
    jobs = [FinishedJob(1, ["seed=2", "model/attention=dot", "trainer.max_steps=40"], tmp_path / "1", 3.2),
            FinishedJob(0, ["seed=1", "model/attention=dot", "trainer.max_steps=40"], tmp_path / "0", 61.7)]
    rows = summary_rows(jobs)
    assert [row["job"] for row in rows] == ["#0", "#1"]
    assert rows[0] == {"job": "#0", "seed": "1", "parameters": "1,234,567", "steps": "40", "epochs": "2",
                       "seconds": "62", "metric": "chrf", "best": "51.23",
                       "overrides": "seed=1 model/attention=dot trainer.max_steps=40", "best_checkpoint": "b.pt",
                       "error": ""}
    assert [rows[1][key] for key in ("seed", "parameters", "steps", "best")] == ["2", "-", "-", "-"]
    assert aligned(rows, leave_out=TSV_ONLY).splitlines() == [
        "job  seed  parameters  steps  epochs  seconds  metric  best",
        "#0   1     1,234,567   40     2       62       chrf    51.23",
        "#1   2     -           -      -       3        -       -"]


def test_the_summary_of_an_evaluation_sweep_has_its_scores():
    report = {"test_set": "val", "checkpoint": "best.pt", "sentences_per_second": 51.26,
              "scores": {"bleu": {"score": 40.123}, "chrf": {"score": 61.0}, "ter": {"score": 39.5}}}
    jobs = [FinishedJob(0, ["checkpoint=best.pt", "length_penalty=0.6"], Path("0"), 9.0, report)]
    assert summary_rows(jobs) == [{"job": "#0", "test_set": "val", "bleu": "40.12", "chrf": "61.00", "ter": "39.50",
                                   "sentences_per_s": "51.3", "overrides": "checkpoint=best.pt length_penalty=0.6",
                                   "checkpoint": "best.pt"}]


@pytest.mark.parametrize(("flags", "message"), [
    (["-m", "--cfg", "job", "seed=1,2"], "--multirun and --cfg cannot be given together: give one of them"),
    (["--info", "-m"], "--multirun and --info cannot be given together: give one of them"),
    (["--resolve"], "--resolve goes with --cfg (or --help): --cfg job --resolve"),
    # Hydra composes one config for --help and --cfg: its "Ambiguous value" traceback (with --help)
    (["-m", "--help", "seed=1,2"], "--help shows the config of one run, but seed=1,2 gives several values; give it one"),
    (["--cfg", "job", "data=glob(*)"],
     "--cfg job shows the config of one run, but data=glob(*) gives several values; give it one"),
    # Hydra's "File ... does not exist!" and "Expecting one subcommand ..." tracebacks, its report of several lines
    (["--experimental-rerun", "/nonexistent/config.pickle"],
     "--experimental-rerun /nonexistent/config.pickle: no such file; it takes a run's .hydra/config.pickle"),
    (["--shell-completion", "bogus=1"],
     "--shell-completion takes one of install=SHELL, uninstall=SHELL or query=SHELL, SHELL one of bash, zsh, fish "
     "(e.g. --shell-completion install=bash); got bogus=1"),
    (["--shell-completion", "install=tcsh"],
     "--shell-completion takes one of install=SHELL, uninstall=SHELL or query=SHELL, SHELL one of bash, zsh, fish "
     "(e.g. --shell-completion install=bash); got install=tcsh"),
    (["--config-path", "/nonexistent", "experiment=smoke"], "--config-path /nonexistent: no such folder"),
    # Hydra's parser printed its whole usage before its line for these three
    (["experiment=smoke", "--cfg", "job", "seed=3"],
     "seed=3 comes after a flag that follows other key=value overrides; give the overrides as one group, after the "
     "flags: nmt-train --cfg job experiment=smoke seed=3"),
    (["experiment=smoke", "--foo"],
     "--foo is not a flag of the command; options are key=value (--help lists them; --hydra-help, Hydra's flags)"),
    (["--cfg", "bogus"], "argument --cfg/-c: invalid choice: 'bogus' (choose from 'job', 'hydra', 'all')"),
])
def test_hydras_flags_in_a_combination_it_refuses_are_one_line(capsys, monkeypatch, flags, message):
    """Hydra refuses these with a ValueError traceback (the last three with its parser's usage message)."""
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *flags) == message


@pytest.mark.parametrize(("argv", "names"), [
    (["-m", "experiment=smoke", "seed=1,2", "name=run_${hydra:job.num}"], ["run_0", "run_1"]),
    (["experiment=smoke", "name=run_${hydra:job.config_name}"], ["run_train"]),
    # Hydra names the job after the command's module; the checks named it "app", so resume=true in
    # hydra.run.dir=runs/${hydra:job.name} looked for the run in runs/app
    (["experiment=smoke", "name=run_${hydra:job.name}"], ["run_train"]),
    (["-m", "experiment=smoke", "seed=1,2", "name=${hydra:job.name}_${hydra:job.num}"], ["train_0", "train_1"]),
])
def test_options_that_read_hydras_settings_resolve_in_the_checks_as_in_the_jobs(argv, names):
    """The checks ran outside Hydra, where `${hydra:...}` has nothing to read: a traceback."""
    checked = []
    nmt.cli.common.check_each_job("train", argv, lambda cfg, job: checked.append(cfg.name))
    assert checked == names


@pytest.mark.parametrize(("args", "message"), [
    (["experiment=smoke", "name=${nope}"], "cannot resolve name: Interpolation key 'nope' not found"),
    (["experiment=smoke", "hydra.run.dir=${nope}/run"], "cannot resolve hydra.run.dir: Interpolation key 'nope' not found"),
    (["-m", "experiment=smoke", "seed=1,2", "hydra.sweep.dir=${nope}"],
     "cannot resolve hydra.sweep.dir: Interpolation key 'nope' not found"),
])
def test_an_interpolation_that_cannot_be_resolved_is_one_line(capsys, monkeypatch, args, message):
    """Before, a traceback: from the checks, or from Hydra where they left the option alone."""
    assert main_error(capsys, monkeypatch, nmt.cli.train.main, *args) == message
