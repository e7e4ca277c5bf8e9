"""Kinds of config values as YAML and the command line deliver them, where true/false must not pass
for 1/0 (`isinstance(True, int)` holds in Python)."""


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
