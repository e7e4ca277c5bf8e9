"""What every command shares: where the configs live, free-text options, and user-error handling
(failed writes to standard output: nmt.cli.stdout_errors)."""

import argparse
import contextlib
import fnmatch
import functools
import logging
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import hydra
import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError

from nmt.cli.config_picks import parsed_overrides
from nmt.cli.config_shape import check_config_shape, override_error
from nmt.cli.group_configs import shown_path
from nmt.cli.hydra_messages import (
    composition_message,
    missing_option_message,
    null_option_message,
    parse_error_message,
    recursion_message,
    yaml_error_message,
)
from nmt.cli.outputs import check_writable_folder
from nmt.cli.stdout_errors import (
    StdoutError,
    stop_on_broken_pipe,
    stop_on_stdout_error,
    stopping_on_stdout_errors,
)
from nmt.cli.sweeps import (
    MULTIRUN_MODE,
    check_jobs,
    check_own_outputs,
    fixed_overrides,
    sweep_jobs,
    sweeper_params,
    without_multirun_flag,
)
from nmt.errors import ConfigError, NMTError, first_line
from nmt.training.signals import StoppedAtOnce


def config_dir() -> str:
    """configs/ inside an installed wheel (nmt/configs), else the repository's top-level configs/."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"cannot find the configs folder next to {here}")


def hydra_quote(value: str) -> str:
    """Quotes free text for Hydra's override grammar so that any sentence survives verbatim.

    Unquoted override values may not contain non-ASCII letters, commas, brackets or quotes;
    inside quotes only backslashes before a quote or the end, quotes, and `${` need escaping.
    """
    value = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    value = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    return "'" + value.replace("'", "\\'") + "'"


# Paths with a `{lang}` placeholder (data=files): Hydra's grammar reads an unquoted `{` as a dict.
PATH_TEMPLATE_KEYS = ("data.files.*",)


def quote_text_overrides(argv: list[str], keys: Iterable[str], only_with: str = "") -> list[str]:
    """Rewrites `key=free text` arguments into quoted overrides (already quoted values are left as is).

    `keys` may hold glob patterns (`data.files.*`); with `only_with`, only values containing one of
    its characters are quoted (so that `data.files.test=null` stays null).
    """
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if (sep and any(fnmatch.fnmatchcase(key.lstrip("+~"), pattern) for pattern in keys)
                and not (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"")
                and (not only_with or any(char in value for char in only_with))):
            arg = f"{key}={hydra_quote(value)}"
        out.append(arg)
    return out


def exit_on_user_error(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """A user mistake becomes one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig):
        try:
            return task(cfg)
        except NMTError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except StoppedAtOnce as exc:  # SIGTERM or SIGHUP twice: their status, not Ctrl-C's
            with contextlib.suppress(OSError):  # a terminal that hung up cannot be told
                print(exc, file=sys.stderr)
            sys.exit(exc.reason.exit_status)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:
            stop_on_broken_pipe()
        except StdoutError as exc:
            stop_on_stdout_error(exc)

    return wrapper


def hydra_command(config_name: str, task: Callable[[DictConfig], object], text_keys: Iterable[str] = (),
                  usage: str = "", check_options: Callable[[DictConfig], None] | None = None,
                  checked_before: bool = False, job_outputs: Callable[[DictConfig], dict[str, tuple[str, str]]] | None = None):
    """Builds a console-script `main()` running `task` under Hydra with `config_name`; `usage` (the
    command with its required options) completes the message for a required option left out;
    `check_options` checks the values of the options before any job starts (each job of a sweep).
    `checked_before`: the command's own main() has composed and checked each job already (nmt-train,
    with check_job among its checks), so it is not done twice. `job_outputs` gives the files a job
    writes (a description -> (the option that places it, its path)): two jobs of a sweep that would write
    the same one are refused."""

    def main() -> None:
        argv = quote_text_overrides(sys.argv[1:], set(text_keys))
        sys.argv = [sys.argv[0], *quote_text_overrides(argv, PATH_TEMPLATE_KEYS, only_with="{}")]
        try:
            check_hydra_flags(sys.argv[1:])
            check_shown_config(config_name, sys.argv[1:])
            if not checked_before:
                check_command_line(config_name, sys.argv[1:], usage, check_options, job_outputs)
        except NMTError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        with stopping_on_stdout_errors():  # --help and --cfg print from Hydra itself
            hydra.main(config_path=config_dir(), config_name=config_name, version_base=None)(
                exit_on_user_error(checked_task))()

    @functools.wraps(task)  # Hydra names the job, and so the log file, after the task's module
    def checked_task(cfg: DictConfig):
        hydra_config = HydraConfig.get()  # again: another sweeper's jobs skip check_command_line
        users_config = _users_config(hydra_config, config_name)
        searchpath = searchpath_overrides(_users_folder(hydra_config), users_config is not None)  # as before Hydra
        check_config_shape(cfg, config_dir(), config_name, [*hydra_config.overrides.task, *searchpath],
                           hydra_config.runtime.choices, users_config, hydra_config)
        return task(cfg)

    return main


def check_hydra_flags(argv: list[str]) -> None:
    """ConfigError for Hydra's flags in a combination Hydra refuses with a traceback: two modes at once
    (`-m --cfg job`), or --resolve without --cfg; and what Hydra's parser answers with its usage message:
    a flag it does not know, or overrides split by a flag. Read with Hydra's own parser."""
    args, unknown = parsed_flags(argv)
    if unknown:
        raise ConfigError(unknown_arguments_message(argv, args.overrides, unknown))
    modes = [flag for flag, given in (("--run", args.run), ("--multirun", args.multirun), ("--cfg", args.cfg),
                                      ("--info", args.info is not None), ("--shell-completion", args.shell_completion))
             if given]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} cannot be given together: give one of them")
    if args.resolve and args.cfg is None and not args.help:
        raise ConfigError("--resolve goes with --cfg (or --help): --cfg job --resolve")
    check_hydra_flag_values(args)
    if args.help or args.cfg is not None:  # Hydra composes one config for them: a sweep is its traceback
        swept = [arg for arg, override in parsed_overrides(args.overrides) if override and override.is_sweep_override()]
        if swept:
            flag = "--help" if args.help else f"--cfg {args.cfg}"
            raise ConfigError(f"{flag} shows the config of one run, but {swept[0]} gives several values; give it one")


def check_shown_config(config_name: str, argv: list[str]) -> None:
    """ConfigError for a mistake in the config that --help, --hydra-help, --cfg and --info show, found as
    for a run: Hydra composes that config itself and reports a mistake in it (`--help trainer.max_step=3`)
    with a traceback or several lines. Nothing to check where none of these flags is given, or where
    Hydra alone knows the config (--config-path, --experimental-rerun, hydra.mode=MULTIRUN)."""
    args, _ = parsed_flags(argv)
    shows_config = args.help or args.hydra_help or args.cfg is not None or args.info is not None
    if not shows_config or args.config_path is not None or args.experimental_rerun is not None:
        return
    command_line = composable_command_line([*(["--config-dir", args.config_dir] if args.config_dir else []),
                                            *(["--config-name", args.config_name] if args.config_name else []),
                                            *args.overrides])
    if command_line is not None:
        overrides, users_config = command_line
        compose_checked(config_name, overrides, return_hydra_config=True, users_config=users_config)


def parsed_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The command line as Hydra's parser reads it, and the arguments it does not take. A value it
    refuses (`--cfg bogus`) is a ConfigError, where argparse prints the whole usage before its line."""
    parser = get_args_parser()

    def refuse(message: str) -> NoReturn:
        raise ConfigError(message)

    parser.error = refuse
    return parser.parse_known_args(argv)


def unknown_arguments_message(argv: list[str], overrides: list[str], unknown: list[str]) -> str:
    """For the arguments Hydra's parser does not take: a flag it does not know, or key=value overrides
    after a flag that follows others (`nmt-train experiment=smoke --cfg job seed=3`): it takes the
    overrides as one group, so the later ones are unrecognized; the message gives the command reordered."""
    flag = next((arg for arg in unknown if arg.startswith("-")), None)
    if flag is not None:
        return f"{flag} is not a flag of the command; options are key=value (--help lists them; --hydra-help, Hydra's flags)"
    flags = list(argv)
    for override in [*overrides, *unknown]:
        flags.remove(override)
    command = shlex.join([Path(sys.argv[0]).name, *flags, *overrides, *unknown])
    return (f"{unknown[0]} comes after a flag that follows other key=value overrides; give the overrides as one "
            f"group, after the flags: {command}")


SHELLS = ("bash", "zsh", "fish")  # Hydra's completion plugins


def check_hydra_flag_values(args: argparse.Namespace) -> None:
    """ConfigError for the values of Hydra's flags that Hydra reports with a traceback or a report of
    several lines: a missing --experimental-rerun file, a --shell-completion without one
    install/uninstall/query=SHELL, an absolute --config-path that is no folder."""
    rerun = args.experimental_rerun
    if rerun is not None and not Path(rerun).expanduser().is_file():
        raise ConfigError(f"--experimental-rerun {rerun}: no such file; it takes a run's .hydra/config.pickle")
    if args.shell_completion:
        commands = [o for o in args.overrides if o.partition("=")[0] in ("install", "uninstall", "query")]
        if len(commands) != 1 or len(args.overrides) != 1 or commands[0].partition("=")[2] not in SHELLS:
            raise ConfigError(f"--shell-completion takes one of install=SHELL, uninstall=SHELL or query=SHELL, "
                              f"SHELL one of {', '.join(SHELLS)} (e.g. --shell-completion install=bash); "
                              f"got {' '.join(args.overrides) or 'nothing'}")
    # Hydra reads a relative --config-path from the folder of the command's code, so only an absolute one is checked
    path = args.config_path
    if path is not None and Path(path).is_absolute() and not Path(path).is_dir():
        raise ConfigError(f"--config-path {path}: {'a file, not a folder' if Path(path).exists() else 'no such folder'}")


def searchpath_overrides(users_folder: str | None, users_config: bool) -> list[str]:
    """The override that has Hydra search the user's folder (--config-dir), as Hydra does. For a config
    of their own in place of the command's (`users_config`, composed from their folder) the package's
    folder too: their config builds on the command's (`defaults: [translate, _self_]`), and the checks
    compose the command's config with the configs of the user's folder it picks (data=my_corpus)."""
    if users_folder is None:
        return []
    folders = [users_folder, config_dir()] if users_config else [users_folder]
    return [f"hydra.searchpath=[{','.join(hydra_quote('file://' + folder) for folder in folders)}]"]


def _users_config(hydra_config: DictConfig, config_name: str) -> tuple[str, str] | None:
    """The user's own config (folder, name) that Hydra composed in place of the command's
    (--config-name in --config-dir), None when it composed the command's."""
    if hydra_config.job.config_name == config_name:
        return None
    return _users_folder(hydra_config) or config_dir(), hydra_config.job.config_name


def _users_folder(hydra_config: DictConfig) -> str | None:
    """The folder of the user's own configs (--config-dir), None without one."""
    return next((source.path for source in hydra_config.runtime.config_sources if source.provider == "command-line"),
                None)


def check_command_line(config_name: str, argv: list[str], usage: str = "",
                       check_options: Callable[[DictConfig], None] | None = None,
                       job_outputs: Callable[[DictConfig], dict[str, tuple[str, str]]] | None = None) -> None:
    """Composes the config once before Hydra does, so that a mistake on the command line is one
    line naming it: Hydra's own report spans several lines and talks about stack traces. For a sweep
    (-m), each job's config, before the first job starts.

    Also checks that no required option (`???`) is left out, which the task would only notice with a
    traceback when it reads the option; the options' values with the command's `check_options`; and
    that the run folder (hydra.run.dir, a sweep's hydra.sweep.dir) can be created, which Hydra would
    report with a traceback; and that no two jobs of a sweep write the same file (`job_outputs`).
    The flags that show the config (`--help`, `--cfg job`) are checked by check_shown_config.
    """
    written: dict[str, tuple[int, str]] = {}  # the files of the sweep's jobs checked so far
    check_each_job(config_name, argv, functools.partial(check_job, usage=usage, check_options=check_options,
                                                        job_outputs=job_outputs, written=written))


def check_job(cfg: DictConfig, job: int | None, usage: str = "",
              check_options: Callable[[DictConfig], None] | None = None,
              job_outputs: Callable[[DictConfig], dict[str, tuple[str, str]]] | None = None,
              written: dict[str, tuple[int, str]] | None = None) -> None:
    """check_command_line's checks of one job's config (`job` None for a single run)."""
    check_required(cfg, usage)
    if check_options is not None:
        check_options(cfg)
    if job is not None and job_outputs is not None and written is not None:
        check_own_outputs(job_outputs(cfg), job, written)
    if job is not None:  # Hydra creates the sweep's folder for any command (multirun.yaml)
        check_writable_folder(OmegaConf.select(cfg, "hydra.sweep.dir", default="."), "hydra.sweep.dir")
        return
    run_dir = OmegaConf.select(cfg, "hydra.run.dir", default=".")
    # Hydra creates the run folder for any command; only nmt-train (output_subdir) writes in it, so
    # an inference command may run in an existing folder it cannot write (the default, `.`)
    if cfg.hydra.output_subdir is not None or not Path(str(run_dir)).is_dir():
        check_writable_folder(run_dir, "hydra.run.dir")


def check_each_job(config_name: str, argv: list[str], check: Callable[[DictConfig, int | None], None]) -> None:
    """Composes the config of each job the command line runs, as compose_checked does (with Hydra's
    settings), and calls `check(cfg, job)` on it: job None for a plain run, 0, 1, ... for a sweep's
    jobs in Hydra's order. A mistake in some of a sweep's jobs is an error naming the first of
    them by its swept values. Nothing is checked where Hydra has the say: flags such as `--cfg job` and
    `--help`, or a sweeper other than Hydra's basic one, whose jobs only it knows."""
    check = _with_hydra_config(check)
    command_line = composable_command_line(argv)
    if command_line is not None:
        overrides, users_config = command_line
        check(compose_checked(config_name, overrides, return_hydra_config=True, users_config=users_config), None)
        return
    sweep_argv = without_multirun_flag(argv)
    command_line = None if sweep_argv is None else composable_command_line(sweep_argv)
    if command_line is None:
        return
    overrides, users_config = command_line
    _, users_folder, _ = config_flags(sweep_argv)
    try:  # the sweeper the config picks, and the sweep it declares, in what the jobs share
        params = sweeper_params(compose_checked(config_name, fixed_overrides(overrides), True, users_config))
    except (NMTError, OverrideParseException):  # reported below, in the jobs, the first with it named
        params = []
    if params is None:
        return
    try:
        jobs = sweep_jobs(config_dir(), users_folder, [*params, *overrides])
    except OverrideParseException:
        raise ConfigError(parse_error_message(overrides)) from None
    check_jobs(jobs, lambda job: compose_checked(config_name, job, True, users_config), check)


def _with_hydra_config(check: Callable[[DictConfig, int | None], None]) -> Callable[[DictConfig, int | None], None]:
    """`check` with Hydra's settings of the config it checks in place, as they are in the job, so that
    options that read them (`name=run_${hydra:job.num}`) resolve; the previous ones are put back. An
    interpolation that cannot be resolved (`name=${nope}`) is a ConfigError naming the option."""

    def checked(cfg: DictConfig, job: int | None) -> None:
        settings = HydraConfig.instance()
        previous = settings.cfg
        settings.set_config(cfg)
        try:
            check(cfg, job)
        except InterpolationResolutionError as exc:  # name=${nope}: else a traceback, here or in Hydra
            raise ConfigError(f"cannot resolve {exc.full_key}: {first_line(exc)}") from None
        finally:
            settings.cfg = previous

    return checked


CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
CONFIG_NAME_FLAGS = ("--config-name", "-cn")


def composable_command_line(argv: list[str]) -> tuple[list[str], tuple[str, str] | None] | None:
    """The command line as what composes the config Hydra will: the overrides, and the user's own
    config that replaces the command's (`--config-name NAME` in `--config-dir DIR`) as (DIR, NAME).
    `--config-dir DIR` (`-cd DIR`, a folder of the user's own configs) becomes the search path entry
    Hydra makes of it. None where another flag (`--cfg job`, `-m` or hydra.mode=MULTIRUN, `--help`)
    leaves the command line to Hydra, or a --config-name names one of the package's own configs."""
    flags = config_flags(argv)
    if flags is None:
        return None
    overrides, extra_dir, name = flags
    if name is not None:
        users, package = (Path(folder, f"{name}.yaml") for folder in (extra_dir or "", config_dir()))
        if extra_dir and users.is_file() and package.is_file():  # Hydra looks in the package's folder first
            raise ConfigError(f"--config-name {name} picks the package's {name}.yaml, not {shown_path(users)}: "
                              f"Hydra looks in the package's configs first; give yours another name (my_{name}.yaml)")
        if not (extra_dir and users.is_file()):
            if package.is_file():
                return None  # one of the package's own: Hydra composes it
            raise ConfigError(f"--config-name {name}: there is no {name}.yaml in "
                              f"{extra_dir or 'the package configs; give its folder with --config-dir'}")
    overrides += searchpath_overrides(extra_dir, name is not None)
    return overrides, ((extra_dir, name) if name is not None else None)


def config_flags(argv: list[str]) -> tuple[list[str], str | None, str | None] | None:
    """The command line as (overrides, the --config-dir folder as an absolute path, the --config-name),
    None where another flag (`--cfg job`, `-m` or hydra.mode=MULTIRUN, `--help`) is in it."""
    overrides, extra_dir, name = [], None, None
    args = iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag in (*CONFIG_DIR_FLAGS, *CONFIG_NAME_FLAGS):
            value = value if equals else next(args, "")
            if flag in CONFIG_NAME_FLAGS:
                name = value.removesuffix(".yaml").lstrip("/")  # Hydra takes `x`, `x.yaml` and `/x` alike
            elif not Path(value).expanduser().is_dir():
                what = "a file, not a folder" if Path(value).expanduser().exists() else "no such folder"
                raise ConfigError(f"{flag} {value}: {what}")
            else:
                extra_dir = str(Path(value).expanduser().absolute())  # as Hydra does, the last one counts
        elif arg.startswith("-") or MULTIRUN_MODE.fullmatch(arg):  # -m: check_each_job
            return None
        else:
            overrides.append(arg)
    return overrides, extra_dir, name


def compose_checked(config_name: str, overrides: list[str], return_hydra_config: bool = False,
                    users_config: tuple[str, str] | None = None) -> DictConfig:
    """The config `overrides` give, composed as the command `config_name` composes it, or from the
    user's own config (folder, name) in its place; a mistake in them (an unknown option or config
    group, an unparsable override, a config file that is not YAML, a shape the commands cannot take:
    nmt.cli.config_shape) is a one-line ConfigError naming it."""
    error = override_error(config_dir(), overrides)
    if error is not None:
        raise error
    folder, primary = users_config or (config_dir(), config_name)
    try:
        # the job's name as Hydra gives it (the task's module, named like the command's config), not
        # "app": a run folder may be named after it (hydra.run.dir=runs/${hydra:job.name})
        with initialize_config_dir(config_dir=folder, version_base=None, job_name=config_name):
            cfg = compose(primary, overrides=overrides, return_hydra_config=True)
    except yaml.YAMLError as exc:  # in a config of the user's own (--config-dir)
        raise ConfigError(yaml_error_message(exc)) from None
    except MissingConfigException as exc:
        raise ConfigError(missing_option_message(exc)) from None
    except OverrideParseException:
        raise ConfigError(parse_error_message(overrides)) from None
    except HydraException as exc:
        raise (_group_config_problem(config_name, overrides, users_config)
               or ConfigError(composition_message(config_dir(), config_name, exc, overrides, users_config))) from None
    except RecursionError:
        raise ConfigError(recursion_message(config_dir(), overrides, users_config)) from None
    except (ValueError, TypeError, AttributeError, AssertionError) as exc:  # Hydra's and OmegaConf's crashes
        raise ConfigError(null_option_message(overrides) or f"cannot compose the options: {first_line(exc)}") from None
    check_config_shape(cfg, config_dir(), config_name, overrides, cfg.hydra.runtime.choices, users_config)
    if not return_hydra_config:
        with read_write(cfg), open_dict(cfg):  # as compose does
            del cfg["hydra"]
    return cfg


def _group_config_problem(config_name: str, overrides: list[str],
                          users_config: tuple[str, str] | None) -> ConfigError | None:
    """What is wrong with the configs the command line picks, found without its option overrides, or
    None. A group config of the user's that puts its options at the top (`# @package _global_`) and
    builds on none of the group's leaves the group without options: `data=big data.cache_dir=x` then
    failed on data.cache_dir ("data is not an option"), where the config itself is the mistake."""
    keys = [override.partition("=")[0].lstrip("+~") for override in overrides]
    groups = tuple(f"{key.replace('/', '.')}." for key in keys if "." not in key)  # data=big -> "data."
    # Only the picked groups' own options are left out: the others may be what settles a conflict
    kept = [override for override, key in zip(overrides, keys, strict=True) if not key.startswith(groups)]
    if not groups or len(kept) == len(overrides):
        return None
    try:
        compose_checked(config_name, kept, users_config=users_config)
    except ConfigError as error:
        return error
    return None


def positive_int(text: str) -> int:
    """argparse type for the scripts' counts: an integer >= 1 (argparse names the option when it fails)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def run_script(main: Callable[[], object]) -> None:
    """Runs a script of scripts/ the way the commands run: a user mistake is one `error:` line on
    stderr and exit status 2, Ctrl-C is status 130, never a traceback."""
    with stopping_on_stdout_errors():
        exit_on_user_error(lambda _: main())(None)


def check_required(cfg: DictConfig, usage: str = "") -> None:
    """ConfigError naming the required options (`???` in the config) the command line left out."""
    body = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])  # hydra.* has its own ???
    missing = sorted(OmegaConf.missing_keys(body))
    if not missing:
        return
    names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
    verb = "are" if len(missing) > 1 else "is"
    hint = f": {usage}" if usage else f"; add {' '.join(f'{key}=...' for key in missing)}"
    raise ConfigError(f"{names} {verb} required{hint}")


def given_options(cfg: DictConfig) -> dict[str, str]:
    """The options the command line sets, each with its override as given ({"beam_size": "beam_size=3"}):
    what the user chose, which the config alone cannot tell from a default. Read from the job's Hydra
    settings: cfg's own when it was composed with them (the checks before Hydra starts), else those of
    Hydra's running job. Options set in a config of the user's own (--config-dir) are not among them."""
    task = OmegaConf.select(cfg, "hydra.overrides.task")
    if task is None:
        task = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return {override.key_or_group: arg for arg, override in parsed_overrides(list(task))
            if override is not None and not override.is_delete()}


def refuse_given_options(cfg: DictConfig, options: Sequence[str], role: str, because: str, instead: str) -> None:
    """Refuses the `options` the command line sets (given_options) that this run would ignore: they
    are `role` ("for translating"), `because` says why this run does not use them, and `instead` is
    the other way out ("or reference="). Left at their defaults they are no mistake."""
    given = [override for option, override in given_options(cfg).items() if option in options]
    if not given:
        return
    one = len(given) == 1
    listed = given[0] if one else f"{', '.join(given[:-1])} and {given[-1]}"
    raise ConfigError(f"{listed} {'is' if one else 'are'} {role}, but {because}: drop {'it' if one else 'them'} "
                      f"({instead})")


def log_to_stderr() -> None:
    """Inference commands keep stdout for results, so their messages go to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
