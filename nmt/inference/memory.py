"""Decoding that runs out of memory: one line naming what to lower, as training's does (nmt.training.guards).

A beam of 50,000,000 (beam_size), 2,000,000 samples per sentence (nbest with sampling=true) or too many
long sentences at once (batch_sentences) ask the allocator for more memory than there is; the search
would end in torch's traceback. Every way the model decodes (search_many, score_many, forced decoding in
Translator.force and word_attention) runs its batches inside `out_of_memory_advice`, so nmt-translate,
nmt-evaluate, nmt-plot, nmt-align and nmt-serve say the same. Only allocation failures are caught
(torch.OutOfMemoryError, the CPU allocator's RuntimeError): any other error is a bug and keeps its traceback.
"""

import contextlib

from nmt.errors import DecodingError
from nmt.training.guards import out_of_memory_as


def sentences(count: int, tokens: int, what: str = "sentence") -> str:
    """`3 sentences x 12 subwords`, as training's message sizes its batch."""
    return f"{count} {what}{'s' if count != 1 else ''} x {tokens} subwords"


def out_of_memory_advice(where: str, advice: str) -> contextlib.AbstractContextManager[None]:
    """Turns an out-of-memory error inside the block into a one-line DecodingError:
    "{CUDA|host} out of memory {where}; {advice}"."""
    return out_of_memory_as(lambda device: DecodingError(f"{device} out of memory {where}; {advice}"))


def lower(options: list[str], otherwise: str) -> str:
    """`lower beam_size (now 5) or batch_sentences (now 128)`; `otherwise` where nothing is left to lower."""
    if not options:
        return otherwise
    return "lower " + (options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}")


def search_advice(count: int, *, beam_size: int, nbest: int, batch_sentences: int, sampling: bool) -> str:
    """What to lower when searching (or sampling) a batch of `count` sentences ran out of memory: the
    hypotheses kept per sentence, and the batch where it holds more than one sentence."""
    options = []
    if sampling:
        options.append(f"nbest (now {nbest}, the samples drawn per sentence)")
    elif beam_size > 1 or nbest > 1:
        options.append(f"beam_size (now {beam_size})")
        if nbest > 1:
            options.append(f"nbest (now {nbest}, which beam_size must reach)")
    if count > 1:
        options.append(f"batch_sentences (now {batch_sentences})")
    return lower(options, "the sentence is too long for this device's memory: split it into shorter ones")


def scoring_advice(count: int, batch_sentences: int) -> str:
    """What to lower when forced decoding (scoring, alignment) of a batch of `count` pairs ran out of memory."""
    return lower([f"batch_sentences (now {batch_sentences})"] if count > 1 else [],
                 "the sentence pair is too long for this device's memory: split it into shorter ones")
