"""A simulated translator correcting the model word by word: the word stroke ratio (WSR) of interactive,
prefix-based translation (Tomás & Casacuberta, 2006; Barrachina et al., 2009).

The simulated user reads the model's translation, accepts it up to the first word that differs from
the reference, and types that word. The model then translates again with the accepted words plus the
typed one as a target prefix, and so on until the translation equals the reference. Words are
whitespace-separated tokens of the detokenized text, compared exactly (case and punctuation count).

Counted as one typed word each: a corrected word, a missing word at the end (the translation ended too
early), and ending the sentence where the translation runs on past the reference. WSR is the typed
words over the reference words: 0 means every translation was right as it came, 1 about as many
keystrokes (in words) as typing the reference.

The prefix is sent as text ending with a space, which marks its last word as whole: the model must
start a new word after it (nmt.inference.translator), as the user has typed the whole word. Should the
output still change an accepted word (detokenization does not give the prefix back, e.g. characters
the vocabulary lacks), the user is counted as typing the rest of the reference
(`accepted_word_changed`), since no prefix can then steer the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

# (sources, target prefixes) -> one translation per source
TranslateFn = Callable[[list[str], list[str]], list[str]]


@dataclass
class SimulationResult:
    sentences: int
    reference_words: int
    typed_words: int
    word_stroke_ratio: float  # typed_words / reference_words
    right_unaided: int  # sentences whose first translation was the reference
    accepted_word_changed: int  # sentences ended because the model changed an accepted word
    rounds: int  # translation rounds (the first one included), each over every sentence not yet finished

    def as_dict(self) -> dict:
        return asdict(self)


def first_difference(hypothesis: Sequence[str], reference: Sequence[str]) -> int | None:
    """Index of the first word where the two differ (the shorter one's length when one is a prefix of
    the other); None when they are equal."""
    for i, (h, r) in enumerate(zip(hypothesis, reference, strict=False)):  # lengths may differ
        if h != r:
            return i
    return None if len(hypothesis) == len(reference) else min(len(hypothesis), len(reference))


def simulate_corrections(translate: TranslateFn, sources: Sequence[str], references: Sequence[str],
                         first_outputs: Sequence[str] | None = None) -> SimulationResult:
    """Runs the simulated user over every (source, reference) pair with a non-empty reference; each
    round translates all unfinished sentences in one call, so the model can batch them.
    `first_outputs`: the translations without a prefix, if already made (they are the first round)."""
    if len(sources) != len(references) or (first_outputs is not None and len(first_outputs) != len(sources)):
        raise ValueError(f"{len(sources)} sources but {len(references)} references"
                         + ("" if first_outputs is None else f" and {len(first_outputs)} first translations"))
    kept = [i for i, ref in enumerate(references) if ref.split()]
    pairs = [(sources[i], references[i].split()) for i in kept]
    first = None if first_outputs is None else [first_outputs[i] for i in kept]
    accepted = [0] * len(pairs)  # reference words the user has accepted or typed, per sentence
    typed = right_unaided = continued = rounds = 0
    active = list(range(len(pairs)))
    while active:
        if rounds == 0 and first is not None:
            outputs = first
        else:
            # The trailing space marks the prefix's last word as whole (nmt.inference.translator).
            outputs = translate([pairs[i][0] for i in active],
                                ["".join(word + " " for word in pairs[i][1][: accepted[i]]) for i in active])
        rounds += 1
        still_active = []
        for i, output in zip(active, outputs, strict=True):
            reference = pairs[i][1]
            wrong = first_difference(output.split(), reference)
            if wrong is None:
                right_unaided += rounds == 1
            elif wrong >= len(reference):  # the reference is all there, and the translation runs on
                typed += 1
            elif wrong < accepted[i]:  # the model continued an accepted word: type the rest
                typed += len(reference) - accepted[i]
                continued += 1
            else:  # type the first wrong word, translate again from there
                typed += 1
                accepted[i] = wrong + 1
                still_active.append(i)
        active = still_active
    words = sum(len(reference) for _, reference in pairs)
    return SimulationResult(sentences=len(pairs), reference_words=words, typed_words=typed,
                            word_stroke_ratio=typed / words if words else 0.0, right_unaided=right_unaided,
                            accepted_word_changed=continued, rounds=rounds)
