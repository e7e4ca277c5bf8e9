"""What every command shares: where the configs live, free-text options, and user-error handling."""

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.errors import NMTError


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


def quote_text_overrides(argv: list[str], keys: Iterable[str]) -> list[str]:
    """Rewrites `key=free text` arguments into quoted overrides (already quoted values are left as is)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in keys and not (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""):
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
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def hydra_command(config_name: str, task: Callable[[DictConfig], object], text_keys: Iterable[str] = ()):
    """Builds a console-script `main()` running `task` under Hydra with `config_name`."""

    def main() -> None:
        sys.argv = [sys.argv[0], *quote_text_overrides(sys.argv[1:], set(text_keys))]
        hydra.main(config_path=config_dir(), config_name=config_name, version_base=None)(
            exit_on_user_error(task))()

    return main


def log_to_stderr() -> None:
    """Inference commands keep stdout for results, so their messages go to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
