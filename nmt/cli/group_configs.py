"""A user's own configs for the config groups (`data=my_corpus` from my_configs/data/my_corpus.yaml,
`+preset=fast` from my_configs/preset/fast.yaml): which of the package's configs each builds on, and
the options it brings that nothing reads. nmt.cli.config_shape refuses those as it refuses an
experiment's unknown options, and the ways a user's config is silently lost: one named like the
package's (Hydra takes the package's), and a value a config merged after it sets back.
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from nmt.cli.config_picks import (
    config_folders,
    dotted_keys,
    file_options,
    file_tree,
    free_form,
    groups_of,
    searchpath_of,
    shape_of,
    shipped_group_shapes,
    within,
    without_group,
)
from nmt.errors import ConfigError


class UsersGroupConfig(NamedTuple):
    group: str  # data, model/attention; or one the package does not have (preset)
    path: Path  # the picked file
    files: list[Path]  # it, then the user's files of the group it builds on (defaults: [my_base, _self_])
    bases: list[str]  # the package's configs of the group it builds on (files), shared bases (_common) included

    def file_setting(self, key: str) -> Path:
        """The first of `files` that sets `key` itself (under its group, or at the top of the config)."""
        relative = key.removeprefix(self.group.replace("/", ".") + ".")
        return next((path for path in self.files if {key, relative} & set(file_options(path))), self.path)


def users_folders(config_dir: str, overrides: tuple[str, ...]) -> list[Path]:
    """The user's config folders (--config-dir) in the search path among `overrides`, without the package's."""
    return [folder for folder in config_folders(config_dir, overrides) if folder != Path(config_dir)]


def users_group_configs(config_dir: str, picked: tuple[str, ...]) -> Iterator[UsersGroupConfig]:
    """Each config `picked` (`group=name`, `+group=name`) from the user's folders that the package does
    not ship."""
    folders = users_folders(config_dir, picked)
    for choice in picked:
        group, _, name = choice.removeprefix("+").partition("=")
        if group.startswith("hydra.") or Path(config_dir, group, f"{name}.yaml").is_file():
            continue
        path = _users_file(folders, group, name)
        if path is not None:
            yield UsersGroupConfig(group, path, *_built_on(config_dir, folders, group, path))


def check_none_passed_over(config_dir: str, choices: Mapping[str, str | None], overrides: list[str]) -> None:
    """ConfigError for a config of the user's own named like the package's config that is picked
    (data=multi30k, with my_configs/data/multi30k.yaml): Hydra searches the package's configs first
    and takes theirs, so the user's would be silently passed over. `overrides` (the command line's)
    tell a pick the user typed from the default's or an experiment's."""
    for group, name, path in passed_over_files(config_dir, searchpath_of(overrides)):
        if group != "." and choices.get(group) == name:
            typed = any(override.lstrip("+~").startswith(f"{group}=") for override in overrides)
            picks = "picks" if typed else "(the default, or an experiment's pick) takes"
            raise ConfigError(f"{group}={name} {picks} the package's config, not {shown_path(path)}: Hydra looks in "
                              f"the package's configs first; give yours another name ({group}/my_{name}.yaml) and "
                              f"pick it with {group}=my_{name}")


def passed_over_files(config_dir: str, searchpath: tuple[str, ...]) -> Iterator[tuple[str, str, Path]]:
    """(group, name, path) of each config in the user's folders (--config-dir) that has the name of one
    of the package's configs of the group ("." for the commands' own, train.yaml): Hydra takes the
    package's in its place."""
    for folder in users_folders(config_dir, searchpath):
        for path in sorted(folder.rglob("*.yaml")):
            group = path.parent.relative_to(folder).as_posix()
            if Path(config_dir, group, path.name).is_file():
                yield group, path.stem, path


def builds_on_its_namesake(path: Path) -> bool:
    """Whether the config's defaults list names the config's own name (data/multi30k.yaml: defaults:
    [multi30k]): the package's, where Hydra looks first; itself, where the user's folder comes first."""
    defaults = file_tree(path).get("defaults")
    return any(isinstance(entry, str) and entry.removeprefix("/").removeprefix(f"{path.parent.name}/") == path.stem
               for entry in (defaults if isinstance(defaults, list) else []))


def looping_file(config_dir: str, overrides: tuple[str, ...], primary: Path | None = None) -> Path | None:
    """A config of the user's own whose defaults list leads back to it through their configs of its
    group (data/a.yaml: defaults: [b], data/b.yaml: defaults: [a]); None where none does. The configs
    the command picks are looked at first: their own config (`primary`, --config-name), then those
    the overrides pick (data=a)."""
    folders = users_folders(config_dir, overrides)
    picks = [override.partition("=") for override in overrides if not override.startswith(("+", "~", "hydra."))]
    first = [*([primary] if primary else []),
             *(path for group, _, name in picks if name and (path := _users_file(folders, group, name)))]
    for start in dict.fromkeys([*first, *(path for folder in folders for path in sorted(folder.rglob("*.yaml")))]):
        group = next(start.parent.relative_to(folder).as_posix() for folder in folders if start.is_relative_to(folder))
        seen, pending = set(), [start]
        while pending:
            defaults = file_tree(pending.pop()).get("defaults")
            for entry in defaults if isinstance(defaults, list) else []:
                name = entry.removeprefix("/") if isinstance(entry, str) else None
                path = _users_file(folders, "" if group == "." else group, name) if name else None
                if path == start:
                    return start
                if path is not None and path not in seen:
                    seen.add(path)
                    pending.append(path)
    return None


GLOBAL_HEADER = re.compile(r"#\s*@package\s+_global_\s*")


def check_not_overwritten(config_dir: str, config_name: str, picked: tuple[str, ...], composed: dict,
                          final: dict) -> None:
    """ConfigError for an option a user's own group config puts at the top of the config (`# @package
    _global_`) for a group merged after it, whose config sets it back: my_configs/data/big.yaml's
    trainer.batch_tokens under trainer=default's, which train.yaml merges after data. `composed` is
    the config of the `picked` configs alone (no experiment, no values from the command line), so
    any difference from the file's value is a later config's doing; where an experiment or the
    command line then set the option (`final`, the command's config), theirs is the value meant."""
    for config in users_group_configs(config_dir, picked):
        own = config.group.replace("/", ".")
        for path in config.files:
            if not _global_header(path):
                continue
            tree = file_tree(path)
            tree.pop("defaults", None)
            for key in dotted_keys(tree):
                value, now = _at(tree, key), _at(composed, key)
                if (within(key, own) or isinstance(value, dict) or now is _ABSENT or now == value
                        or _at(final, key) != now):
                    continue
                later = next((choice for group in groups_of(key) for choice in picked
                              if choice.removeprefix("+").partition("=")[0] == group), None)
                by = f"{later}, which {config_name}.yaml merges after {config.group}," if later else "a config merged after it"
                raise ConfigError(f"{key}: {shown_path(path)} sets it to {value}, but {by} sets it to {now}; "
                                  "set it in an experiment or on the command line")


_ABSENT = object()


def _at(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _global_header(path: Path) -> bool:
    """Whether the file's header puts its options at the top of the config (`# @package _global_`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for line in (raw.strip() for raw in lines if raw.strip()):  # Hydra reads the leading `# @key value` lines
        if not re.match(r"#\s*@", line):
            return False
        if GLOBAL_HEADER.fullmatch(line):
            return True
    return False


def unread_options(config_dir: str, config_name: str, picked: tuple[str, ...], keys: list[str],
                   present: set[str]) -> dict[str, tuple[str, Path]]:
    """Of `keys`, the options of the command's config as `picked`, those that a user's own group config
    brings and that nothing reads, each with the group and the file that sets it. For a group the
    package ships, those are the options that the package's config it builds on (data=files: not
    hub's `revision`), or where it builds on none, every one of the group's configs, lacks; for a group
    of the user's own, those that the command's config lacks without it. ConfigError for an option
    that every shipped config of the group has and the composed config (`present`) lacks: the
    user's config builds on none of them."""
    unread = {}
    for config in users_group_configs(config_dir, picked):
        others = without_group(picked, config.group)
        shipped = shipped_group_shapes(config_dir, config_name, others, config.group)
        if not all(shipped.values()):  # a shipped config does not compose with the other picks
            continue
        if shipped:
            _check_builds_on_the_package(config_dir, config, shipped, present)
            allowed = [shipped[name] for name in config.bases if name in shipped] or list(shipped.values())
        else:
            allowed = [shape_of(config_dir, config_name, others).keys]
        allowed_keys = {key for options in allowed for key in options}
        if not shipped and (package := config.group.replace("/", ".")) in keys and package not in allowed_keys:
            raise ConfigError(f"{shown_path(config.path)} puts its options under {package}.*, which nothing reads: "
                              "the first line of a config of your own group must be `# @package _global_`")
        for key in keys:
            if key not in allowed_keys and key not in unread:
                unread[key] = (config.group, config.file_setting(key))
    return unread


def _check_builds_on_the_package(config_dir: str, config: UsersGroupConfig, shipped: dict[str, list[str]],
                                 present: set[str]) -> None:
    first = next(iter(shipped.values()))
    lacking = next((key for key in first if key not in present and not free_form(key)
                    and all(key in options for options in shipped.values())), None)
    if lacking is None:
        return
    own = set(file_options(config.path))
    closest = max(shipped, key=lambda name: len(own & set(file_options(Path(config_dir, config.group, f"{name}.yaml")))))
    raise ConfigError(f"{lacking} is missing from {shown_path(config.path)}; a {config.group} config of your own "
                      f"should build on one of the package's: defaults: [{closest}, _self_]")


def _built_on(config_dir: str, folders: list[Path], group: str, path: Path) -> tuple[list[Path], list[str]]:
    """The user's files of `group` that `path` is built from, itself first, and the package's configs
    of the group they build on (`defaults: [files, _self_]` or `[/data/files, _self_]`)."""
    files, bases, pending = [], [], [path]
    while pending:
        current = pending.pop(0)
        if current in files:
            continue
        files.append(current)
        defaults = file_tree(current).get("defaults")
        for entry in defaults if isinstance(defaults, list) else []:
            if not isinstance(entry, str) or entry == "_self_" or (entry.startswith("/")
                                                                   and not entry.startswith(f"/{group}/")):
                continue
            name = entry.removeprefix(f"/{group}/")
            if Path(config_dir, group, f"{name}.yaml").is_file():  # Hydra searches the package's folder first
                bases.append(name)
            elif (users := _users_file(folders, group, name)) is not None:
                pending.append(users)
    return files, bases


def _users_file(folders: list[Path], group: str, name: str) -> Path | None:
    return next((path for path in (folder / group / f"{name}.yaml" for folder in folders) if path.is_file()), None)


def shown_path(path: Path) -> str:
    """`path` relative to the working folder where it lies within it, as the user likely typed it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
