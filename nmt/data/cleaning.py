"""Dropping sentence pairs that would only add noise to training: empty sides and very long pairs.

Both sides of a pair are always kept or dropped together, so the corpus stays aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class CleanStats:
    """How many pairs were read, dropped (and why) and kept; ``str()`` gives a log line."""

    read: int = 0
    empty_dropped: int = 0
    too_long_dropped: int = 0
    kept: int = 0

    def __str__(self) -> str:
        return (
            f"read {self.read}, dropped {self.empty_dropped} with an empty side and "
            f"{self.too_long_dropped} too long, kept {self.kept}"
        )


def word_count(text: str) -> int:
    """Default length measure before subword tokenization: whitespace-separated words."""
    return len(text.split())


def clean_pairs(
    src: Sequence[str],
    tgt: Sequence[str],
    *,
    max_len: int | None = None,
    length_fn: Callable[[str], int] | None = None,
) -> tuple[list[str], list[str], CleanStats]:
    """Strip whitespace, drop pairs with an empty side and (given ``max_len``) pairs where either side
    is longer than ``max_len`` as measured by ``length_fn`` (default: word count)."""
    if len(src) != len(tgt):
        raise ValueError(f"clean_pairs needs aligned sides, got {len(src)} and {len(tgt)} sentences")
    length_fn = length_fn or word_count
    stats = CleanStats(read=len(src))
    kept_src, kept_tgt = [], []
    for s, t in zip(src, tgt, strict=True):
        s, t = s.strip(), t.strip()
        if not s or not t:
            stats.empty_dropped += 1
        elif max_len is not None and (length_fn(s) > max_len or length_fn(t) > max_len):
            stats.too_long_dropped += 1
        else:
            kept_src.append(s)
            kept_tgt.append(t)
    stats.kept = len(kept_src)
    return kept_src, kept_tgt, stats


def drop_long(
    src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], max_len: int | None, stats: CleanStats
) -> tuple[list, list]:
    """Length filter for already tokenized pairs (``max_len`` in tokens, either side), counted into
    ``stats``; used for the subword limit, which is only known after tokenization."""
    if max_len is None:
        return list(src), list(tgt)
    keep = [
        i for i, (s, t) in enumerate(zip(src, tgt, strict=True)) if len(s) <= max_len and len(t) <= max_len
    ]
    stats.too_long_dropped += len(src) - len(keep)
    stats.kept -= len(src) - len(keep)
    return [src[i] for i in keep], [tgt[i] for i in keep]
