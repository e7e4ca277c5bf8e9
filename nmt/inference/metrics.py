"""Corpus-level translation metrics, through sacreBLEU only.

Hypotheses and references must be detokenized text (SentencePiece decoded), one sentence per entry:
sacreBLEU applies its own standard tokenization so scores are comparable with published ones. Every
score is reported with sacreBLEU's signature string, which pins down how it was computed.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric


def _metrics() -> dict[str, Metric]:
    # sacreBLEU defaults throughout: BLEU with the 13a tokenizer on mixed case, chrF2, TER.
    return {"bleu": BLEU(), "chrf": CHRF(), "ter": TER()}


def _check_corpus(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"got {len(hypotheses)} hypotheses but {len(references)} references; they must pair up one to one"
        )
    if not hypotheses:
        raise ValueError("cannot score an empty corpus: no hypotheses and no references")


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, dict[str, float | str]]:
    """Score a corpus with BLEU, chrF and TER against one reference per sentence.

    Returns ``{"bleu": {...}, "chrf": {...}, "ter": {...}}`` where each entry holds ``score`` (float;
    higher is better except for TER), ``text`` (sacreBLEU's formatted score, e.g.
    ``"BLEU = 35.12 67.1/41.2/..."``) and ``signature`` (e.g. ``"nrefs:1|case:mixed|...|tok:13a|..."``).
    """
    _check_corpus(hypotheses, references)
    scores = {}
    for name, metric in _metrics().items():
        result = metric.corpus_score(hypotheses, [references])
        scores[name] = {
            "score": float(result.score),
            "text": str(result),
            "signature": str(metric.get_signature()),
        }
    return scores


def bleu_score(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacreBLEU defaults) as a float in [0, 100]: the cheap number for validation."""
    _check_corpus(hypotheses, references)
    return float(BLEU().corpus_score(hypotheses, [references]).score)


def chrf_score(hypotheses: list[str], references: list[str]) -> float:
    """Corpus chrF2 (sacreBLEU defaults) as a float in [0, 100]."""
    _check_corpus(hypotheses, references)
    return float(CHRF().corpus_score(hypotheses, [references]).score)


def format_scores(scores: dict[str, dict[str, float | str]]) -> str:
    """A human-readable summary of ``corpus_scores`` output: each score followed by its signature."""
    lines = []
    for entry in scores.values():
        lines.append(str(entry["text"]))
        lines.append(f"    signature: {entry['signature']}")
    return "\n".join(lines)
