"""How often translations repeat themselves: the share that hold a word n-gram twice.

Recurrent decoders loop ("in a blue wetsuit is playing in a blue wetsuit"). nmt-evaluate counts the
translations that repeat a word 3-gram, beside the references' own count: references repeat too ("the
girl in yellow ... the girl in blue"), so the gap between the two, not the count alone, says how much
the model loops, and whether `no_repeat_ngram_size` (nmt.inference.repetition) has work to do.
Words are whitespace-separated, as written, so the count does not depend on the subword vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

WORD_NGRAM = 3  # a repeated word pair is often fine ("a man ... a man"); a repeated triple rarely is


def holds_repeated_ngram(items: Sequence, n: int) -> bool:
    """Whether `items` (words, subword ids) hold some n-gram more than once."""
    grams = [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]
    return len(set(grams)) < len(grams)


def repeats_ngram(text: str, n: int = WORD_NGRAM) -> bool:
    """Whether the words of `text` hold some n-gram more than once."""
    return holds_repeated_ngram(text.split(), n)


def repetition_report(hypotheses: Iterable[str], references: Iterable[str], n: int = WORD_NGRAM) -> dict:
    """{"ngram": n, "sentences": count, "translations": how many hypotheses repeat a word n-gram,
    "references": how many references do}."""
    hypotheses, references = list(hypotheses), list(references)
    return {"ngram": n, "sentences": len(hypotheses),
            "translations": sum(repeats_ngram(text, n) for text in hypotheses),
            "references": sum(repeats_ngram(text, n) for text in references)}


def format_repetition(report: dict) -> str:
    return (f"repeated word {report['ngram']}-grams: {report['translations']:,} of {report['sentences']:,} "
            f"translations (references: {report['references']:,})")
