"""Progress lines of long decoding jobs: at most one per interval, with correct counts, rate and time left."""

import pytest
from tiny_checkpoint import make_checkpoint

from nmt.inference.progress import DecodingProgress
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_logs_at_most_once_per_interval_with_rate_and_time_left():
    clock, lines = FakeClock(), []
    progress = DecodingProgress(1000, every_s=30, clock=clock, emit=lines.append)
    clock.now += 10
    progress(100)                        # 10 s in: too soon
    assert lines == []
    clock.now += 30
    progress(100)                        # 40 s in, 200 done: 5 sentences/s, 800 left -> 160 s
    assert lines == ["translated 200/1,000 sentences, 5.0 sentences/s, about 3 min left"]
    clock.now += 20
    progress(100)                        # 20 s after the last line: too soon
    assert len(lines) == 1
    clock.now += 15
    progress(300)                        # 75 s in, 600 done: 8 sentences/s, 400 left -> 50 s
    assert lines[-1] == "translated 600/1,000 sentences, 8.0 sentences/s, about 50 s left"


def test_the_last_batch_logs_nothing():
    """The command reports the finished job itself; a '0 s left' line would only repeat it."""
    clock, lines = FakeClock(), []
    progress = DecodingProgress(100, every_s=30, clock=clock, emit=lines.append)
    clock.now += 60
    progress(100)
    assert lines == []


def test_translate_reports_every_nonblank_sentence_once(tmp_path):
    translator = Translator.load(make_checkpoint(tmp_path / "best.pt"), "cpu")
    texts = ["ein hund läuft", "", "eine frau liest ein buch", "zwei männer", "  "]
    batches = []
    translator.translate(texts, beam_size=2, batch_sentences=2, on_batch=batches.append)
    assert sum(batches) == 3             # the blank lines are not decoded
    assert batches == [2, 1]             # batches of at most 2 sentences
