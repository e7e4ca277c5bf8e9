"""Hydra's errors as one line each: what is wrong and how to write it, without Hydra's advice about
stack traces. Used by nmt.cli.common when it composes a command's config before Hydra does."""

import re
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException

from nmt.cli.config_picks import group_options, spelling_hint, unpicked_option_message
from nmt.cli.config_shape import NO_PACKAGE_HEADER, known_options
from nmt.cli.group_configs import builds_on_its_namesake, looping_file, passed_over_files, shown_path
from nmt.errors import first_line


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """`FILE, line 3: expected the node content, but found '<stream end>'` for a config that is not YAML."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    if mark is None:
        return f"a config is not valid YAML: {problem}"
    return f"{shown_path(Path(mark.name))}, line {mark.line + 1}: {problem} (not valid YAML)"


def parse_error_message(overrides: list[str]) -> str:
    """Names the first override Hydra cannot parse, with the parser's reason."""
    parser = OverridesParser.create()
    for arg in overrides:
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as exc:
            lines = [line for line in str(exc).splitlines()
                     if line.strip() and not line.startswith(("Error parsing override", "See https"))]
            reason = f" ({lines[0].strip()})" if lines else ""
            return (f"cannot parse the override {arg!r}{reason}; write key=value, and quote values with "
                    "spaces, commas, brackets or braces: key='a, b'")
    return "cannot parse the command line; see https://hydra.cc/docs/advanced/override_grammar/basic"


def recursion_message(config_dir: str, overrides: list[str], users_config: tuple[str, str] | None) -> str:
    """For a config whose defaults list leads back to itself. A config of the user's own named like the
    package's and built on it (data/multi30k.yaml: defaults: [multi30k]) does so in the checks, which
    compose a config of theirs in place of the command's (--config-name) with their folder first;
    Hydra searches the package's configs first and takes the package's, so theirs is passed over."""
    searchpath = tuple(overrides)
    for group, name, path in passed_over_files(config_dir, searchpath):
        if builds_on_its_namesake(path):
            package = f"{name}.yaml" if group == "." else f"{group}/{name}.yaml"
            return (f"{shown_path(path)} is passed over: Hydra takes the package's {package} in its place (it looks "
                    "in the package's configs first); give yours a name the package does not use")
    looping = looping_file(config_dir, searchpath, Path(users_config[0], f"{users_config[1]}.yaml")
                           if users_config else None)
    return f"{shown_path(looping) if looping else 'a config'} builds on itself: its defaults list leads back to it"


def null_option_message(overrides: list[str]) -> str | None:
    """For an override that sets hydra.sweeper.params (`'hydra.sweeper.params={seed: "1,2"}'`) or a key
    under it: Hydra's basic sweeper leaves it null, and OmegaConf crashes adding keys to it, in Hydra
    as in the checks. None for other overrides."""
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key == "hydra.sweeper.params" or key.startswith("hydra.sweeper.params."):
            return (f"{key}: Hydra cannot set hydra.sweeper.params on the command line (it is null, and takes "
                    "no keys there); sweep on the command line (seed=1,2), or declare the sweep in a config of "
                    "yours (hydra: {sweeper: {params: {seed: '1,2'}}})")
    return None


def missing_option_message(exc: MissingConfigException) -> str:
    """`model/attention=bogus is not an option; choose one of: additive, ...`"""
    if "Could not load 'data/common'" in str(exc):  # a copy of a data config from before the rename
        return (f"{first_line(exc)} The options every corpus shares are in data/_common since 6 Dec 2026: "
                "write `defaults: [_common, _self_]`")
    missing = re.search(r"Could not find '([^']+)'", str(exc))
    if not (missing and exc.options):
        return first_line(exc)
    group, _, name = missing.group(1).rpartition("/")
    options = sorted(option for option in exc.options if not option.startswith("_"))  # _common: a shared base
    return f"{group}={name} is not an option; choose one of: {', '.join(options)}"


def composition_message(config_dir: str, config_name: str, exc: HydraException, overrides: list[str],
                        users_config: tuple[str, str] | None = None) -> str:
    """`trainer.max_stepz is not an option (did you mean trainer.max_steps?) ...` for a typo in a key;
    for an option of another config of its group, which config has it."""
    ambiguous = re.match(r"Ambiguous value for argument '([^']+)'", str(exc))
    if ambiguous:  # Hydra's own advice takes three more lines
        return (f"{ambiguous.group(1)}: a comma is ambiguous; write a list as key=[a,b], text as key='a,b', "
                "or add -m to run one job per value")
    merging = re.match(r"Error merging override (.+)", str(exc))
    if merging and exc.__cause__ is not None:  # the reason is in the cause: "Cannot merge DictConfig with ..."
        return f"cannot set {merging.group(1)}: {first_line(exc.__cause__)}"
    headless = re.match(r"In 'experiment/([^']+)': Could not override '[^']*@experiment\.", str(exc))
    if headless:  # its defaults' overrides were taken as the experiment group's own
        return NO_PACKAGE_HEADER.format(experiment=headless.group(1))
    unknown = re.match(r"Could not override '([^']+)'", str(exc))
    if not unknown:
        return first_line(exc)
    # The cause names the key itself, which may lie inside the value: model.attention={nme: dot}
    full_key = re.search(r"full_key: (\S+)", str(exc.__cause__ or ""))
    key = full_key.group(1) if full_key else unknown.group(1)
    unpicked = unpicked_option_message(config_dir, config_name, overrides, key, users_config)
    if unpicked is not None:
        return unpicked
    # The options of every config of its groups too: model.attention.num_head is multihead's num_heads
    hint = spelling_hint(key, [*known_options(config_dir, config_name), *group_options(config_dir, config_name, (), key)])
    return f"{key} is not an option{hint}; `nmt-{config_name} --cfg job` lists them all"
