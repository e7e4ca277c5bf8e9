"""Checks of the `trainer.*` options and `resume` at start-up, before any data is read.

Hydra rejects unknown keys; this rejects known keys with values of the wrong kind
(`trainer.max_steps=abc`), with one line naming the option, instead of a TypeError deep in the loop.
"""

from collections.abc import Mapping

from nmt.errors import ConfigError
from nmt.values import is_int, is_number

POSITIVE_INT = ("batch_tokens", "accumulate", "valid_every", "log_every", "valid_batch_sentences", "max_nonfinite_steps")
POSITIVE_INT_OR_NULL = ("max_steps", "max_epochs", "save_every", "valid_max_sentences", "num_threads",
                        "early_stopping_patience")
NON_NEGATIVE_INT = ("valid_max_len_b", "plot_sentences", "keep_best_checkpoints")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_SETTINGS = ("auto", True, False)


def check_trainer_options(trainer: Mapping, resume=False) -> None:
    """Raises a ConfigError naming the first `trainer.*` option (or `resume`) with an invalid value."""

    def fail(key: str, wanted: str) -> None:
        raise ConfigError(f"trainer.{key} must be {wanted}; got {trainer.get(key)!r}")

    for key in POSITIVE_INT:
        if not (is_int(trainer.get(key)) and trainer.get(key) > 0):
            fail(key, "a positive integer")
    for key in POSITIVE_INT_OR_NULL:
        value = trainer.get(key)
        if value is not None and not (is_int(value) and value > 0):
            fail(key, "null or a positive integer")
    for key in NON_NEGATIVE_INT:
        if not (is_int(trainer.get(key)) and trainer.get(key) >= 0):
            fail(key, "an integer >= 0")
    smoothing = trainer.get("label_smoothing")
    if not (is_number(smoothing) and 0 <= smoothing < 1):
        fail("label_smoothing", "a number in [0, 1)")
    clip = trainer.get("clip_grad_norm")
    if clip is not None and not (is_number(clip) and clip >= 0):
        fail("clip_grad_norm", "null or a number >= 0 (0 or null: no clipping)")
    decay = trainer.get("ema_decay")
    if decay is not None and not (is_number(decay) and 0 < decay < 1):
        fail("ema_decay", "null (no weight averaging) or a number in (0, 1), e.g. 0.999")
    if trainer.get("precision") not in PRECISIONS:
        fail("precision", f"one of {', '.join(PRECISIONS)}")
    if trainer.get("compile", False) not in COMPILE_SETTINGS:
        fail("compile", "auto, true or false")
    if not isinstance(trainer.get("progress"), bool):
        fail("progress", "true or false")
    if trainer.get("max_steps") is None and trainer.get("max_epochs") is None:
        raise ConfigError("set trainer.max_steps or trainer.max_epochs: a run needs a bound")
    if not (isinstance(resume, bool) or (isinstance(resume, str) and resume.strip())):
        raise ConfigError(f"resume must be true, false, auto or a checkpoint path; got {resume!r}")
