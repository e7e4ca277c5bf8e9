"""Kinds of config values as YAML and the command line deliver them, where true/false must not pass
for 1/0 (`isinstance(True, int)` holds in Python)."""

from omegaconf import OmegaConf

from nmt.errors import ConfigError


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def invalid(option: str, wanted: str, value) -> ConfigError:
    """The one-line error for an option whose value is of the wrong kind or out of range."""
    return ConfigError(f"{option} must be {wanted}; got {value!r}")


def path_list(option: str, value) -> list[str]:
    """`option=PATH` or `option=[A,B,...]` as a list of at least one path (nmt-plot's panels, an ensemble)."""
    if value is None:
        raise ConfigError(f"{option}=null names no checkpoint")
    paths = [str(p) for p in value] if OmegaConf.is_list(value) or isinstance(value, list) else [str(value)]
    if not paths:
        raise ConfigError(f"{option}=[] names no checkpoint")
    if not all(path.strip() for path in paths):  # `checkpoint=` would otherwise be read as the folder "."
        raise ConfigError(f"{option} is empty; give the path of a checkpoint, e.g. {option}=runs/x/checkpoints/best.pt")
    return paths
