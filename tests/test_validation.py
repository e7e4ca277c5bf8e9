"""Validation's BLEU is the BLEU the commands would give the same checkpoint: greedy by default,
beam search with trainer.valid_beam_size."""

import gzip

import pytest
from test_training import tiny_config

from nmt.inference.metrics import bleu_score
from nmt.inference.translator import Translator
from nmt.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def first_lines(path, n: int) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [f.readline().rstrip("\n") for _ in range(n)]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_validation_bleu_is_that_of_translating_the_validation_set(multi30k_root, tmp_path, beam_size):
    summary = train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=30", "trainer.valid_every=30",
                                f"trainer.valid_beam_size={beam_size}"), tmp_path / "run")
    sources = first_lines(multi30k_root / "multi30k/val.de.gz", 10)  # trainer.valid_max_sentences=10
    references = first_lines(multi30k_root / "multi30k/val.en.gz", 10)
    translator = Translator.load(tmp_path / "run/checkpoints/last.pt", "cpu")
    outputs = [nbest[0].text for nbest in translator.translate(sources, beam_size=beam_size, length_penalty=1.0)]
    assert summary["history"][-1]["valid_bleu"] == pytest.approx(bleu_score(outputs, references), abs=1e-6)
    greedy = [nbest[0].text for nbest in translator.translate(sources, beam_size=1)]
    if beam_size > 1:  # the beam changed something, so the figure above tells greedy and beam apart
        assert outputs != greedy
