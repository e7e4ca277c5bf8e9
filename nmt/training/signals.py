"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (schedulers, `kill`).

The first signal only raises a flag: the training loop finishes the update it is in, saves
`last.pt` and raises `TrainingStopped`. A second signal stops at once (KeyboardInterrupt); the
checkpoint on disk is then the previous complete one, since checkpoints are replaced atomically.
"""

import signal
import sys
import threading
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal after saving `checkpoint`; `resume=true` continues it exactly.

    A KeyboardInterrupt, so code that does not know about it still treats it as an interruption.
    """

    def __init__(self, signum: int, step: int, epoch: int, batch: int, batches: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, Path(checkpoint)
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} (epoch {epoch + 1}, "
                         f"batch {batch} of {batches}); saved {checkpoint}")


class StopOnSignal:
    """Context manager that turns the first SIGINT/SIGTERM into a request: `received` is its number.

    Handlers can only be installed from the main thread; elsewhere (a training thread in a
    notebook or a server) signals keep their usual effect and `received` stays None. A signal the
    process was started to ignore stays ignored.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT in a background job
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # asked twice: stop now, keeping the previous checkpoint
        self.received = signum
        print(f"\n{signal.Signals(signum).name} received: finishing the current step, then saving "
              "checkpoints/last.pt (send it again to stop at once)", file=sys.stderr, flush=True)
