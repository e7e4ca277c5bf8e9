"""Checking a command's answer to a user mistake: exit status 2 and one `error:` line, no traceback."""

import sys

import pytest

from nmt.cli.common import composable_command_line, compose_checked, exit_on_user_error
from nmt.errors import ConfigError


def one_line_error(capsys, task, *args) -> str:
    """Runs `task(*args)` as a command does; asserts exit status 2 and a single `error:` line, and
    returns that line without its `error: ` prefix."""
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda _: task(*args))(None)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("error: ").rstrip("\n")


def main_error(capsys, monkeypatch, main, *args: str) -> str:
    """Runs a console script's main() in-process for a mistake caught before Hydra starts."""
    monkeypatch.setattr(sys, "argv", ["nmt-train", *args])
    return one_line_error(capsys, main)


def config_error(command: str, *args: str) -> str:
    """A command's refusal of a command line, from the checks before Hydra starts (nmt-train would
    train the full reference model, were the command line taken)."""
    overrides, users_config = composable_command_line(list(args))
    with pytest.raises(ConfigError) as refused:
        compose_checked(command, overrides, users_config=users_config)
    return str(refused.value)
