"""nmt-train: `nmt-train [group=option ...] [key=value ...]`, e.g. `nmt-train experiment=smoke`."""

import contextlib
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nmt.cli.common import (
    PATH_TEMPLATE_KEYS,
    check_each_job,
    check_job,
    config_flags,
    hydra_command,
    quote_text_overrides,
)
from nmt.cli.stdout_errors import failures_handled_by
from nmt.cli.sweep_summary import JobFailure
from nmt.cli.sweeps import without_multirun_flag
from nmt.errors import ConfigError, NMTError
from nmt.training.distributed import is_main_process
from nmt.training.options import check_run_options
from nmt.training.resume import checkpoint_to_resume
from nmt.training.signals import StopOnSignal, StopReason, TrainingStopped
from nmt.training.trainer import train
from nmt.training.validation import metric_text

# The sweep's jobs that could not go on (an NMTError: diverged, out of memory, wrong for the data), as "#N".
failed_jobs: list[str] = []


def run(cfg: DictConfig) -> JobFailure | None:
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    try:
        with failures_handled_by(_stop_training):
            summary = train(cfg, run_dir)
    except NMTError as error:
        if hydra_config.mode != RunMode.MULTIRUN:
            raise
        # A mistaken option ends the sweep, as it does before the first job (here for a sweeper other than
        # Hydra's basic one, whose jobs are not known up front); what a job finds as it runs is its result.
        check_run_options(cfg)
        # A sweep's job that diverged, ran out of memory or found its settings wrong for the data (a
        # vocabulary the corpus cannot fill) is one of its results: the next job starts, and the table
        # and the exit status say which failed.
        print(f"error: job #{hydra_config.job.num}: {error}", file=sys.stderr, flush=True)
        failed_jobs.append(f"#{hydra_config.job.num}")
        return JobFailure(str(error))
    except TrainingStopped as stop:
        if hydra_config.mode == RunMode.MULTIRUN:  # this job alone goes on; the sweep stops here
            job = hydra_config.job.num
            told = (f"{stop}\nto continue job #{job}: {resume_command(run_dir, job_overrides=hydra_config.overrides.task)}"
                    f"\n(the sweep's jobs after #{job} did not run; to continue the whole sweep: "
                    f"{resume_sweep_command(Path(hydra_config.sweep.dir))})")
        else:
            told = f"{stop}\nto continue: {resume_command(run_dir)}"
        if is_main_process():  # under torchrun every rank stops: one says how to go on
            with contextlib.suppress(OSError):  # a terminal that hung up (SIGHUP) cannot be told
                print(told, file=sys.stderr, flush=True)
        sys.exit(stop.reason.exit_status)
    best = metric_text(summary["best_metric"], summary["best_score"])
    if is_main_process():  # every rank under torchrun returns the summary
        print(f"best validation {best}; checkpoints: {run_dir / 'checkpoints'}")
    if "stopped_by" in summary:  # the run had finished; the job was still asked to end
        reason = summary["stopped_by"]
        print(f"stopped by {reason.name} as the run finished; it is complete", file=sys.stderr, flush=True)
        sys.exit(reason.exit_status)


def _stop_training(error: OSError) -> bool:
    """A failed write to standard output while training runs: it stops after the update it is in,
    saving last.pt, as on SIGTERM. The logs are in the run folder's train.log all the same."""
    return StopOnSignal.request_current(StopReason.of_output_error(error))


def resume_command(run_dir: Path, argv: list[str] | None = None, job_overrides: Iterable[str] | None = None) -> str:
    """The command that continues this run: the same overrides, its folder and resume=true. For a job
    of a sweep (`job_overrides`: its own, one value of each swept option), that job alone: the
    command line's --config-dir and --config-name with the job's overrides, without -m."""
    argv = sys.argv[1:] if argv is None else argv
    if job_overrides is not None:
        argv = [*config_flags_of(argv), *job_overrides]
    keep = [arg for arg in argv if arg.partition("=")[0].lstrip("+~") not in ("resume", "hydra.run.dir")]
    return launcher() + shlex.join([*keep, f"hydra.run.dir={_shown_folder(run_dir)}", "resume=true"])


def launcher(environ=os.environ) -> str:
    """How the command was started, to start it again: `nmt-train `, or under torchrun (WORLD_SIZE > 1)
    torchrun with the same processes per machine (on several machines, with the launch's own
    rendezvous options, which only the command line that started it holds)."""
    size = int(environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return "nmt-train "
    per_node = int(environ.get("LOCAL_WORLD_SIZE", size))
    if per_node == size:
        return f"torchrun --nproc_per_node={per_node} -m nmt.train "
    return f"torchrun --nnodes={size // per_node} --nproc_per_node={per_node} <its rendezvous options> -m nmt.train "


def resume_sweep_command(sweep_dir: Path, argv: list[str] | None = None) -> str:
    """The command that continues a sweep: the same command line in the same folder, with resume=auto,
    which continues each job that has a run there and starts the others."""
    argv = sys.argv[1:] if argv is None else argv
    keep = [arg for arg in argv if arg.partition("=")[0].lstrip("+~") not in ("resume", "hydra.sweep.dir")]
    return launcher() + shlex.join([*keep, f"hydra.sweep.dir={_shown_folder(sweep_dir)}", "resume=auto"])


def _shown_folder(folder: Path) -> str:
    """`folder` relative to the working folder where it lies within it."""
    shown = os.path.relpath(folder)
    return str(folder) if shown.startswith("..") else shown


def config_flags_of(argv: list[str]) -> list[str]:
    """The --config-dir and --config-name flags of a (sweep's) command line, each with its value."""
    _, folder, name = config_flags(without_multirun_flag(argv) or argv) or ([], None, None)
    return [*(["--config-dir", folder] if folder else []), *(["--config-name", name] if name else [])]


def check_before_start(argv: list[str]) -> Path | None:
    """Checks the options and `resume` as `train` will, and what hydra_command checks for every command
    (check_job), but before Hydra creates the run folder, so a mistaken value leaves no folder behind,
    and for a sweep (-m) in every job before the first starts; returns the run folder, None for a
    sweep or where Hydra has the say (flags such as --cfg, or a run folder Hydra cannot resolve)."""
    run_dirs: list[Path | None] = []
    jobs_in: dict[Path, int] = {}  # a sweep's job folders

    def check(cfg: DictConfig, job: int | None) -> None:
        try:
            hydra = cfg.hydra
            run_dir = Path(hydra.run.dir if job is None else Path(hydra.sweep.dir, hydra.sweep.subdir)).absolute()
        except OmegaConfBaseException:
            run_dir = None  # an interpolation Hydra reports
        body = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        check_run_options(body)
        if run_dir is not None:
            # resume=true without a run; a new run over an old one
            checkpoint_to_resume(body.resume, run_dir, "hydra.run.dir" if job is None else "hydra.sweep.dir")
        if job is not None and run_dir is not None and jobs_in.setdefault(run_dir, job) != job:
            raise ConfigError(f"it would run in {run_dir}, as job #{jobs_in[run_dir]} does; give hydra.sweep.subdir a "
                              "value that differs between jobs (its default: ${hydra.job.num})")
        check_job(cfg, job)  # what hydra_command checks for the other commands
        run_dirs.append(None if job is not None else run_dir)

    # quoted as hydra_command quotes them
    check_each_job("train", quote_text_overrides(argv, PATH_TEMPLATE_KEYS, only_with="{}"), check)
    return run_dirs[0] if len(run_dirs) == 1 else None


def _hydra_files(run_dir: Path) -> dict[Path, bytes]:
    """What Hydra writes into a run folder before nmt starts: .hydra/*.yaml and the log."""
    return {path: path.read_bytes() for path in [*run_dir.glob(".hydra/*"), *run_dir.glob("*.log")]
            if path.is_file()}


def _stat(path: Path) -> tuple[int, int] | None:
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


@contextlib.contextmanager
def undone_if_refused(run_dir: Path | None):
    """Takes back what Hydra wrote into the run folder when `train` refuses to start (exit status 2
    before it wrote config.yaml, its first write): a refused resume, e.g. with other tokenizer
    settings, which only the data can tell, leaves the run byte for byte as it was, and a refused
    new run leaves no folder."""
    if run_dir is None:
        yield
        return
    before, settings = _hydra_files(run_dir), _stat(run_dir / "config.yaml")
    created = [folder for folder in (run_dir / ".hydra", run_dir, *run_dir.parents) if not folder.exists()]
    try:
        yield
    except SystemExit as exc:
        if exc.code == 2 and _stat(run_dir / "config.yaml") == settings:
            for path, content in _hydra_files(run_dir).items():
                if path not in before:
                    path.unlink()
                elif content != before[path]:
                    path.write_bytes(before[path])
            for folder in created:  # innermost first; one that holds anything else stays
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


_hydra_main = hydra_command("train", run, checked_before=True)


def main() -> None:
    failed_jobs.clear()
    try:
        run_dir = check_before_start(sys.argv[1:])
    except NMTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    with undone_if_refused(run_dir):
        _hydra_main()
    if failed_jobs:
        print(f"error: training could not go on in {len(failed_jobs)} of the sweep's jobs: {', '.join(failed_jobs)} "
              "(their messages are above)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
