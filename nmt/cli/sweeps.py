"""The jobs of a Hydra sweep (`nmt-train -m model/attention=dot,general`), listed the way Hydra's basic
sweeper lists them, so that every job's options can be checked before the first job starts: a mistake
in the last job would otherwise surface only after the others had trained."""

import os
import re
from collections.abc import Callable
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict, read_write

from nmt.errors import ConfigError, NMTError, first_line

MULTIRUN_FLAGS = ("-m", "--multirun")
MULTIRUN_MODE = re.compile(r"\+{0,2}hydra\.mode=(MULTIRUN|'MULTIRUN'|\"MULTIRUN\")")  # as -m does


def without_multirun_flag(argv: list[str]) -> list[str] | None:
    """The command line without what makes it a sweep (-m, --multirun, hydra.mode=MULTIRUN), None when
    it is no sweep."""
    rest = [arg for arg in argv if arg not in MULTIRUN_FLAGS and not MULTIRUN_MODE.fullmatch(arg)]
    return rest if len(rest) < len(argv) else None


def sweep_jobs(package_folder: str, users_folder: str | None, overrides: list[str]) -> list[list[str]]:
    """Each job's overrides, job #0 first: the cartesian product of the swept values (`a=1,2 b=x,y`:
    a=1 b=x, a=1 b=y, a=2 b=x, a=2 b=y). A glob() sweep lists a config group's options in the package's
    configs and the user's (--config-dir), searched as Hydra searches them. Raises
    OverrideParseException for an override Hydra cannot parse."""
    search_path = create_config_search_path(package_folder)
    if users_folder is not None:
        search_path.prepend(provider="command-line", path=f"file://{users_folder}",
                            anchor=SearchPathQuery(provider="schema"))
    parser = OverridesParser.create(config_loader=ConfigLoaderImpl(config_search_path=search_path))
    parsed = parser.parse_overrides(overrides)
    for override in parsed:  # else Hydra launches no job at all and reports success
        if override.is_discrete_sweep() and next(override.sweep_string_iterator(), None) is None:
            raise ConfigError(f"-m: {override.input_line} gives no value to run (a glob() that matches no "
                              f"option, an empty range()), so the sweep would have no job")
    try:
        [jobs] = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except HydraException as exc:  # interval(0,1), which only an optimizing sweeper can draw from
        raise ConfigError(f"-m: {first_line(exc)}") from None
    return jobs


def fixed_overrides(overrides: list[str]) -> list[str]:
    """The overrides every job shares: those that sweep nothing. Raises OverrideParseException for an
    override Hydra cannot parse."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [line for line, override in zip(overrides, parsed, strict=True) if not override.is_sweep_override()]


def sweeper_params(cfg: DictConfig) -> list[str] | None:
    """The sweep a config itself declares (hydra.sweeper.params, which Hydra's basic sweeper puts
    before the command line's), [] for none; None for a sweeper other than the basic one, whose jobs
    only it knows (an optimizer picks each from the last one's result)."""
    sweeper = cfg.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        return None
    return [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]


def swept_values(job: list[str], jobs: list[list[str]]) -> list[str]:
    """The overrides of `job` that differ between jobs: what names it among the sweep's jobs."""
    return [override for position, override in enumerate(job)
            if any(other[position] != override for other in jobs)]


def check_jobs(jobs: list[list[str]], compose: Callable[[list[str]], DictConfig],
               check: Callable[[DictConfig, int], None]) -> None:
    """Calls `check(cfg, number)` on each job's config, `compose(overrides)` with hydra.job.num set as
    Hydra's launcher sets it (a job's folder may be named after it). A mistake (NMTError) in a job is
    raised naming the job by its number and swept values, unless every job has it (a mistake outside
    the swept values)."""

    def checked(number: int) -> None:
        cfg = compose(jobs[number])
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.job.id = cfg.hydra.job.num = number
        check(cfg, number)

    for number in range(len(jobs)):
        try:
            checked(number)
        except NMTError as error:
            if number == 0 and all(_fails_alike(checked, other, error) for other in range(1, len(jobs))):
                raise
            raise type(error)(f"job #{number} of the sweep ({_what_names(number, jobs)}): {error}") from None


def _what_names(number: int, jobs: list[list[str]]) -> str:
    """What tells job `number` apart: its swept values; for a job that repeats an earlier one
    (`checkpoint=a.pt,a.pt`), which it repeats."""
    values = swept_values(jobs[number], jobs)
    twin = jobs.index(jobs[number])
    if values or twin == number:
        return " ".join(values)
    return f"the same options as job #{twin}"


def check_own_outputs(files: dict[str, tuple[str, str]], job: int, written: dict[str, tuple[int, str]]) -> None:
    """ConfigError when job `job` of a sweep would write a file an earlier job writes, which it would
    silently overwrite. `files`: what the job writes (a description, e.g. "its report", -> the option
    that places it and the path); `written`: path -> (job, description) of the jobs checked so far,
    filled here."""
    for what, (option, path) in files.items():
        key = os.path.abspath(os.path.expanduser(path))
        first, _ = written.setdefault(key, (job, what))
        if first != job:
            raise ConfigError(f"it would write {what} to {path}, as job #{first} does, overwriting it; give each "
                              f"job its own {option}, e.g. {_per_job_example(option, path)}")


def _per_job_example(option: str, path: str) -> str:
    """An override that gives every job of a sweep its own file or folder (the job's number in it)."""
    if option == "output_dir":
        return "output_dir=results/${hydra:job.num}"
    file = Path(path)
    return f"{option}={file.with_name(file.stem + '.${hydra:job.num}' + file.suffix).as_posix()}"


def _fails_alike(checked: Callable[[int], None], number: int, error: NMTError) -> bool:
    try:
        checked(number)
    except NMTError as other:
        return str(other) == str(error)
    return False
