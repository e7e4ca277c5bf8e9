"""Writes docs/options.md, the reference of every option, from the comments in configs/.

    python scripts/options_reference.py     # rewrite docs/options.md (tests/test_options_reference.py checks it)

The configs are the one place an option's default and meaning are written; this only lays them out.
Each `key: value  # meaning` line (and the `#` lines that continue its comment) becomes a table row.
Experiments (configs/experiment/) are recipes, not options, and Hydra's own settings are left out.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from nmt.cli.common import config_dir  # noqa: E402

CONFIGS = Path(config_dir())
OUTPUT = ROOT / "docs" / "options.md"
COMMANDS = ["train", "evaluate", "translate", "plot", "align", "average", "serve"]
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")
SKIPPED_KEYS = {"defaults", "hydra"}  # the composition list and Hydra's settings: not options of ours
SHARED_CONFIGS = ("_inference", "_decoding")  # the inference commands' shared options, in composition order


def split_comment(rest: str) -> tuple[str, str]:
    """`value  # comment` -> (value, comment); a # inside quotes belongs to the value."""
    quote = None
    for i, char in enumerate(rest):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or rest[i - 1] in " \t"):
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), ""


def read_options(path: Path) -> list[tuple[str, str, str]]:
    """(dotted key, default, meaning) of every leaf option in one config file, in file order."""
    rows: list[list[str]] = []
    parents: list[tuple[int, str]] = []  # (indent, key) of the mappings the current line is inside
    skipping_below: int | None = None
    continues: int | None = None  # column of the comment a `#`-only line may continue
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if continues is not None and rows and len(line) - len(line.lstrip()) >= continues:
                rows[-1][2] = f"{rows[-1][2]} {stripped.lstrip('#').strip()}".strip()
            else:
                continues = None
            continue
        match = KEY_LINE.match(line)
        if not match:
            continues = None
            continue
        indent = len(match["indent"])
        if skipping_below is not None and indent > skipping_below:
            continue
        skipping_below = None
        while parents and parents[-1][0] >= indent:
            parents.pop()
        key = match["key"]
        if not parents and key in SKIPPED_KEYS:
            skipping_below, continues = indent, None
            continue
        value, comment = split_comment(match["rest"])
        if value in ("", "|-", "|"):  # a mapping: its keys follow, indented
            parents.append((indent, key))
            continues = None
            continue
        rows.append([".".join([k for _, k in parents] + [key]), value, comment])
        continues = line.index("#") if comment else None
    return [(key, value, meaning) for key, value, meaning in rows]


def table(rows: list[tuple[str, str, str]], prefix: str) -> list[str]:
    out = ["| option | default | meaning |", "|---|---|---|"]
    for key, value, meaning in rows:
        value = value.replace("|", r"\|")  # not a column break
        # <name> is text, not an HTML tag, except inside `code`, which shows it as it is
        parts = meaning.replace("|", r"\|").split("`")
        meaning = "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))
        out.append(f"| `{prefix}{key}` | `{value}` | {meaning} |")
    return out


def shared_configs(names: list[str]) -> str:
    return " and ".join(f"`configs/{name}.yaml`" for name in names)


def reference() -> str:
    lines = ["# Options", "",
             "Every option of the commands, with its default and what it does. Generated from the comments in",
             "`configs/` by `python scripts/options_reference.py` (a test checks that it is current); give any of",
             "them on the command line as `key=value`, and a config group's choice as `group=option`.", ""]
    for command in COMMANDS:
        config = CONFIGS / f"{command}.yaml"
        defaults = yaml.safe_load(config.read_text(encoding="utf-8")).get("defaults") or []
        included = [name for name in SHARED_CONFIGS if name in defaults]  # in the order they compose
        shared = [row for name in included for row in read_options(CONFIGS / f"{name}.yaml")]
        lines += [f"## nmt-{command}", "", f"`configs/{command}.yaml`"
                  + (f", with the options it shares with other inference commands ({shared_configs(included)})"
                     if included else "") + ":", ""]
        lines += table(shared + read_options(config), "") + [""]
    lines += ["## nmt-train's config groups", "",
              "Pick an option of a group with `group=option` (e.g. `model/attention=general`, `scheduler=cosine`);",
              "its keys are then set as `group.key=value` (`model.attention.num_heads=8`). Files whose name starts",
              "with `_` are shared by the group's options.", ""]
    for path in sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent != CONFIGS and "experiment" not in p.parts):
        group = path.parent.relative_to(CONFIGS).as_posix()
        lines += [f"### `{group}={path.stem}`" if not path.stem.startswith("_") else f"### `{group}` (every option)",
                  "", f"`configs/{group}/{path.name}`", ""]
        lines += table(read_options(path), group.replace("/", ".") + ".") + [""]
    return "\n".join(lines)


def main() -> None:
    OUTPUT.write_text(reference(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
