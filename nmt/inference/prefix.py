"""Target prefixes for search: what every hypothesis of a sentence must begin with.

Three rules, each optional per sentence, applied by `TargetPrefix.restrict` to the candidate scores
of every step (nmt.inference.search calls it):

- forced tokens: during the first len(prefix) steps the only allowed token is the prefix's next one;
- a whole-word end (`ends_word`): right after the forced tokens the next token must start a word
  (a `word_starts` token, EOS included), so the prefix's last word cannot grow ("dog" -> "dogs");
- a partly typed word (`Spelling`): after the forced tokens, the next tokens must spell given
  characters ("▁do" for a user who has typed "The do"), and may go on past them within their last
  piece ("▁dog"), so the model completes the word its own way instead of being forced through the
  pieces SentencePiece gives the fragment.

Spelling state is per hypothesis: how many of the characters its tokens have spelled so far, (B, K),
reordered through the chosen parents by `advance`. Tokens are scored like any other, so forced
decoding of an output reproduces its score.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Character counts in the spelling tables: a word is far shorter than 32,767 characters, and a
# (B, C + 1, V) table of int16 takes a quarter of the memory of int64 (33 MB for 128 sentences,
# 15 characters and 8,000 subwords).
COUNT = torch.int16


class PieceIndex:
    """A vocabulary's piece texts indexed for spelling, built once per vocabulary: by text, to find
    the pieces that begin a given string, and sorted, to find the pieces that a string begins. Both
    lookups cost a few dictionary probes or a binary search, not a pass over the vocabulary (most
    pieces start with the same "▁"). `pieces[v]` is token v's text, "" for tokens that spell nothing
    (pad, BOS, EOS, UNK)."""

    def __init__(self, pieces: Sequence[str]):
        self.size = len(pieces)
        self.by_text: dict[str, list[int]] = defaultdict(list)  # piece -> its tokens
        for token, piece in enumerate(pieces):
            if piece:
                self.by_text[piece].append(token)
        self.longest = max((len(piece) for piece in self.by_text), default=0)
        self.sorted = sorted(self.by_text)  # the distinct pieces, in code point order

    def prefixes_of(self, text: str) -> Iterator[tuple[int, str]]:
        """(token, piece) for every piece that `text` begins with, the piece included if equal."""
        for end in range(1, min(len(text), self.longest) + 1):
            for token in self.by_text.get(text[:end], ()):
                yield token, text[:end]

    def extensions_of(self, text: str) -> Iterator[tuple[int, str]]:
        """(token, piece) for every piece that begins with `text` and is longer."""
        at = bisect.bisect_right(self.sorted, text)  # past `text` itself; extensions sort right after it
        while at < len(self.sorted) and self.sorted[at].startswith(text):
            piece = self.sorted[at]
            for token in self.by_text[piece]:
                yield token, piece
            at += 1


@dataclass
class Spelling:
    """Characters that the tokens after a prefix must spell. allowed[c, v]: token v may come once c
    characters are spelled; after[c, v]: how many are spelled then. Row C (all spelled) allows all."""

    allowed: Tensor  # (C + 1, V) bool
    after: Tensor  # (C + 1, V) COUNT

    @classmethod
    def of(cls, text: str, pieces: PieceIndex) -> Spelling:
        """`text` in piece characters (SentencePiece's ▁ for a word start); tokens that spell nothing
        may not come before the end. A ValueError if no sequence of pieces spells `text`."""
        if not text:
            raise ValueError("a spelling needs at least one character")
        if len(text) >= torch.iinfo(COUNT).max:
            raise ValueError(f"a word of {len(text):,} characters is too long to spell")
        chars, vocab = len(text), pieces.size
        # Backwards, so that a token is allowed only where the rest can still be spelled: no dead ends.
        spellable = [False] * chars + [True]  # spellable[c]: the characters from c on can be spelled
        rows, cols, spelled = [], [], []
        for c in reversed(range(chars)):
            rest = text[c:]
            for token, piece in pieces.prefixes_of(rest):  # spells some of the rest, or all of it
                if spellable[c + len(piece)]:
                    rows.append(c), cols.append(token), spelled.append(c + len(piece))
                    spellable[c] = True
            for token, _ in pieces.extensions_of(rest):  # spells all of it, and more of the word
                rows.append(c), cols.append(token), spelled.append(chars)
                spellable[c] = True
        if not spellable[0]:
            raise ValueError(f"no sequence of the vocabulary's pieces spells {text!r}")
        allowed = torch.zeros(chars + 1, vocab, dtype=torch.bool)  # (C + 1, V)
        allowed[chars] = True
        after = torch.full((chars + 1, vocab), chars, dtype=COUNT)  # (C + 1, V)
        allowed[rows, cols] = True
        after[rows, cols] = torch.tensor(spelled, dtype=COUNT)
        return cls(allowed, after)

    @property
    def chars(self) -> int:
        return self.allowed.size(0) - 1


@dataclass
class TargetPrefix:
    """The prefixes of a batch: forced tokens (B, P) padded with pad, their lengths (B,), and the
    optional whole-word and spelling rules (see the module doc)."""

    tokens: Tensor  # (B, P) long
    lengths: Tensor  # (B,) long
    width: int  # P, kept as a Python int so the step loop can test it without a host sync
    ends_word: Tensor | None = None  # (B,) bool: the token after the prefix must start a word
    word_starts: Tensor | None = None  # (V,) bool: the tokens that start a word, and EOS
    spell_allowed: Tensor | None = None  # (B, C + 1, V) bool, C = the longest spelling
    spell_after: Tensor | None = None  # (B, C + 1, V) COUNT
    spell_chars: Tensor | None = None  # (B,) long: characters each sentence must spell (0: none)
    spelled: Tensor | None = None  # (B, K) long: characters each hypothesis has spelled, once searching
    batch_rows: Tensor | None = None  # (B, 1) long: 0..B-1, to index the tables per sentence

    @property
    def last_step(self) -> float:
        """The last step `restrict` can change (a Python int: no host sync): the prefix's last token,
        or the one after it; with a spelling, any step, as a word may take many tokens."""
        if self.spell_allowed is not None:
            return math.inf
        return self.width if self.ends_word is not None else self.width - 1

    @property
    def min_lengths(self) -> Tensor:
        """(B,) tokens a sentence needs before EOS: its forced tokens, and one per spelled character
        at most."""
        return self.lengths if self.spell_chars is None else self.lengths + self.spell_chars

    @classmethod
    def build(cls, prefix: list[list[int]] | None, *, batch: int, pad_id: int, special: set[int],
              eos_id: int, device: torch.device, ends_word: list[bool] | None = None,
              word_starts: Tensor | None = None,
              spellings: Sequence[Spelling | None] | None = None) -> TargetPrefix | None:
        """None when no sentence has a prefix. The prefixes are checked: one per source sentence (of
        `batch`), and no `special` ids in them (search never produces those inside a translation).
        `ends_word[i]`: sentence i's non-empty prefix ends with a whole word, so its next token must be
        one of `word_starts` ((V,) bool). `spellings[i]`: characters its next tokens must spell."""
        has_spelling = spellings is not None and any(s is not None for s in spellings)
        if (prefix is None or not any(prefix)) and not has_spelling:
            return None
        prefix = prefix if prefix is not None else [[] for _ in range(batch)]
        if len(prefix) != batch or (spellings is not None and len(spellings) != batch):
            raise ValueError(f"got {len(prefix)} target prefixes for {batch} source sentences")
        if any(t in special for p in prefix for t in p):
            raise ValueError(f"a target prefix holds pad, BOS or EOS (ids {sorted(special)})")
        width = max(len(p) for p in prefix)
        rows = [list(p) + [pad_id] * (width - len(p)) for p in prefix]
        tokens = torch.tensor(rows, dtype=torch.long, device=device).view(batch, width)  # (B, P)
        lengths = torch.tensor([len(p) for p in prefix], dtype=torch.long, device=device)  # (B,)
        result = cls(tokens, lengths, width)
        if ends_word is not None and any(e and p for e, p in zip(ends_word, prefix, strict=False)):
            if len(ends_word) != len(prefix) or word_starts is None:
                raise ValueError(f"prefix_ends_word needs one flag per prefix ({len(prefix)}, got "
                                 f"{len(ends_word)}) and the word_starts mask")
            if not bool(word_starts[eos_id]):
                raise ValueError("word_starts must allow EOS: a prefix of whole words may be the whole translation")
            result.ends_word = torch.tensor([bool(e and p) for e, p in zip(ends_word, prefix, strict=True)],
                                            device=device)  # (B,)
            result.word_starts = word_starts.to(device=device, dtype=torch.bool)  # (V,)
        if has_spelling:
            result._stack_spellings(spellings, device)
        return result

    def _stack_spellings(self, spellings: Sequence[Spelling | None], device: torch.device) -> None:
        """One (B, C + 1, V) table of all sentences' spellings; a sentence's rows past its own spelling,
        and all rows of a sentence without one, allow every token and stay where they are."""
        vocab = next(s for s in spellings if s is not None).allowed.size(1)
        longest = max(s.chars for s in spellings if s is not None)
        allowed = torch.ones(len(spellings), longest + 1, vocab, dtype=torch.bool)  # (B, C + 1, V)
        after = torch.zeros(len(spellings), longest + 1, vocab, dtype=COUNT)  # (B, C + 1, V)
        chars = []
        for b, spelling in enumerate(spellings):
            own = 0 if spelling is None else spelling.chars
            if spelling is not None:
                if spelling.allowed.size(1) != vocab:
                    raise ValueError("every spelling must cover the same vocabulary")
                allowed[b, : own + 1] = spelling.allowed
                after[b, : own + 1] = spelling.after
            after[b, own:] = own
            chars.append(own)
        self.spell_allowed, self.spell_after = allowed.to(device), after.to(device)
        self.spell_chars = torch.tensor(chars, dtype=torch.long, device=device)  # (B,)
        self.batch_rows = torch.arange(len(spellings), device=device)[:, None]  # (B, 1)

    def restrict(self, candidates: Tensor, step: int) -> None:
        """In place: every candidate (B, K, V) that breaks a rule at `step` becomes -inf."""
        if step < self.width:
            vocab = torch.arange(candidates.size(-1), device=candidates.device)  # (V,)
            inside = step < self.lengths  # (B,)
            other = vocab != self.tokens[:, step, None]  # (B, V)
            candidates.masked_fill_((inside[:, None] & other)[:, None, :], -math.inf)  # (B, K, V)
        if self.ends_word is not None:
            just_ended = self.ends_word & (self.lengths == step)  # (B,)
            candidates.masked_fill_((just_ended[:, None] & ~self.word_starts)[:, None, :], -math.inf)  # (B, K, V)
        if self.spell_allowed is not None:
            if self.spelled is None:
                self.spelled = torch.zeros(candidates.shape[:2], dtype=torch.long, device=candidates.device)  # (B, K)
            allowed = self.spell_allowed[self.batch_rows, self.spelled]  # (B, K, V)
            past_forced = (step >= self.lengths)[:, None, None]  # (B, 1, 1)
            candidates.masked_fill_(past_forced & ~allowed, -math.inf)  # (B, K, V)

    def done(self, step: int, hypotheses: int) -> Tensor:
        """(B, K) bool: which hypotheses are past every rule at `step`: their forced tokens are all
        produced and their word is spelled. Other restrictions (blocking repeats) wait until then, so
        that they never forbid what the prefix requires."""
        done = (step >= self.lengths)[:, None].expand(-1, hypotheses)  # (B, K)
        if self.spell_chars is not None:
            spelled = self.spelled if self.spelled is not None else torch.zeros_like(done, dtype=torch.long)  # (B, K)
            done = done & (spelled >= self.spell_chars[:, None])  # (B, K)
        return done

    def advance(self, parent: Tensor, token: Tensor, step: int) -> None:
        """After a step chose (parent (B, K), token (B, K)): each hypothesis's spelled count follows
        its parent's and the token it added."""
        if self.spelled is None:
            return
        spelled = self.spelled.gather(1, parent)  # (B, K)
        moved = self.spell_after[self.batch_rows, spelled, token].long()  # (B, K)
        self.spelled = torch.where((step >= self.lengths)[:, None], moved, spelled)  # (B, K)
