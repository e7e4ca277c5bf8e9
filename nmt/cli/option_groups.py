"""A group of options given a single value, refused in one line that names it.

`model.attention=5` on the command line, `trainer: 5` in a user's experiment file (`--config-dir`)
or `data=[1]` compose without complaint, or crash inside Hydra; the commands would then fail with a
traceback where they first read an option of the group. These checks run before any work starts.
"""

import functools
from collections.abc import Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from nmt.errors import ConfigError
from nmt.values import invalid

_ABSENT = object()


def check_option_groups(cfg: DictConfig, config_dir: str, config_name: str, overrides: list[str]) -> None:
    """ConfigError naming the first group of options (`model.attention`) that `cfg`, composed from
    `overrides`, replaced by a single value or null. The groups are those of the command's config as
    it comes and as the overrides' config choices (`data=files`) make it; a group `cfg` lacks
    (`~key`) is left to the command."""
    choices = tuple(arg for arg, _, _ in _config_choices(config_dir, overrides))
    groups = {**_option_groups(config_dir, config_name, ()), **_option_groups(config_dir, config_name, choices)}
    for path, first_option in sorted(groups.items()):  # parents first
        value = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT and not isinstance(value, DictConfig):
            raise invalid(path, f"a group of options such as {path}.{first_option}=...", value)


def group_choice_error(config_dir: str, overrides: list[str]) -> ConfigError | None:
    """The error for a config group (`model/attention`, `trainer`) chosen with something other than
    the name of one of its configs (`trainer=5`, `data=[1]`), on which Hydra's compose crashes; None
    when no override does that."""
    for arg, override, folder in _config_choices(config_dir, overrides):
        value = override.value()
        if not all(isinstance(name, str) for name in (value if isinstance(value, list) else [value])):
            options = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
            return ConfigError(f"{arg} is not an option; {override.key_or_group} takes the name of one of its "
                               f"configs: {options}")
    return None


def _config_choices(config_dir: str, overrides: list[str]) -> Iterator[tuple[str, Override, Path]]:
    """The overrides that choose a config of a group (`experiment=smoke`, `model/attention=dot`)."""
    parser = OverridesParser.create()
    for arg in overrides:
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException:
            continue  # compose names it
        folder = Path(config_dir, override.key_or_group)
        if not override.is_delete() and folder.is_dir():
            yield arg, override, folder


@functools.cache
def _option_groups(config_dir: str, config_name: str, choices: tuple[str, ...]) -> dict[str, str]:
    """Dotted path of every group of options in the command's config with these config choices ->
    the name of its first option; nothing when the choices do not compose (the command says why)."""
    try:
        if GlobalHydra.instance().is_initialized():  # inside the command's hydra.main: its search path
            tree = OmegaConf.to_container(compose(config_name, overrides=list(choices)), resolve=False)
        else:
            with initialize_config_dir(config_dir=config_dir, version_base=None):
                tree = OmegaConf.to_container(compose(config_name, overrides=list(choices)), resolve=False)
    except (HydraException, ValueError, TypeError):  # Hydra's own errors, and its crashes on bad choices
        return {}
    groups: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                groups[f"{prefix}{key}"] = str(next(iter(value)))
                walk(value, f"{prefix}{key}.")

    walk(tree, "")
    return groups
