"""What the training loop does when a step goes wrong: NaN/Inf losses and running out of memory.

Both end in a `TrainingError` whose one-line message says what happened, what to change, and
that `resume=true` continues from the last checkpoint, which is never overwritten by a bad state.
"""

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from nmt.errors import TrainingError

log = logging.getLogger(__name__)


def resume_hint(checkpoint: Path) -> str:
    if Path(checkpoint).is_file():
        return f"the last checkpoint {checkpoint} is kept; add resume=true to continue from it"
    return "no checkpoint had been written yet"


def check_finite(loss: float, grad_norm: float, in_a_row: int, limit: int, step: int,
                 checkpoint: Path) -> bool:
    """True when the update was good. A NaN/Inf loss or gradient (whose update `train_step` has
    skipped) logs a warning; the `limit`-th one in a row raises a TrainingError.

    `in_a_row` counts the bad updates just before this one; `step` is the number of the update tried.
    """
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return True
    what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", grad_norm)
    in_a_row += 1
    if in_a_row >= limit:
        raise TrainingError(
            f"training diverged: {'1 update' if in_a_row == 1 else f'{in_a_row} updates in a row'} had a "
            f"non-finite {what} (last: {value} at "
            f"step {step}; trainer.max_nonfinite_steps={limit}); lower optimizer.lr or check the data; "
            f"{resume_hint(checkpoint)}")
    log.warning("step %d: %s is %s, update skipped (%d in a row; training stops at "
                "trainer.max_nonfinite_steps=%d)", step, what, value, in_a_row, limit)
    return False


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA (torch.OutOfMemoryError) or host memory (a RuntimeError from the CPU allocator)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@contextlib.contextmanager
def out_of_memory_as(error: Callable[[str], Exception]) -> Iterator[None]:
    """Raises `error(device)` (device "CUDA" or "host"), without the traceback, for an out-of-memory error
    inside the block; any other error goes on as it is."""
    try:
        yield
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        raise error("CUDA" if isinstance(exc, torch.OutOfMemoryError) else "host") from None


def out_of_memory_advice(where: str, advice: str, checkpoint: Path) -> contextlib.AbstractContextManager[None]:
    """Turns an out-of-memory error inside the block into a one-line TrainingError:
    "out of memory {where}; {advice}; {what happens to the checkpoint}"."""
    return out_of_memory_as(lambda device: TrainingError(f"{device} out of memory {where}; {advice}; "
                                                         f"{resume_hint(checkpoint)}"))
