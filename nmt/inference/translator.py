"""The Python API: load a checkpoint, translate strings, get attention, sample, score translations.

    from nmt.inference.search import Sampling
    from nmt.inference.translator import Translator
    translator = Translator.load("runs/smoke/.../checkpoints/best.pt")
    best = translator.translate(["Ein Hund rennt."], beam_size=5, return_attention=True)[0][0]
    print(best.text, best.score, best.attention.shape)   # (target pieces + EOS, source pieces + EOS)
    samples = translator.translate(["Ein Hund rennt."], nbest=3, sampling=Sampling(topk=10))[0]
    [given] = translator.score(["Ein Hund rennt."], ["A dog runs."])   # log_prob, tokens
"""

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from nmt.data.batching import collate
from nmt.data.tokenizer import Tokenizers
from nmt.errors import CheckpointError, ConfigError
from nmt.inference.batching import score_many, search_many
from nmt.inference.ensemble import Ensemble
from nmt.inference.memory import out_of_memory_advice, scoring_advice
from nmt.inference.search import Hypothesis, Sampling, forced_decode
from nmt.inference.typed_prefix import TargetVocabulary, plan_prefixes
from nmt.models.seq2seq import ADDED_MODEL_OPTIONS, Seq2Seq, build_model
from nmt.training.checkpoint import check_same_direction, load_checkpoint, unreadable
from nmt.training.options import check_model_values
from nmt.training.runtime import resolve_device

logger = logging.getLogger(__name__)

EOS_PIECE = "</s>"


@dataclass
class Translation:
    text: str
    score: float               # log-probability divided by the length penalty
    src_pieces: list[str]      # source subwords, ending with </s>
    tgt_pieces: list[str]      # produced subwords, ending with </s>
    attention: torch.Tensor | None  # (len(tgt_pieces), len(src_pieces)) when requested


@dataclass
class ReferenceScore:
    """How likely the model finds a given translation."""

    log_prob: float  # natural log, summed over the target subwords and EOS
    tokens: int      # target subwords + EOS


# The search options the inference commands that decode share (configs/_decoding.yaml), named as
# Translator.translate's keyword arguments.
DECODING_OPTIONS = ("beam_size", "length_penalty", "max_len_a", "max_len_b", "max_output_len")


def decoding_options(cfg) -> dict:
    """Translator.translate's keyword arguments for the search options of a command's config."""
    return {option: cfg[option] for option in DECODING_OPTIONS}


def perplexity(scores: Sequence[ReferenceScore]) -> float:
    """exp of the mean negative log-probability per target subword (EOS included), as training's
    validation perplexity is computed."""
    tokens = sum(s.tokens for s in scores)
    return math.exp(min(-sum(s.log_prob for s in scores) / max(tokens, 1), 50.0))


class Translator:
    def __init__(self, model: Seq2Seq | Ensemble, tokenizers: Tokenizers, config: dict, device: torch.device):
        self.model, self.tokenizers, self.config, self.device = model.eval(), tokenizers, config, device

    @classmethod
    def load(cls, path: str | Path | Sequence[str | Path], device: str = "auto") -> "Translator":
        """Rebuilds the model from the checkpoint alone (config, weights and SentencePiece models).

        Several paths make an ensemble (`nmt.inference.ensemble`): their models must translate the same
        direction with the same SentencePiece models; the first one's config is the translator's.
        """
        paths = [path] if isinstance(path, str | Path) else list(path)
        if not paths:
            raise ConfigError("no checkpoint given")
        loaded = [_load_model(p) for p in paths]
        _, config, tokenizers = loaded[0]
        for other_path, (_, other_config, other_tokenizers) in zip(paths[1:], loaded[1:], strict=True):
            check_same_direction(config, paths[0], other_config, other_path, "an ensemble")
            if other_tokenizers.to_dict() != tokenizers.to_dict():
                raise CheckpointError(f"{other_path} and {paths[0]} use different SentencePiece models: an "
                                      "ensemble needs the same vocabulary (models trained on the same data "
                                      "with the same tokenizer settings)")
        models = [model for model, _, _ in loaded]
        dev = resolve_device(device)
        model = models[0] if len(models) == 1 else Ensemble(models)
        return cls(model.to(dev), tokenizers, config, dev)

    def translate(self, texts: Sequence[str], *, beam_size: int = 5, nbest: int = 1, length_penalty: float = 1.0,
                  coverage_penalty: float = 0.0, no_repeat_ngram_size: int = 0, max_len_a: float = 1.5,
                  max_len_b: int = 10, max_output_len: int | None = 256, return_attention: bool = False,
                  batch_sentences: int = 128, sampling: Sampling | None = None,
                  prefixes: Sequence[str] | None = None,
                  on_batch: Callable[[int], None] | None = None) -> list[list[Translation]]:
        """One n-best list per input text (best first). Blank inputs give one empty translation.
        With `sampling`, `nbest` random translations per text instead of a search (beam_size unused).
        `prefixes[i]`, if given, is text every translation of texts[i] begins with ("" for none): the
        search continues it, as in interactive translation. A prefix ending with a space ("The dog ")
        ends with a whole word: the next subword starts a new word (or the translation ends); without
        the space its last word is still being typed, and the search may complete it ("The do" ->
        "The dog"). See nmt.inference.typed_prefix.
        `no_repeat_ngram_size` = n > 0: no translation repeats one of its own n-grams of subwords.
        A translation has at most floor(max_len_a * source subwords + max_len_b) subwords, and at most
        `max_output_len` (None: no cap), the inference commands' default (configs/_decoding.yaml).
        `on_batch` is called with the number of sentences of each finished batch."""
        if nbest < 1 or (sampling is None and not 1 <= nbest <= beam_size):
            raise ConfigError(f"need 1 <= nbest <= beam_size, got nbest={nbest}, beam_size={beam_size}")
        if prefixes is not None and len(prefixes) != len(texts):
            raise ConfigError(f"got {len(prefixes)} target prefixes for {len(texts)} texts: one per text")
        src_ids = [ids if text.strip() else [] for text, ids in
                   zip(texts, self.tokenizers.src.encode([t.strip() for t in texts]), strict=True)]
        warn_longer_than_training(src_ids, self.config.get("data", {}).get("max_len"),
                                  output_cap(src_ids, max_len_a, max_len_b, max_output_len))
        plan = None if prefixes is None else plan_prefixes(prefixes, self.tokenizers.tgt, self._target_vocabulary)
        hyps = search_many(self.model, src_ids, beam_size=beam_size, nbest=nbest, length_penalty=length_penalty,
                           coverage_penalty=coverage_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                           max_len_a=max_len_a, max_len_b=max_len_b, max_output_len=max_output_len,
                           return_attention=return_attention, batch_sentences=batch_sentences, device=self.device,
                           sampling=sampling,
                           prefix_ids=plan and plan.ids, prefix_ends_word=plan and plan.ends_word,
                           word_starts=plan and plan.word_starts, prefix_spellings=plan and plan.spellings,
                           on_batch=on_batch)
        return [[self._to_translation(ids, h) for h in nbest_list] or [Translation("", 0.0, [], [], None)]
                for ids, nbest_list in zip(src_ids, hyps, strict=True)]

    @cached_property
    def _target_vocabulary(self) -> TargetVocabulary:
        """Read from the target tokenizer the first time a prefix is given, then kept."""
        return TargetVocabulary.of(self.tokenizers.tgt)

    def force(self, src_text: str, tgt_text: str, *, length_penalty: float = 1.0) -> Translation:
        """Scores a given translation (as `translate` scores its outputs) and returns the attention
        the model pays while producing it."""
        src_ids = self.tokenizers.src.encode([src_text.strip()])[0]
        tgt_ids = self.tokenizers.tgt.encode([tgt_text.strip()])[0]
        if not src_ids:
            raise ConfigError("the source sentence is empty")
        tokens = max(len(src_ids), len(tgt_ids)) + 1
        with out_of_memory_advice(f"in forced decoding of a given translation ({tokens} subwords)",
                                  scoring_advice(1, 1)):
            batch = collate([src_ids], None, [0]).to(self.device)
            hyp = forced_decode(self.model, batch.src, batch.src_lengths, [tgt_ids],
                                length_penalty=length_penalty)[0]
        return self._to_translation(src_ids, hyp)

    def score(self, src_texts: Sequence[str], tgt_texts: Sequence[str], *, batch_sentences: int = 128,
              on_batch: Callable[[int], None] | None = None) -> list[ReferenceScore]:
        """The model's log-probability of each given translation tgt_texts[i] of src_texts[i]
        (forced decoding: no search, no length penalty)."""
        if len(src_texts) != len(tgt_texts):
            raise ConfigError(f"got {len(tgt_texts)} translations for {len(src_texts)} sources")
        src_ids = self.tokenizers.src.encode([t.strip() for t in src_texts])
        tgt_ids = self.tokenizers.tgt.encode([t.strip() for t in tgt_texts])
        log_probs = score_many(self.model, src_ids, tgt_ids, batch_sentences=batch_sentences, device=self.device,
                               on_batch=on_batch)
        return [ReferenceScore(lp, len(ids) + 1) for lp, ids in zip(log_probs, tgt_ids, strict=True)]

    def _to_translation(self, src_ids: list[int], hyp: Hypothesis) -> Translation:
        return Translation(
            text=self.tokenizers.tgt.decode([hyp.tokens])[0], score=hyp.score,
            src_pieces=self.tokenizers.src.ids_to_pieces(src_ids) + [EOS_PIECE],
            tgt_pieces=self.tokenizers.tgt.ids_to_pieces(hyp.tokens) + [EOS_PIECE],
            attention=hyp.attention)


def output_cap(src_ids: Sequence[Sequence[int]], max_len_a: float, max_len_b: float,
               max_output_len: int | None) -> int | None:
    """`max_output_len` where it cuts the length limit of the longest input (max_len_a x its subwords
    and EOS + max_len_b, as the search computes it), else None."""
    longest = max((len(ids) for ids in src_ids), default=0)
    if max_output_len is None or math.floor(max_len_a * (longest + 1) + max_len_b) <= max_output_len:
        return None
    return max_output_len


def warn_longer_than_training(src_ids: Sequence[Sequence[int]], max_len: int | None,
                              output_cap: int | None = None) -> None:
    """Warns about inputs longer than any training sentence (data.max_len subwords): the model has never
    learnt to go on that long, so its translation of a paragraph on one line stops after a sentence or
    two. Numbered from 1, as the lines of an input file; one text alone (a typed line, a plot) is "the input".
    `output_cap`: the max_output_len that cuts the longest one's translation, named in the same line."""
    long = [i for i, ids in enumerate(src_ids) if max_len is not None and len(ids) > max_len]
    if not long:
        return
    shown = ", ".join(str(i + 1) for i in long[:5]) + (f" and {len(long) - 5} more" if len(long) > 5 else "")
    longest = max(len(src_ids[i]) for i in long)
    size = f"up to {longest}" if len(long) > 1 else str(longest)
    which = "the input" if len(src_ids) == 1 else f"input line{'s' if len(long) > 1 else ''} {shown}"
    cut = "" if output_cap is None else f" or be cut at max_output_len={output_cap} subwords"
    logger.warning(f"{which}: {size} subwords, longer than any sentence "
                   f"the model was trained on (data.max_len {max_len}): the translation may stop early{cut}; "
                   "give long text one sentence a line")


def _load_model(path: str | Path) -> tuple[Seq2Seq, dict, Tokenizers]:
    """The model of one checkpoint, its training config and its tokenizers."""
    state = load_checkpoint(path)
    try:
        config, tokenizers = state["config"], Tokenizers.from_dict(state["tokenizers"])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model = build_model(config["model"], tokenizers.src.vocab_size, tokenizers.tgt.vocab_size,
                            shared_vocab=tokenizers.joint)
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this version of nmt: {_detail(exc)}") from None
    except (TypeError, ValueError):  # an option of the wrong kind (model.emb_size: "big"), edited by hand
        raise unreadable(path, "config.model", _bad_model_option(config["model"])) from None
    return model, config, tokenizers


def _bad_model_option(model: dict) -> str | None:
    """The first model option that training would have refused, as training words it, or None."""
    try:  # with the options that checkpoints older than them lack, as build_model takes them
        check_model_values({**ADDED_MODEL_OPTIONS, **model})
    except ConfigError as exc:
        return str(exc)
    return None


def _detail(exc: Exception) -> str:
    """The line of an error that says what differs: load_state_dict's first line only names the model."""
    if isinstance(exc, KeyError):  # a bare key name says little on its own
        return f"its config has no option {exc.args[0]!r}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
