"""Subword tokenization with SentencePiece, trained in memory and stored as bytes.

The special ids are fixed (PAD=0, UNK=1, BOS=2, EOS=3) for every model, so the rest of the
package can use the constants without asking a tokenizer. A trained model is just its serialized
protobuf, which is what checkpoints carry: ``translate`` needs nothing but the checkpoint file.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from nmt.errors import CheckpointError, ConfigError, DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_IDS = frozenset({PAD, BOS, EOS})  # never part of a sentence; UNK is, shown as " ⁇ "
MODEL_TYPES = ("unigram", "bpe")
# Fixed rather than os.cpu_count(): SentencePiece's result can depend on the thread count, and the
# same seed should give the same model on a laptop and on a cluster node.
TRAIN_THREADS = 4


class SubwordTokenizer:
    """A trained SentencePiece model: text <-> subword ids."""

    def __init__(self, model_bytes: bytes):
        self._bytes = bytes(model_bytes)
        self._sp = spm.SentencePieceProcessor(model_proto=self._bytes)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        input_sentence_size: int = 0,
        seed: int = 0,
        num_threads: int = TRAIN_THREADS,
    ) -> SubwordTokenizer:
        """Train on ``texts`` (a random sample of ``input_sentence_size`` of them when > 0)."""
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"tokenizer.type={model_type!r} is unknown; valid: {', '.join(MODEL_TYPES)}")
        if not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_IDS) + 1:
            raise ConfigError(f"tokenizer.vocab_size must be an integer above 4; got {vocab_size!r}")
        texts = [t for t in texts if t]
        if not texts:
            raise DataError("cannot train a tokenizer: no non-empty training sentences")
        if input_sentence_size and len(texts) > input_sentence_size:
            # Sampled here, not by SentencePiece, so the sample depends on our seed alone.
            texts = random.Random(seed).sample(texts, input_sentence_size)
        spm.set_random_generator_seed(seed)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                pad_id=PAD,
                unk_id=UNK,
                bos_id=BOS,
                eos_id=EOS,
                num_threads=num_threads,
                minloglevel=2,
            )
        except RuntimeError as e:
            raise _vocab_error(e, vocab_size, len(texts), character_coverage) from e
        return cls(model.getvalue())

    @classmethod
    def from_bytes(cls, model_bytes: bytes) -> SubwordTokenizer:
        return cls(model_bytes)

    def to_bytes(self) -> bytes:
        return self._bytes

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text, without BOS/EOS (``collate`` adds those)."""
        return self._sp.encode(list(texts), out_type=int)

    def sample(self, texts: Sequence[str], alpha: float, nbest: int) -> list[list[int]]:
        """Like ``encode``, but each text's segmentation is drawn at random (subword regularization;
        see nmt/data/subword_sampling.py). One thread: with more, the draws would depend on timing."""
        return self._sp.encode(list(texts), out_type=int, enable_sampling=True, alpha=alpha,
                               nbest_size=nbest, num_threads=1)

    def decode(self, ids_batch: Sequence[Sequence[int]]) -> list[str]:
        """Detokenized text of each id sequence; PAD, BOS and EOS are skipped."""
        return self._sp.decode([[int(i) for i in ids if i not in SPECIAL_IDS] for ids in ids_batch])

    def pieces(self, text: str) -> list[str]:
        """Subword pieces of one text, e.g. for labelling attention plots."""
        return self._sp.encode(text, out_type=str)

    def ids_to_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.id_to_piece(int(i)) for i in ids]

    def decode_pieces(self, pieces: Sequence[str]) -> str:
        return self._sp.decode_pieces(list(pieces))


def _vocab_error(error: RuntimeError, vocab_size: int, n_texts: int, character_coverage: float) -> Exception:
    """Turn SentencePiece's vocabulary size errors (too high for the corpus, or too low for its
    characters) into actionable ConfigErrors; any other error is returned unchanged."""
    message = str(error)
    too_small = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if too_small:  # every character kept by the coverage needs a piece of its own
        return ConfigError(
            f"tokenizer.vocab_size={vocab_size} is too small for the characters of the training text: it "
            f"needs at least {too_small.group(1)} at tokenizer.character_coverage={character_coverage}; "
            "raise tokenizer.vocab_size or lower tokenizer.character_coverage"
        )
    if "Vocabulary size too high" not in message:
        return error
    limit = re.search(r"<= (\d+)", message)
    return VocabularyTooLarge(vocab_size, n_texts, int(limit.group(1)) if limit else None)


class VocabularyTooLarge(ConfigError):
    """tokenizer.vocab_size is more pieces than the training sentences can fill. The message ends with
    the ways to more sentences: ``with_remedies`` names the options that limited them, which the
    caller that drew the sample knows."""

    def __init__(self, vocab_size: int, n_texts: int, bound: int | None,
                 remedies: Sequence[str] = ("use more training data",)):
        self.vocab_size, self.n_texts, self.bound, self.remedies = vocab_size, n_texts, bound, tuple(remedies)
        at_most = f" (at most {bound} for these sentences)" if bound is not None else ""
        ways = ["lower tokenizer.vocab_size", *remedies]
        super().__init__(f"tokenizer.vocab_size={vocab_size} is too large for {n_texts} training sentences{at_most}; "
                         f"{', '.join(ways[:-1])} or {ways[-1]}")

    def with_remedies(self, remedies: Sequence[str]) -> VocabularyTooLarge:
        return VocabularyTooLarge(self.vocab_size, self.n_texts, self.bound, remedies)

    def __reduce__(self):  # pickled (a sweep job's error) by its fields, not by its message
        return VocabularyTooLarge, (self.vocab_size, self.n_texts, self.bound, self.remedies)


@dataclass
class Tokenizers:
    """The source and target tokenizers; with ``joint`` they are one model shared by both sides."""

    src: SubwordTokenizer
    tgt: SubwordTokenizer
    joint: bool

    @classmethod
    def train_from_config(
        cls, tok_cfg: Mapping, src_texts: Sequence[str], tgt_texts: Sequence[str], seed: int
    ) -> Tokenizers:
        """Train per the ``tokenizer`` config section (type, joint, vocab_size, character_coverage,
        sample_size: 0 = all sentences, otherwise a seeded random sample of that many)."""
        options = dict(
            model_type=tok_cfg["type"],
            vocab_size=tok_cfg["vocab_size"],
            character_coverage=float(tok_cfg["character_coverage"]),
            input_sentence_size=int(tok_cfg["sample_size"]),
            seed=seed,
        )
        if tok_cfg["joint"]:
            shared = SubwordTokenizer.train([*src_texts, *tgt_texts], **options)
            return cls(shared, shared, joint=True)
        return cls(
            SubwordTokenizer.train(src_texts, **options),
            SubwordTokenizer.train(tgt_texts, **options),
            joint=False,
        )

    def to_dict(self) -> dict:
        """Plain bytes/bool form for checkpoints (``torch.load(weights_only=True)`` can read it)."""
        if self.joint:
            return {"joint": True, "src": self.src.to_bytes()}
        return {"joint": False, "src": self.src.to_bytes(), "tgt": self.tgt.to_bytes()}

    @classmethod
    def from_dict(cls, state: Mapping) -> Tokenizers:
        try:
            src = SubwordTokenizer.from_bytes(state["src"])
            tgt = src if state["joint"] else SubwordTokenizer.from_bytes(state["tgt"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint has no usable tokenizer models ({e})") from e
        return cls(src, tgt, joint=bool(state["joint"]))

    def model_files(self) -> dict[str, bytes]:
        """File name -> model bytes, as saved next to a run (``spm.model`` or ``spm.{src,tgt}.model``)."""
        if self.joint:
            return {"spm.model": self.src.to_bytes()}
        return {"spm.src.model": self.src.to_bytes(), "spm.tgt.model": self.tgt.to_bytes()}

    def save(self, directory: str | Path) -> list[Path]:
        """Write the model file(s) into ``directory``; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in self.model_files().items():
            (directory / name).write_bytes(data)
            paths.append(directory / name)
        return paths
