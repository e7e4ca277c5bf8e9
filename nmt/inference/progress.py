"""Progress lines for long decoding jobs (translating a training corpus takes tens of minutes on a CPU).

The commands log at most one line per `every_s` seconds, so short inputs stay silent.
"""

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class DecodingProgress:
    """Called with the number of sentences each finished batch held; logs done/total, rate and time left."""

    def __init__(self, total: int, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 emit: Callable[[str], None] = log.info, verb: str = "translated"):
        self.total, self.every_s, self.clock, self.emit, self.verb = total, every_s, clock, emit, verb
        self.done = 0
        self.start = self.last = clock()

    def __call__(self, sentences: int) -> None:
        self.done += sentences
        now = self.clock()
        if now - self.last < self.every_s or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left_s = (self.total - self.done) / rate
        self.emit(f"{self.verb} {self.done:,}/{self.total:,} sentences, {rate:.1f} sentences/s, "
                  f"about {_minutes(left_s)} left")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
