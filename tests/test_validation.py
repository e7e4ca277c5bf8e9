"""Validation's BLEU is the BLEU the commands would give the same checkpoint: greedy by default,
beam search with trainer.valid_beam_size."""

import gzip
import math

import pytest
import torch
import torch.nn.functional as F
from sacrebleu.metrics import CHRF
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import tiny_config

from nmt.data.tokenizer import BOS, EOS
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
                                f"trainer.valid_beam_size={beam_size}", "trainer.valid_max_len_b=3"), tmp_path / "run")
    sources = first_lines(multi30k_root / "multi30k/val.de.gz", 10)  # trainer.valid_max_sentences=10
    references = first_lines(multi30k_root / "multi30k/val.en.gz", 10)
    translator = Translator.load(tmp_path / "run/checkpoints/last.pt", "cpu")
    outputs = [nbest[0].text for nbest in translator.translate(sources, beam_size=beam_size, length_penalty=1.0,
                                                               max_len_b=3)]
    assert summary["history"][-1]["valid_bleu"] == pytest.approx(bleu_score(outputs, references), abs=1e-6)
    assert summary["history"][-1]["valid_chrf"] == pytest.approx(CHRF().corpus_score(outputs, [references]).score,
                                                                 abs=1e-6)  # chrF2, sacreBLEU's default
    greedy = [nbest[0].text for nbest in translator.translate(sources, beam_size=1)]
    if beam_size > 1:  # the beam changed something, so the figure above tells greedy and beam apart
        assert outputs != greedy


def test_validation_loss_is_the_plain_nll_per_target_token_and_ppl_its_exponential(multi30k_root, tmp_path):
    """Without the label smoothing the run trains with (0.1 here), averaged over target tokens (EOS
    included), as one would compute it sentence by sentence from the saved model."""
    summary = train(tiny_config(multi30k_root, tmp_path, "trainer.max_steps=4", "trainer.valid_every=4"),
                    tmp_path / "run")
    sources = first_lines(multi30k_root / "multi30k/val.de.gz", 10)
    references = first_lines(multi30k_root / "multi30k/val.en.gz", 10)
    translator = Translator.load(tmp_path / "run/checkpoints/last.pt", "cpu")
    model, tokenizers = translator.model.eval(), translator.tokenizers
    total, tokens = 0.0, 0
    with torch.no_grad():
        for src, tgt in zip(tokenizers.src.encode(sources), tokenizers.tgt.encode(references), strict=True):
            logits, _ = model(torch.tensor([[*src, EOS]]), torch.tensor([len(src) + 1]), torch.tensor([[BOS, *tgt]]))
            total += F.cross_entropy(logits[0].double(), torch.tensor([*tgt, EOS]), reduction="sum").item()
            tokens += len(tgt) + 1
    [scored] = summary["history"]
    assert scored["valid_loss"] == pytest.approx(total / tokens, rel=1e-4)
    assert scored["valid_ppl"] == pytest.approx(math.exp(total / tokens), rel=1e-4)


def test_tensorboard_gets_the_validation_figures_and_one_heatmap_per_plotted_sentence(multi30k_root, tmp_path):
    summary = train(tiny_config(multi30k_root, tmp_path, "trainer.plot_sentences=2"), tmp_path / "run")  # steps 3, 6
    events = EventAccumulator(str(tmp_path / "run/tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for tag, key in (("valid/loss", "valid_loss"), ("valid/ppl", "valid_ppl"), ("valid/bleu", "valid_bleu"),
                     ("valid/chrf", "valid_chrf")):
        logged = {event.step: event.value for event in events.Scalars(tag)}
        assert logged == pytest.approx({h["step"]: h[key] for h in summary["history"]}, rel=1e-6), tag
    images = events.Tags()["images"]
    assert sorted(images) == ["attention/sentence_0", "attention/sentence_1"]
    assert all([event.step for event in events.Images(tag)] == [3, 6] for tag in images)
