"""The pieces that let a training corpus of any size be prepared in constant memory.

The training split goes by in chunks (``corpus.iter_split``), and each of these keeps only what it
must: ``Reservoir`` a seeded uniform sample for SentencePiece, ``encode_chunks`` a few chunks in
flight to the tokenization workers, ``IdFile`` the ids on disk and one length per sentence.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nmt.data.cleaning import CleanStats
from nmt.data.tokenizer import Tokenizers

Chunk = tuple[list[str], list[str]]  # aligned source and target sentences
IdChunk = tuple[list[list[int]], list[list[int]]]


class Reservoir:
    """A uniform random sample of at most ``size`` items of a stream (Vitter's algorithm R), the
    same for the same seed and stream; ``size=None`` keeps every item. While the stream is shorter
    than ``size`` the sample is the whole stream in its order."""

    def __init__(self, size: int | None, seed: int):
        self.size, self.items, self.seen = size, [], 0
        self._rng = np.random.default_rng(seed)

    def add(self, items: list) -> None:
        room = len(items) if self.size is None else max(0, self.size - len(self.items))
        self.items.extend(items[:room])
        rest = items[room:]
        if rest:
            # Item number n (0-based, counted over the whole stream) replaces slot j ~ U{0..n} when
            # j < size. Drawn for the whole chunk at once; the replacements are then applied in order.
            numbers = np.arange(self.seen + room, self.seen + len(items))  # (len(rest),)
            slots = (self._rng.random(len(rest)) * (numbers + 1)).astype(np.int64)  # (len(rest),)
            for k in np.flatnonzero(slots < self.size).tolist():
                self.items[slots[k]] = rest[k]
        self.seen += len(items)


def add_stats(total: CleanStats, part: CleanStats) -> None:
    """Count a chunk's cleaning figures into the split's."""
    total.read += part.read
    total.empty_dropped += part.empty_dropped
    total.too_long_dropped += part.too_long_dropped
    total.kept += part.kept


_worker_tokenizers: Tokenizers | None = None


def _start_worker(models: dict) -> None:
    global _worker_tokenizers
    _worker_tokenizers = Tokenizers.from_dict(models)


def _encode_in_worker(chunk: Chunk) -> IdChunk:
    return _worker_tokenizers.src.encode(chunk[0]), _worker_tokenizers.tgt.encode(chunk[1])


def _encode_here(tokenizers: Tokenizers, chunks: Iterable[Chunk]) -> Iterator[IdChunk]:
    for src, tgt in chunks:
        yield tokenizers.src.encode(src), tokenizers.tgt.encode(tgt)


def encode_chunks(tokenizers: Tokenizers, chunks: Iterable[Chunk], workers: int) -> Iterator[IdChunk]:
    """Subword ids of every chunk, in order; with ``workers > 1`` (and more than one chunk) in that
    many processes. At most ``2 * workers`` chunks are in flight: ``Pool.imap`` would read the whole
    input ahead into its task queue, which for a large corpus is the whole corpus in memory."""
    chunks = iter(chunks)
    head = list(itertools.islice(chunks, 2))
    if workers <= 1 or len(head) < 2:
        yield from _encode_here(tokenizers, itertools.chain(head, chunks))
        return
    # Processes, not threads: encoding a Python list holds the GIL. Each worker loads the models once.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _start_worker, (tokenizers.to_dict(),)) as pool:
        pending = collections.deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.apply_async(_encode_in_worker, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class IdFile:
    """Appends id sequences to a flat int32 file and remembers their lengths (8 bytes a sentence);
    ``offsets()`` then gives the (N + 1,) boundaries ``storage.RaggedIds`` needs."""

    def __init__(self, path: Path):
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._lengths: list[np.ndarray] = []

    def append(self, seqs: list[list[int]]) -> None:
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))  # (n,)
        flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(lengths.sum()))
        self._file.write(flat.tobytes())
        self._lengths.append(lengths)

    def close(self) -> None:
        self._file.close()

    def offsets(self) -> np.ndarray:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)  # (N + 1,)
        np.cumsum(lengths, out=offsets[1:])
        return offsets

    def __enter__(self) -> IdFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sample_texts(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The source and target sides of sampled pairs, for ``Tokenizers.train_from_config``."""
    return [s for s, _ in pairs], [t for _, t in pairs]

