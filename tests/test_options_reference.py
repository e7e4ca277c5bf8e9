"""docs/options.md: every option of every command, generated from the comments in configs/."""


import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from project_scripts import load_script

from nmt.cli.common import config_dir

options_reference = load_script("options_reference")

DOCUMENTED_ROW = "| `"


def documented_options() -> set[str]:
    """The option names the tables of docs/options.md list."""
    text = options_reference.OUTPUT.read_text(encoding="utf-8")
    return {line.split("`")[1] for line in text.splitlines() if line.startswith(DOCUMENTED_ROW)}


def leaf_keys(node, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        return set().union(*(leaf_keys(v, f"{prefix}{k}.") for k, v in node.items())) if node else {prefix[:-1]}
    return {prefix[:-1]}


def test_the_reference_is_what_the_configs_give():
    """Edit an option's comment in configs/, then run `python scripts/options_reference.py`."""
    assert options_reference.OUTPUT.read_text(encoding="utf-8") == options_reference.reference()


def test_every_option_has_a_meaning():
    rows = [row for path in options_reference.CONFIGS.rglob("*.yaml") if "experiment" not in path.parts
            for row in options_reference.read_options(path)]
    assert len(rows) > 100
    assert [key for key, _, meaning in rows if not meaning] == []


@pytest.mark.parametrize("command", options_reference.COMMANDS)
def test_every_option_a_command_composes_is_documented(command):
    """The reader of configs/ misses no key: each leaf of the composed config (with nmt-train's
    default group choices) is a row of the reference."""
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose(command)
    options = OmegaConf.to_container(cfg, resolve=False)
    options.pop("hydra", None)
    assert leaf_keys(options) - documented_options() == set()


def test_a_continued_comment_and_a_quoted_hash_are_read(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("defaults: [a]\nouter:\n  inner: 'a # b'   # first part\n                    # second part\n"
                      "# a heading, not a continuation\nplain: 3\nhydra:\n  run: {dir: .}\n")
    assert options_reference.read_options(config) == [
        ("outer.inner", "'a # b'", "first part second part"), ("plain", "3", "")]
