"""Stopping cleanly on SIGINT (Ctrl-C), SIGTERM (schedulers, `kill`), SIGHUP (the terminal closed, an
SSH connection dropped) and a failed standard output.

The first signal only raises a flag: the training loop finishes the update it is in, saves
`last.pt` and raises `TrainingStopped`. A second signal stops at once (KeyboardInterrupt); the
checkpoint on disk is then the previous complete one, since checkpoints are replaced atomically.
A standard output that fails (its reader gone, as in `nmt-train ... | tee log` with tee killed) is
reported through `StopOnSignal.request_current` and stops training the same way as the first signal.
"""

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class StopReason:
    """Why training was asked to stop: `name` for the messages, `exit_status` for the command."""

    name: str  # "SIGTERM", or the failure of standard output
    exit_status: int

    @classmethod
    def of_signal(cls, signum: int) -> "StopReason":
        return cls(signal.Signals(signum).name, 128 + signum)  # the shell's convention for "ended by signal N"

    @classmethod
    def of_output_error(cls, error: OSError) -> "StopReason":
        """A reader gone ends the command as SIGPIPE would (Python ignores the signal); a refused write
        (`> /dev/full`) is an error, status 2."""
        if isinstance(error, BrokenPipeError):
            return cls("a closed standard output (its reader has gone)", 128 + signal.SIGPIPE)
        return cls(f"a failed write to standard output ({error.strerror})", 2)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal after saving `checkpoint`; `resume=true` continues it exactly.

    A KeyboardInterrupt, so code that does not know about it still treats it as an interruption.
    """

    def __init__(self, reason: StopReason, step: int, epoch: int, batch: int, batches: int, checkpoint: Path):
        self.reason, self.step, self.checkpoint = reason, step, Path(checkpoint)
        super().__init__(f"stopped by {reason.name} at step {step} (epoch {epoch + 1}, "
                         f"batch {batch} of {batches}); saved {checkpoint}")


class StoppedAtOnce(KeyboardInterrupt):
    """A second stop signal: training ends where it is, without saving; the checkpoint on disk is the
    previous complete one. `reason` is that signal's, whose exit status the command ends with."""

    def __init__(self, reason: StopReason):
        self.reason = reason
        super().__init__(f"stopped at once by a second signal, {reason.name}; the checkpoint on disk is the "
                         "previous complete one")


class StopOnSignal:
    """Context manager that turns the first SIGINT/SIGTERM/SIGHUP into a request: `received` is its reason.

    Handlers can only be installed from the main thread; elsewhere (a training thread in a
    notebook or a server) signals keep their usual effect and `received` stays None. A signal the
    process was started to ignore stays ignored. The main thread's one is `current` while it is entered.
    """

    current: ClassVar["StopOnSignal | None"] = None

    def __init__(self):
        self.received: StopReason | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT in a background job
                    self._previous[signum] = signal.signal(signum, self._handle)
            StopOnSignal.current = self
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if StopOnSignal.current is self:
            StopOnSignal.current = None

    @classmethod
    def request_current(cls, reason: StopReason) -> bool:
        """Asks the training running in the main thread to stop as after a first signal; False when none
        runs (nothing to save: the caller handles the failure itself)."""
        stop = cls.current
        if stop is None:
            return False
        if stop.received is None:
            stop.received = reason
            _announce(reason.name)
        return True

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise StoppedAtOnce(StopReason.of_signal(signum))  # asked twice: stop now, keeping the previous checkpoint
        self.received = StopReason.of_signal(signum)
        _announce(f"{self.received.name} received", " (send it again to stop at once)")


def _announce(cause: str, hint: str = "") -> None:
    """Says on standard error that training will stop. It may be gone (a terminal that hung up fails
    writes with EIO; a pipe shared with standard output has lost its reader): the stop goes on unsaid,
    and the failure must not break into the update that is running."""
    with contextlib.suppress(OSError):
        print(f"\n{cause}: finishing the current step, then saving checkpoints/last.pt{hint}", file=sys.stderr,
              flush=True)
