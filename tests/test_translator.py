"""The Python API's scores: every beam size and forced decoding divide by the same length penalty."""

import pytest
from tiny_checkpoint import make_checkpoint

from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCE, TRANSLATION = "ein hund läuft über die wiese", "a dog runs across the meadow"


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    return Translator.load(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt"), "cpu")


def gnmt_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_greedy_score_is_divided_by_the_length_penalty(translator, alpha):
    [[raw]] = translator.translate([SOURCE], beam_size=1, length_penalty=0.0)
    [[penalised]] = translator.translate([SOURCE], beam_size=1, length_penalty=alpha)
    assert penalised.tgt_pieces == raw.tgt_pieces
    length = len(raw.tgt_pieces)  # produced pieces, EOS included
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(length, alpha), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_forced_score_uses_the_penalty_translate_uses(translator, alpha):
    raw = translator.force(SOURCE, TRANSLATION, length_penalty=0.0)
    penalised = translator.force(SOURCE, TRANSLATION, length_penalty=alpha)
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(len(raw.tgt_pieces), alpha), rel=1e-6)
    assert translator.force(SOURCE, TRANSLATION).score == pytest.approx(
        raw.score / gnmt_penalty(len(raw.tgt_pieces), 1.0), rel=1e-6)  # the default is translate's 1.0
