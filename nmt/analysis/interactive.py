"""A simulated translator correcting the model word by word or key by key: the word stroke ratio (WSR)
and key stroke ratio (KSR) of interactive, prefix-based translation (Tomás & Casacuberta, 2006;
Barrachina et al., 2009).

The simulated user reads the model's translation, accepts it up to the first unit (word, or
character) that differs from the reference, and types that unit. The model then translates again with
the accepted units plus the typed one as a target prefix, and so on until the translation equals the
reference. Words are whitespace-separated tokens of the detokenized text; characters are those of the
text with its whitespace runs made single spaces. Both are compared exactly (case and punctuation
count).

Counted as one typed unit each: a corrected unit, a missing unit at the end (the translation ended too
early), and ending the sentence where the translation runs on past the reference. The stroke ratio is
the typed units over the reference's units: 0 means every translation was right as it came, 1 about
as many keystrokes (in units) as typing the reference.

Word by word, the prefix is sent ending with a space, which marks its last word as whole: the model
must start a new word after it. Key by key, the prefix is the reference's first characters, so it
often ends inside a word, which the model may then complete ("A do" -> "A dog"; see
nmt.inference.typed_prefix). Should the output still not begin with the prefix (detokenization does
not give it back, e.g. characters the vocabulary lacks), the user is counted as typing the rest of the
reference (`accepted_changed`), since no prefix can then steer the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

# (sources, target prefixes) -> one translation per source
TranslateFn = Callable[[list[str], list[str]], list[str]]
UNITS = ("word", "character")


@dataclass
class SimulationResult:
    unit: str  # "word" or "character"
    sentences: int
    reference_units: int
    typed: int
    stroke_ratio: float  # typed / reference_units: WSR for words, KSR for characters
    right_unaided: int  # sentences whose first translation was the reference
    accepted_changed: int  # sentences ended because the output did not begin with the accepted prefix
    rounds: int  # translation rounds (the first one included), each over every sentence not yet finished

    def as_dict(self) -> dict:
        return asdict(self)


def first_difference(hypothesis: Sequence[str], reference: Sequence[str]) -> int | None:
    """Index of the first unit where the two differ (the shorter one's length when one is a prefix of
    the other); None when they are equal."""
    for i, (h, r) in enumerate(zip(hypothesis, reference, strict=False)):  # lengths may differ
        if h != r:
            return i
    return None if len(hypothesis) == len(reference) else min(len(hypothesis), len(reference))


def split_units(text: str, unit: str) -> list[str]:
    """The words of `text`, or its characters with whitespace runs made single spaces."""
    return text.split() if unit == "word" else list(" ".join(text.split()))


def prefix_text(units: Sequence[str], unit: str) -> str:
    """The prefix the user has accepted or typed: whole words end with a space (the last one is
    whole too); characters are sent as they are."""
    return "".join(word + " " for word in units) if unit == "word" else "".join(units)


def simulate_corrections(translate: TranslateFn, sources: Sequence[str], references: Sequence[str],
                         first_outputs: Sequence[str] | None = None, unit: str = "word") -> SimulationResult:
    """Runs the simulated user over every (source, reference) pair with a non-empty reference; each
    round translates all unfinished sentences in one call, so the model can batch them.
    `first_outputs`: the translations without a prefix, if already made (they are the first round)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if len(sources) != len(references) or (first_outputs is not None and len(first_outputs) != len(sources)):
        raise ValueError(f"{len(sources)} sources but {len(references)} references"
                         + ("" if first_outputs is None else f" and {len(first_outputs)} first translations"))
    kept = [i for i, ref in enumerate(references) if ref.split()]
    pairs = [(sources[i], split_units(references[i], unit)) for i in kept]
    first = None if first_outputs is None else [first_outputs[i] for i in kept]
    accepted = [0] * len(pairs)  # reference units the user has accepted or typed, per sentence
    typed = right_unaided = changed = rounds = 0
    active = list(range(len(pairs)))
    while active:
        if rounds == 0 and first is not None:
            outputs = first
        else:
            outputs = translate([pairs[i][0] for i in active],
                                [prefix_text(pairs[i][1][: accepted[i]], unit) for i in active])
        rounds += 1
        still_active = []
        for i, output in zip(active, outputs, strict=True):
            reference = pairs[i][1]
            produced = split_units(output, unit)
            wrong = first_difference(produced, reference)
            if wrong is not None and len(produced) == wrong == accepted[i] - 1 and reference[wrong] == " ":
                wrong = accepted[i]  # ended right after the accepted words: the trailing space is not a change
            if wrong is None:
                right_unaided += rounds == 1
            elif wrong >= len(reference):  # the reference is all there, and the translation runs on
                typed += 1
            elif wrong < accepted[i]:  # the output changed the accepted prefix: type the rest
                typed += len(reference) - accepted[i]
                changed += 1
            else:  # type the first wrong unit, translate again from there
                typed += 1
                accepted[i] = wrong + 1
                still_active.append(i)
        active = still_active
    total = sum(len(reference) for _, reference in pairs)
    return SimulationResult(unit=unit, sentences=len(pairs), reference_units=total, typed=typed,
                            stroke_ratio=typed / total if total else 0.0, right_unaided=right_unaided,
                            accepted_changed=changed, rounds=rounds)
