"""The shape of a command's composed config, checked before any work starts, each fault in one line.

Hydra rejects an unknown key on the command line but composes other shapes without complaint:
a group of options given one value (`model.attention=5`, `trainer: 5` in a user's experiment file),
which the commands would meet with a traceback where they first read the group, and an unknown key
in an experiment (`batch_tokenz: 6000` in a user's own, under --config-dir), which nothing would
read, so the user's setting would be silently lost. A config group chosen with a number
(`trainer=5`, `data=[1]`) even crashes Hydra's compose. The options a user's own config of another
group (`data=my_corpus`) brings are taken as known: they define that option.
"""

import difflib
import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict

from nmt.errors import ConfigError
from nmt.values import invalid

# Mappings whose keys the user names (split -> file pattern or hub split): any key is known there.
FREE_FORM = ("data.files", "data.splits")

_ABSENT = object()

NO_PACKAGE_HEADER = ("experiment={experiment} puts its options under experiment.*: an experiment's first line must be "
                     "`# @package _global_`")


def check_config_shape(cfg: DictConfig, config_dir: str, config_name: str, overrides: list[str],
                       choices: Mapping[str, str | None], users_config: tuple[str, str] | None = None) -> None:
    """ConfigError for the first group of options `cfg` replaced by one value, option the command's
    config has and `cfg` lacks, or option `cfg` sets that the command's configs do not have. `cfg` was
    composed from `overrides`, and `choices` are the config options it took (hydra.runtime.choices);
    its hydra node is not looked at. `users_config` (folder, name) is the user's own config that took
    the place of the command's (--config-name). The options a config file set for a config that the
    command line then replaced (plateau's patience under scheduler=cosine) are taken out of `cfg`."""
    searchpath = tuple(arg for arg in overrides if arg.startswith("hydra.searchpath="))  # --config-dir
    picked = searchpath + tuple(f"{group}={option}" for group, option in choices.items()
                                if option is not None and group != "experiment" and not group.startswith("hydra"))
    shape = _config_shape(config_dir, config_name, picked)  # the configs as chosen, without an experiment
    _check_groups(cfg, {**_config_shape(config_dir, config_name, ()).groups, **shape.groups})
    if not shape.keys:  # the choices alone did not compose: nothing to compare with
        return
    tree = _without_hydra(cfg)
    if isinstance(tree.get("experiment"), dict):  # its options went under experiment.*
        raise ConfigError(NO_PACKAGE_HEADER.format(experiment=choices.get("experiment")))
    present = set(dotted_keys(tree))
    missing = next((key for key in shape.keys if key not in present and not _free_form(key)), None)
    if missing is not None:  # a config of the user's own in place of the command's (--config-name)
        raise ConfigError(f"{missing} is missing from the config; a config of your own should build on the "
                          f"command's: defaults: [{config_name}, _self_]")
    primary = users_config or (config_dir, config_name)  # the config the command line was composed from
    leftovers, unknown = _check_known(dotted_keys(tree), shape.keys, overrides,
                                      functools.partial(_replaced_options, config_dir, config_name, primary, picked,
                                                        overrides, choices.get("experiment")))
    if unknown is not None:
        where = (f"by {unknown.given}" if unknown.given is not None
                 else _config_file_setting(users_config, choices.get("experiment"), unknown.key))
        raise _unknown_option_error(unknown, where, picked, _owners(config_dir, config_name, picked, unknown.key))
    for key in leftovers:  # nothing reads them; the run's config.yaml need not show them either
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            with open_dict(node):
                del node[leaf]


def known_options(config_dir: str, config_name: str) -> list[str]:
    """Every option of the command's config as it comes, dotted (for "did you mean" hints)."""
    return _config_shape(config_dir, config_name, ()).keys


def _check_groups(cfg: DictConfig, groups: dict[str, str]) -> None:
    for path, first_option in sorted(groups.items()):  # parents first
        value = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT and not isinstance(value, DictConfig):
            raise invalid(path, f"a group of options such as {path}.{first_option}=...", value)


class _Unknown(NamedTuple):
    key: str
    close: str | None  # the known option it is most like
    given: str | None  # the override that set it (a mapping given on the command line: input='{a: 1}')


def _check_known(keys: list[str], known: list[str], overrides: list[str],
                 replaced_options: Callable[[str], list[str]]) -> tuple[list[str], _Unknown | None]:
    """An option the configs do not have is unknown, unless the command line added it with `+` or it
    is an option of a config the command line replaced (`replaced_options`). Returns those that a
    config file set for a replaced config, and the first unknown one; one that the command line sets
    is the user's own setting, left for the command to refuse (model/attention=dot
    model.attention.num_heads=2)."""
    parsed = [(arg, override) for arg, override in _parsed(overrides) if override is not None]
    added = [override.key_or_group for _, override in parsed if override.is_add() or override.is_force_add()]
    leftovers = []
    for key in keys:
        if key in known or _free_form(key) or any(_within(key, root) for root in added):
            continue
        replaced = replaced_options(key)
        if key in replaced:
            if not any(_within(key, root) for root in [*leftovers, *_set_by(key, parsed)]):
                leftovers.append(key)
            continue
        close = difflib.get_close_matches(key, [*known, *replaced], n=1)
        given = next((arg for arg, override in parsed
                      if _within(key, override.key_or_group) and isinstance(override.value(), dict)), None)
        return leftovers, _Unknown(key, close[0] if close else None, given)
    return leftovers, None


def _unknown_option_error(unknown: _Unknown, where: str, picked: tuple[str, ...], owners: list[str]) -> ConfigError:
    """`where` says what set it; `owners` are the configs of its group, other than the one `picked`,
    that have it (`scheduler=plateau` for patience under cosine)."""
    if owners:
        return ConfigError(_not_in_pick(f"{unknown.key}, set {where},", picked, owners))
    hint = f" (did you mean {unknown.close}?)" if unknown.close else ""
    return ConfigError(f"{unknown.key}, set {where}, is not an option{hint}")


def _owners(config_dir: str, config_name: str, picked: tuple[str, ...], key: str) -> list[str]:
    """The configs of the groups `key` lies in that have it, other than those `picked`."""
    owners = []
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        group = "/".join(parts[:depth])
        others = tuple(choice for choice in picked if not choice.startswith(f"{group}="))
        names = sorted({path.stem for folder in _config_folders(config_dir, picked)
                        for path in Path(folder, group).glob("*.yaml") if not path.stem.startswith("_")})
        owners += [f"{group}={name}" for name in names if f"{group}={name}" not in picked
                   and key in _config_shape(config_dir, config_name, (*others, f"{group}={name}")).keys]
    return owners


def unpicked_option_message(config_dir: str, config_name: str, overrides: list[str], key: str,
                            primary: tuple[str, str] | None = None) -> str | None:
    """For a command line that sets an option of a config its group does not pick
    (`model.attention.num_heads=8` under additive): which config has it and how to pick it. None when
    no other config of its groups has it. `primary` is the user's own config (folder, name) from
    --config-name, if any."""
    parsed = [(arg, override) for arg, override in _parsed(overrides) if override is not None]
    groups_chosen = [override.key_or_group for _, override in parsed if Path(config_dir, override.key_or_group).is_dir()]
    rest = tuple(arg for arg, override in parsed  # the command line without the overrides that set the key
                 if override.key_or_group in groups_chosen or not (_within(override.key_or_group, key)
                                                                   or _within(key, override.key_or_group)))
    choices = _choices(*(primary or (config_dir, config_name)), rest)
    if not choices:
        return None
    searchpath = tuple(arg for arg in rest if arg.startswith("hydra.searchpath="))
    picked = searchpath + tuple(f"{group}={option}" for group, option in choices.items()
                                if option is not None and group != "experiment" and not group.startswith("hydra"))
    owners = _owners(config_dir, config_name, picked, key)
    if not owners:
        return None
    message = _not_in_pick(key, picked, owners)
    group = owners[0].partition("=")[0]
    return message if group in groups_chosen else f"{message}: add {owners[0]} to the command line"


def _not_in_pick(key: str, picked: tuple[str, ...], owners: list[str]) -> str:
    """`scheduler.patience is not an option of scheduler=cosine; scheduler=plateau has it`"""
    group = owners[0].partition("=")[0]
    chosen = next((choice for choice in picked if choice.startswith(f"{group}=")), f"the {group} picked")
    return f"{key} is not an option of {chosen}; {' and '.join(owners)} {'have' if len(owners) > 1 else 'has'} it"


def _config_file_setting(users_config: tuple[str, str] | None, experiment: object, key: str) -> str:
    """Where a config file set `key`, for its error: the user's own config (--config-name) when its
    file sets it, else the experiment."""
    if users_config is not None:
        path = Path(*users_config).with_suffix(".yaml")
        try:  # it composed already, so it is YAML; it may still hold no mapping
            tree = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            tree = None
        if isinstance(tree, dict) and key in dotted_keys(tree):
            return f"in {_shown_path(path)}"
    return "in a config file" + (f" (experiment={experiment})" if isinstance(experiment, str) else "")


def _shown_path(path: Path) -> str:
    """`path` relative to the working folder where it lies within it, as the user likely typed it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _set_by(key: str, parsed: list[tuple[str, Override]]) -> list[str]:
    """The keys of the command line's overrides that set `key` (itself, or a mapping holding it)."""
    return [override.key_or_group for _, override in parsed
            if override.key_or_group == key or (_within(key, override.key_or_group) and isinstance(override.value(), dict))]


def _replaced_options(config_dir: str, config_name: str, primary: tuple[str, str], picked: tuple[str, ...],
                      overrides: list[str], experiment: object, key: str) -> list[str]:
    """The options of the configs that the groups `key` lies in had before the command line replaced
    them: the pick of the config it was composed from (`primary`: the command's, or the user's own
    from --config-name), or an experiment's pick. An experiment sets options of the configs
    it picks (m30k_deen_best: plateau's patience); a command line that picks another config
    (scheduler=cosine) leaves them merged in and unread, which is no mistake of the user's. An
    option of a config nothing picked (cosine's total_steps while plateau stays, or plateau's
    patience in an experiment that picks cosine) would be lost, and stays unknown. Composed, and
    the experiments' files read, only for a key not known otherwise."""
    experiments = _with_bases(_experiments(overrides, experiment), _config_folders(config_dir, picked))
    searchpath = tuple(choice for choice in picked if choice.startswith("hydra.searchpath="))
    # Whose picks count: each experiment's (with those it builds on), and the primary config's own
    # where no experiment could have replaced them.
    picks_of = [(f"experiment={name}",) for name in experiments]
    if not experiments or primary != (config_dir, config_name):
        picks_of.append(())
    options = []
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        group = "/".join(parts[:depth])
        if not Path(config_dir, group).is_dir():
            continue
        others = tuple(choice for choice in picked if not choice.startswith(f"{group}="))
        earlier = {_choices(*primary, (*searchpath, *extra)).get(group) for extra in picks_of}
        for option in sorted(option for option in earlier if isinstance(option, str)):
            options += _config_shape(config_dir, config_name, (*others, f"{group}={option}")).keys
    return options


def _experiments(overrides: list[str], chosen: object) -> tuple[str, ...]:
    """The experiments the command line names (experiment=a or experiment=[a,b]), or that a user's
    own config picked."""
    names = [chosen] if isinstance(chosen, str) else []
    for _, override in _parsed(overrides):
        if override is not None and override.key_or_group == "experiment" and not override.is_delete():
            value = override.value()
            names += [value] if isinstance(value, str) else [name for name in value or [] if isinstance(name, str)]
    return tuple(dict.fromkeys(names))


def _with_bases(names: tuple[str, ...], folders: list[Path]) -> tuple[str, ...]:
    """The experiments and those they build on (`defaults: [m30k_deen_best, ...]`), as found in
    `folders`: an experiment's options for its base's picks are no mistake either."""
    found, pending = list(names), list(names)
    while pending:
        name = pending.pop(0)
        path = next((folder / "experiment" / f"{name}.yaml" for folder in folders
                     if (folder / "experiment" / f"{name}.yaml").is_file()), None)
        if path is None:
            continue
        try:  # it composed already, so it is YAML; its defaults may still be of any shape
            defaults = yaml.safe_load(path.read_text(encoding="utf-8")).get("defaults") or []
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            continue
        bases = [entry.removeprefix("/experiment/") for entry in defaults if isinstance(entry, str)
                 and entry != "_self_" and ("/" not in entry or entry.startswith("/experiment/"))]
        pending += [base for base in bases if base not in found]
        found += [base for base in bases if base not in found]
    return tuple(found)


def _config_folders(config_dir: str, picked: tuple[str, ...]) -> list[Path]:
    """The user's config folders (the search path --config-dir made), then the package's."""
    folders = []
    for _, override in _parsed([choice for choice in picked if choice.startswith("hydra.searchpath=")]):
        value = override.value() if override is not None else []
        folders += [Path(entry.removeprefix("file://")) for entry in value if isinstance(entry, str)]
    return [*folders, Path(config_dir)]


def _free_form(key: str) -> bool:
    return any(_within(key, root) for root in FREE_FORM)


def _without_hydra(cfg: DictConfig) -> dict:
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    return tree


def _within(key: str, root: str) -> bool:
    return key == root or key.startswith(f"{root}.")


def override_error(config_dir: str, overrides: list[str]) -> ConfigError | None:
    """The error for an override whose shape the commands cannot take, found before Hydra composes
    (which crashes on some of them); None when there is none.

    A config group (`model/attention`, `trainer`) takes the name of one of its configs, not a
    number (`trainer=5`) or a list (`model/attention=[dot,general]` would merge two attentions; only
    experiments combine). An option cannot be removed (`~device`): every one is read, and Hydra
    cannot even remove one whose value is null. Split names under data.files and data.splits can,
    and `~experiment` takes the optional experiment out of the defaults, as Hydra allows.
    """
    for arg, override in _parsed(overrides):
        if override is None:
            continue
        key = override.key_or_group
        if override.is_delete():
            if key != "experiment" and not any(key.startswith(f"{root}.") for root in FREE_FORM):
                return ConfigError(f"{arg}: options cannot be removed; give {key}=VALUE instead")
            continue
        folder = Path(config_dir, key)
        if not folder.is_dir():
            continue
        value = override.value()
        if isinstance(value, str) or (key == "experiment" and isinstance(value, list)
                                      and all(isinstance(name, str) for name in value)):
            continue
        options = ", ".join(sorted(path.stem for path in folder.glob("*.yaml") if not path.stem.startswith("_")))
        return ConfigError(f"{arg} is not an option; {key} takes the name of one of its configs: {options}")
    return None


def _parsed(overrides: list[str]) -> Iterator[tuple[str, Override | None]]:
    """Each override with its parse, None for an unparsable one (compose names those)."""
    parser = OverridesParser.create()
    for arg in overrides:
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException:
            override = None
        yield arg, override


class _Shape:
    def __init__(self, tree: dict):
        self.keys = dotted_keys(tree)  # every option, dotted
        self.groups = {}  # dotted path of every group of options -> the name of its first option
        nodes = [("", tree)]
        while nodes:
            prefix, node = nodes.pop()
            for key, value in node.items():
                if isinstance(value, dict) and value:
                    self.groups[f"{prefix}{key}"] = str(next(iter(value)))
                    nodes.append((f"{prefix}{key}.", value))


@functools.cache
def _config_shape(config_dir: str, config_name: str, choices: tuple[str, ...]) -> _Shape:
    """The options of the command's config with these config choices; none when the choices do not
    compose (the command says why)."""
    cfg = _composed(config_dir, config_name, choices)
    return _Shape(OmegaConf.to_container(cfg, resolve=False) if cfg is not None else {})


@functools.cache
def _choices(config_dir: str, config_name: str, overrides: tuple[str, ...]) -> dict:
    """The config each group takes with these overrides (hydra.runtime.choices); empty when they do
    not compose."""
    cfg = _composed(config_dir, config_name, overrides, return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.runtime.choices) if cfg is not None else {}


def _composed(config_dir: str, config_name: str, overrides: tuple[str, ...],
              return_hydra_config: bool = False) -> DictConfig | None:
    try:
        if GlobalHydra.instance().is_initialized():  # inside the command's hydra.main: its search path
            return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    except (HydraException, ValueError, TypeError):  # Hydra's own errors, and its crashes on bad choices
        return None


def dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    """Every key of a nested dict, dotted (`model`, `model.attention`, `model.attention.name`)."""
    keys = []
    for key, value in tree.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys
