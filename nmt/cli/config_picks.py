"""Which config each group of a command's config takes (`scheduler=plateau`), and the options each
config brings, composed with Hydra and cached: what nmt.cli.config_shape compares a composed config
with, and where it looks for the config an unknown option belongs to (`scheduler.patience` is
plateau's) or the config an experiment picked before the command line replaced it.
"""

import difflib
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf


def picked_configs(config_dir: str, choices: Mapping[str, str | None], searchpath: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The search path overrides (--config-dir), then `group=option` for each config group's choice
    (hydra.runtime.choices), leaving out the experiment and Hydra's own groups; `+group=option` for a
    group of the user's own, which the command's config does not have (+preset=fast)."""
    return searchpath + tuple(f"{'' if Path(config_dir, group).is_dir() else '+'}{group}={option}"
                              for group, option in choices.items()
                              if option is not None and group != "experiment" and not group.startswith("hydra"))


def configs_having(config_dir: str, config_name: str, picked: tuple[str, ...], key: str) -> list[str]:
    """The configs of the groups `key` lies in that have it, other than those `picked`."""
    return [choice for choice, options in _group_configs(config_dir, config_name, picked, key)
            if choice not in picked and key in options]


def group_options(config_dir: str, config_name: str, picked: tuple[str, ...], key: str) -> list[str]:
    """Every option of every config of the groups `key` lies in (for "did you mean" hints)."""
    return [option for _, options in _group_configs(config_dir, config_name, picked, key) for option in options]


def _group_configs(config_dir: str, config_name: str, picked: tuple[str, ...],
                   key: str) -> Iterator[tuple[str, list[str]]]:
    """(`group=name`, its options) for each config the package ships for the groups `key` lies in,
    with the other groups as `picked`. A user's own configs of a group have no options the package's
    lack (nmt.cli.group_configs), so only a misspelling would be found among theirs."""
    for group in groups_of(key):
        for name, options in shipped_group_shapes(config_dir, config_name, picked, group).items():
            yield f"{group}={name}", options


def shipped_group_shapes(config_dir: str, config_name: str, picked: tuple[str, ...], group: str) -> dict[str, list[str]]:
    """For each config the package ships for `group` (none for a group of the user's own): the
    options of the command's config with it in place of the one picked."""
    others = without_group(picked, group)
    names = sorted(path.stem for path in Path(config_dir, group).glob("*.yaml") if not path.stem.startswith("_"))
    return {name: shape_of(config_dir, config_name, (*others, f"{group}={name}")).keys for name in names}


def unpicked_option_message(config_dir: str, config_name: str, overrides: list[str], key: str,
                            primary: tuple[str, str] | None = None) -> str | None:
    """For a command line that sets an option of a config its group does not pick
    (`model.attention.num_heads=8` under additive): which config has it and how to pick it. None when
    no other config of its groups has it. `primary` is the user's own config (folder, name) from
    --config-name, if any."""
    parsed = [(arg, override) for arg, override in parsed_overrides(overrides) if override is not None]
    groups_chosen = [override.key_or_group for _, override in parsed if Path(config_dir, override.key_or_group).is_dir()]
    rest = tuple(arg for arg, override in parsed  # the command line without the overrides that set the key
                 if override.key_or_group in groups_chosen or not (within(override.key_or_group, key)
                                                                   or within(key, override.key_or_group)))
    choices = _group_choices(*(primary or (config_dir, config_name)), rest)
    if not choices:
        return None
    picked = picked_configs(config_dir, choices, searchpath_of(rest))
    owners = configs_having(config_dir, config_name, picked, key)
    if not owners:
        return None
    message = not_in_pick(key, picked, owners)
    group = owners[0].partition("=")[0]
    return message if group in groups_chosen else f"{message}: add {owners[0]} to the command line"


def not_in_pick(key: str, picked: tuple[str, ...], owners: list[str]) -> str:
    """`scheduler.patience is not an option of scheduler=cosine; scheduler=plateau has it`"""
    group = owners[0].partition("=")[0]
    chosen = next((choice for choice in picked if choice.startswith(f"{group}=")), f"the {group} picked")
    return f"{key} is not an option of {chosen}; {' and '.join(owners)} {'have' if len(owners) > 1 else 'has'} it"


def replaced_options(config_dir: str, config_name: str, primary: tuple[str, str], picked: tuple[str, ...],
                     overrides: list[str], experiment: object, key: str) -> list[str]:
    """The options of the configs that the groups `key` lies in had, for the config file that set it,
    before the command line replaced them. That file is an experiment (its pick, or the pick of one
    it builds on), or the user's own config from --config-name (`primary`, otherwise the command's
    config). An experiment sets options of the configs it picks (m30k_deen_best: plateau's
    patience); a command line that picks another config (scheduler=cosine) leaves them merged in and
    unread, which is no mistake of the user's. An option of a config nothing picked (cosine's
    total_steps while plateau stays, or plateau's patience in an experiment that itself picks
    cosine) would be lost, and stays unknown. Composed, and the experiments' files read, only for a
    key not known otherwise."""
    folders = config_folders(config_dir, picked)
    experiments = _with_bases(_experiments(overrides, experiment), folders)
    searchpath = searchpath_of(picked)
    # Whose picks count: those of the files that set the key themselves; where none of them does (a
    # user's config of another group set it), every experiment's and the primary config's.
    picks_of = [(f"experiment={name}",) for name in experiments
                if key in file_options(_experiment_file(name, folders))]
    if primary != (config_dir, config_name) and key in file_options(Path(*primary).with_suffix(".yaml")):
        picks_of.append(())
    picks_of = picks_of or [*((f"experiment={name}",) for name in experiments), ()]
    options = []
    for group in groups_of(key):
        if not Path(config_dir, group).is_dir():
            continue
        others = without_group(picked, group)
        earlier = {_group_choices(*primary, (*searchpath, *extra)).get(group) for extra in picks_of}
        for option in sorted(option for option in earlier if isinstance(option, str)):
            options += shape_of(config_dir, config_name, (*others, f"{group}={option}")).keys
    return options


def spelling_hint(key: str, candidates: list[str]) -> str:
    """` (did you mean trainer.max_steps?)` for the candidate closest to `key`, empty where none is
    close. Neither the key itself nor a group of options holding it (`trainer` for trainer.foo) is
    offered."""
    groups = {candidate.rpartition(".")[0] for candidate in candidates}
    close = difflib.get_close_matches(key, [candidate for candidate in candidates if candidate != key
                                            and not (within(key, candidate) and candidate in groups)], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def without_group(picked: tuple[str, ...], group: str) -> tuple[str, ...]:
    """`picked` without the choice of `group` (`group=name` or, for a group of the user's own, `+group=name`)."""
    return tuple(choice for choice in picked if choice.removeprefix("+").partition("=")[0] != group)


def groups_of(key: str) -> Iterator[str]:
    """The config groups `key` may lie in, innermost first (model.attention.num_heads: model/attention, model)."""
    parts = key.split(".")
    return ("/".join(parts[:depth]) for depth in range(len(parts) - 1, 0, -1))


def _experiments(overrides: list[str], chosen: object) -> tuple[str, ...]:
    """The experiments the command line names (experiment=a or experiment=[a,b]), or that a user's
    own config picked."""
    names = [chosen] if isinstance(chosen, str) else []
    for _, override in parsed_overrides(overrides):
        if override is not None and override.key_or_group == "experiment" and not override.is_delete():
            value = override.value()
            names += [value] if isinstance(value, str) else [name for name in value or [] if isinstance(name, str)]
    return tuple(dict.fromkeys(names))


def _with_bases(names: tuple[str, ...], folders: list[Path]) -> tuple[str, ...]:
    """The experiments and those they build on (`defaults: [m30k_deen_best, ...]`), as found in
    `folders`: an experiment's options for its base's picks are no mistake either."""
    found, pending = list(names), list(names)
    while pending:
        defaults = file_tree(_experiment_file(pending.pop(0), folders)).get("defaults")
        bases = [entry.removeprefix("/experiment/") for entry in defaults if isinstance(entry, str)
                 and entry != "_self_" and ("/" not in entry or entry.startswith("/experiment/"))
                 ] if isinstance(defaults, list) else []
        pending += [base for base in bases if base not in found]
        found += [base for base in bases if base not in found]
    return tuple(found)


def experiment_files(config_dir: str, picked: tuple[str, ...], overrides: list[str], experiment: object) -> list[Path]:
    """The files of the experiments the command line or a user's own config picked, and of those
    they build on."""
    folders = config_folders(config_dir, picked)
    return [path for name in _with_bases(_experiments(overrides, experiment), folders)
            if (path := _experiment_file(name, folders)) is not None]


def _experiment_file(name: str, folders: list[Path]) -> Path | None:
    return next((path for path in (folder / "experiment" / f"{name}.yaml" for folder in folders) if path.is_file()),
                None)


def file_options(path: Path | None) -> list[str]:
    """The options a config file sets itself, dotted, leaving out its defaults list."""
    tree = file_tree(path)
    tree.pop("defaults", None)
    return dotted_keys(tree)


def file_tree(path: Path | None) -> dict:
    """A config file's YAML, empty where there is none or it holds no mapping (it composed already,
    so it is YAML; its parts may still be of any shape)."""
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        tree = None
    return tree if isinstance(tree, dict) else {}


def searchpath_of(overrides: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The search path overrides among `overrides` (those --config-dir made)."""
    return tuple(arg for arg in overrides if arg.startswith("hydra.searchpath="))


def config_folders(config_dir: str, picked: tuple[str, ...]) -> list[Path]:
    """The user's config folders (the search path --config-dir made; it holds the folder of their own
    config from --config-name too), then the package's."""
    folders = []
    for _, override in parsed_overrides(list(searchpath_of(picked))):
        value = override.value() if override is not None else []
        folders += [Path(entry.removeprefix("file://")) for entry in value if isinstance(entry, str)]
    return [*dict.fromkeys([*folders, Path(config_dir)])]


# Mappings whose keys the user names (split -> file pattern or hub split): any key is known there.
FREE_FORM = ("data.files", "data.splits")


def free_form(key: str) -> bool:
    return any(within(key, root) for root in FREE_FORM)


def within(key: str, root: str) -> bool:
    return key == root or key.startswith(f"{root}.")


def parsed_overrides(overrides: list[str]) -> Iterator[tuple[str, Override | None]]:
    """Each override with its parse, None for an unparsable one (compose names those)."""
    parser = OverridesParser.create()
    for arg in overrides:
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException:
            override = None
        yield arg, override


class Shape:
    def __init__(self, tree: dict):
        self.tree = tree  # the composed config, interpolations unresolved
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
def shape_of(config_dir: str, config_name: str, choices: tuple[str, ...]) -> Shape:
    """The options of the command's config with these config choices; none when the choices do not
    compose (the command says why)."""
    cfg = _composed(config_dir, config_name, choices)
    return Shape(OmegaConf.to_container(cfg, resolve=False) if cfg is not None else {})


@functools.cache
def _group_choices(config_dir: str, config_name: str, overrides: tuple[str, ...]) -> dict:
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
