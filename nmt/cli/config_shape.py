"""The shape of a command's composed config, checked before any work starts, each fault in one line.

Hydra rejects an unknown key on the command line but composes other shapes without complaint:
a group of options given one value (`model.attention=5`, `trainer: 5` in a user's experiment file),
which the commands would meet with a traceback where they first read the group, and an unknown key
in an experiment (`batch_tokenz: 6000` in a user's own, under --config-dir), which nothing would
read, so the user's setting would be silently lost. A config group chosen with a number
(`trainer=5`, `data=[1]`) even crashes Hydra's compose. A user's own config for one of the groups
(`data=my_corpus`) may set the options of the package's config it builds on; others (`max_lenn`)
are as unknown as in an experiment (nmt.cli.group_configs). So is an option added on the command
line with `+`, unless an interpolation reads it.
"""

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf, open_dict

from nmt.cli.config_picks import (
    FREE_FORM,
    configs_having,
    dotted_keys,
    experiment_files,
    file_options,
    file_tree,
    free_form,
    group_options,
    not_in_pick,
    parsed_overrides,
    picked_configs,
    replaced_options,
    searchpath_of,
    shape_of,
    spelling_hint,
    within,
    without_group,
)
from nmt.cli.group_configs import check_none_passed_over, check_not_overwritten, shown_path, unread_options
from nmt.errors import ConfigError
from nmt.values import invalid

_ABSENT = object()

NO_PACKAGE_HEADER = ("experiment={experiment} puts its options under experiment.*: an experiment's first line must be "
                     "`# @package _global_`")


def check_config_shape(cfg: DictConfig, config_dir: str, config_name: str, overrides: list[str],
                       choices: Mapping[str, str | None], users_config: tuple[str, str] | None = None,
                       hydra_node: DictConfig | None = None) -> None:
    """ConfigError for the first group of options `cfg` replaced by one value, option the command's
    config has and `cfg` lacks, or option `cfg` sets that the command's configs do not have. `cfg` was
    composed from `overrides`, and `choices` are the config options it took (hydra.runtime.choices);
    its hydra node is not looked at. `users_config` (folder, name) is the user's own config that took
    the place of the command's (--config-name); `hydra_node` is Hydra's config where `cfg` has none (in
    the job), for the options its interpolations read (hydra.run.dir=runs/${tag}). The options a
    config file set for a config that the command line then replaced (plateau's patience under
    scheduler=cosine) are taken out of `cfg`."""
    check_none_passed_over(config_dir, choices, overrides)
    picked = picked_configs(config_dir, choices, searchpath_of(overrides))  # with the search path --config-dir made
    shape = shape_of(config_dir, config_name, picked)  # the configs as chosen, without an experiment
    _check_groups(cfg, {**shape_of(config_dir, config_name, ()).groups, **shape.groups})
    if not shape.keys:  # the choices alone did not compose: nothing to compare with
        return
    tree = OmegaConf.to_container(cfg, resolve=False)
    hydra_tree = tree.pop("hydra", None)  # Hydra's settings, where cfg has them (before Hydra; not in the job)
    if hydra_node is not None:
        hydra_tree = OmegaConf.to_container(hydra_node, resolve=False)
    if isinstance(tree.get("experiment"), dict):  # its options went under experiment.*
        raise ConfigError(NO_PACKAGE_HEADER.format(experiment=choices.get("experiment")))
    check_not_overwritten(config_dir, config_name, picked, shape.tree, tree)
    present = set(dotted_keys(tree))
    missing = next((key for key in shape.keys if key not in present and not free_form(key)), None)
    if missing is not None:  # a config of the user's own in place of the command's (--config-name)
        raise ConfigError(f"{missing} is missing from the config; a config of your own should build on the "
                          f"command's: defaults: [{config_name}, _self_]")
    brought = unread_options(config_dir, config_name, picked, shape.keys, present)
    known = [key for key in shape.keys if key not in brought]
    primary = users_config or (config_dir, config_name)  # the config the command line was composed from
    replaced = functools.partial(replaced_options, config_dir, config_name, primary, picked, overrides,
                                 choices.get("experiment"))
    interpolated = _interpolated(tree) + _interpolated(hydra_tree or {})
    helpers = functools.cache(lambda: _interpolated_in_files(config_dir, picked, overrides, choices.get("experiment"),
                                                            users_config))

    def unread(key: str) -> list[str]:
        """Options nothing reads now, though a config file's own: those it set for a config the command
        line replaced, and helpers whose every reader the command line set (size, for
        enc_hidden: ${size}, under model.enc_hidden=96)."""
        if key in brought:
            return []
        if any(within(key, path) or within(path, key) for path in helpers()):
            return [key]
        return replaced(key)

    leftovers, unknown = _check_known(dotted_keys(tree), known, overrides, unread, interpolated, picked)
    if unknown is not None:
        brought_by, users_file = brought.get(unknown.key, (None, None))
        where = (None if unknown.as_typed  # scheduler.patience=1: the command line's own words say it
                 else f"by {unknown.given}" if unknown.given is not None
                 else f"in {shown_path(users_file)}" if users_file is not None
                 else _config_file_setting(users_config, choices.get("experiment"), unknown.key))
        raise _unknown_option_error(config_dir, config_name, picked, known, unknown.key, where, brought_by)
    for key in leftovers:  # nothing reads them; the run's config.yaml need not show them either
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            with open_dict(node):
                del node[leaf]


def known_options(config_dir: str, config_name: str) -> list[str]:
    """Every option of the command's config as it comes, dotted (for "did you mean" hints)."""
    return shape_of(config_dir, config_name, ()).keys


def _check_groups(cfg: DictConfig, groups: dict[str, str]) -> None:
    for path, first_option in sorted(groups.items()):  # parents first
        value = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT and not isinstance(value, DictConfig):
            raise invalid(path, f"a group of options such as {path}.{first_option}=...", value)


class _Unknown(NamedTuple):
    key: str
    given: str | None  # the command line's override that set it, if one did
    as_typed: bool  # that override is `key=value` for this very key


# A node interpolation, `${optimizer.lr}`, or the node oc.select reads (`${oc.select:base_lr,1e-3}`); other
# resolvers (`${oc.env:HOME}`) and relative paths are left out.
INTERPOLATION = re.compile(r"\$\{(?:oc\.select:)?([A-Za-z_][\w-]*(?:\.[\w-]+)*)[,}]")


def _check_known(keys: list[str], known: list[str], overrides: list[str], replaced_options: Callable[[str], list[str]],
                 interpolated: list[str], picked: tuple[str, ...]) -> tuple[list[str], _Unknown | None]:
    """An option the configs do not have is unknown, unless an interpolation reads it (`lr: ${base_lr}`)
    or a config file set it for a config that the command line replaced (`replaced_options`:
    m30k_deen_best's plateau patience under scheduler=cosine), which is no mistake of the user's.
    Returns those, and the first unknown one. Adding it with `+` does not make it known: nothing would
    read `+trainer.max_step=3`; nor does setting an option of the replaced config on the command line
    (scheduler=cosine scheduler.patience=1)."""
    groups = {choice.removeprefix("+").partition("=")[0] for choice in picked}
    parsed = [(arg, override) for arg, override in parsed_overrides(overrides)  # options, not picks of configs
              if override is not None and override.key_or_group not in groups]
    leftovers = []
    for key in keys:
        if (key in known or free_form(key)
                or any(within(key, path) or within(path, key) for path in interpolated)):
            continue
        arg, override = next(((arg, override) for arg, override in parsed if override.key_or_group == key
                              or (within(key, override.key_or_group) and isinstance(override.value(), dict))),
                             (None, None))
        if override is None and key in replaced_options(key):
            if not any(within(key, root) for root in leftovers):
                leftovers.append(key)
            continue
        as_typed = override is not None and override.key_or_group == key and not (override.is_add()
                                                                                   or override.is_force_add())
        return leftovers, _Unknown(key, arg, as_typed)
    return leftovers, None


def _interpolated_in_files(config_dir: str, picked: tuple[str, ...], overrides: list[str], experiment: object,
                           users_config: tuple[str, str] | None) -> list[str]:
    """The options that the interpolations in the experiments' files and the user's own config read."""
    files = experiment_files(config_dir, picked, overrides, experiment)
    if users_config is not None:
        files.append(Path(*users_config).with_suffix(".yaml"))
    return [path for file in files for path in _interpolated(file_tree(file))]


def _interpolated(tree: dict) -> list[str]:
    """The options that the interpolations among the values of `tree` read."""
    values = [tree]
    paths = []
    while values:
        value = values.pop()
        if isinstance(value, dict | list):
            values += value.values() if isinstance(value, dict) else value
        elif isinstance(value, str):
            paths += INTERPOLATION.findall(value)
    return paths


def _unknown_option_error(config_dir: str, config_name: str, picked: tuple[str, ...], known: list[str], key: str,
                          where: str | None, brought_by: str | None) -> ConfigError:
    """The error for `key`, which the command's configs as `picked` do not have (`known`), set `where`
    (None: as typed on the command line): naming the configs of its group that have it
    (`scheduler=plateau` for patience under cosine), or the option it may be a misspelling of.
    `brought_by` is the group of the user's own config that alone brings it (data=my_corpus), if one does."""
    subject = key if where is None else f"{key}, set {where},"
    seen_with = picked  # which configs have it is judged without the user's config that brings it into every one
    if brought_by is not None:
        seen_with = without_group(picked, brought_by)
    owners = configs_having(config_dir, config_name, seen_with, key)
    if owners:
        return ConfigError(not_in_pick(subject, picked, owners))
    hint = spelling_hint(key, [*known, *group_options(config_dir, config_name, seen_with, key)])
    return ConfigError(f"{subject} is not an option{hint}")


def _config_file_setting(users_config: tuple[str, str] | None, experiment: object, key: str) -> str:
    """Where a config file set `key`, for its error: the user's own config (--config-name) when its
    file sets it, else the experiment."""
    if users_config is not None and key in file_options(path := Path(*users_config).with_suffix(".yaml")):
        return f"in {shown_path(path)}"
    return "in a config file" + (f" (experiment={experiment})" if isinstance(experiment, str) else "")


def override_error(config_dir: str, overrides: list[str]) -> ConfigError | None:
    """The error for an override whose shape the commands cannot take, found before Hydra composes
    (which crashes on some of them); None when there is none.

    A config group (`model/attention`, `trainer`) takes the name of one of its configs, not a
    number (`trainer=5`) or a list (`model/attention=[dot,general]` would merge two attentions; only
    experiments combine). An option cannot be removed (`~device`): every one is read, and Hydra
    cannot even remove one whose value is null. Split names under data.files and data.splits can,
    and `~experiment` takes the optional experiment out of the defaults, as Hydra allows.
    """
    for arg, override in parsed_overrides(overrides):
        if override is None:
            continue
        key = override.key_or_group
        if not key:  # `=2`: else taken for a config group named "" (the configs folder itself)
            return ConfigError(f"{arg}: the option's name is missing before the '='; write key=value")
        if override.is_delete():
            if key != "experiment" and not (free_form(key) and key not in FREE_FORM):
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


