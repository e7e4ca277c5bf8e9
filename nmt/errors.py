"""User-facing errors.

Anything a user can cause (a bad option, a missing file, a corrupt checkpoint) is raised as an
``NMTError``; the command-line entry points print its message as one line and exit non-zero instead
of showing a traceback. Programming errors stay ordinary exceptions.
"""


class NMTError(Exception):
    """A mistake in the user's input: config, data or checkpoint. The message names the culprit."""


class ConfigError(NMTError):
    """An option has an invalid value."""


class DataError(NMTError):
    """A data file is missing, unreadable or inconsistent."""


class CheckpointError(NMTError):
    """A checkpoint is missing, corrupt or incompatible."""


class TrainingError(NMTError):
    """Training cannot go on (the loss diverged, memory ran out); the last checkpoint is kept."""


class DecodingError(NMTError):
    """Decoding (search, sampling or scoring) ran out of memory; the message names what to lower."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: for one-line errors.

    A heading that ends in a colon takes its first detail with it: torch's load_state_dict says
    "Error(s) in loading state_dict for Seq2Seq:" and names the mismatching weight on the next line.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
