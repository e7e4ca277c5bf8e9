"""Checking a command's answer to a user mistake: exit status 2 and one `error:` line, no traceback."""

import pytest

from nmt.cli.common import exit_on_user_error


def one_line_error(capsys, task, *args) -> str:
    """Runs `task(*args)` as a command does; asserts exit status 2 and a single `error:` line, and
    returns that line without its `error: ` prefix."""
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda _: task(*args))(None)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("error: ").rstrip("\n")
