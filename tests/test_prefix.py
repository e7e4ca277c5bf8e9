"""Target prefixes (prefix-constrained decoding): every output begins with the given tokens and the
search continues from there as it would have from that point, in greedy search, beam search,
sampling, the Python API and nmt-translate prefix=FILE."""

import itertools

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from toy_models import ToyModel, pad_batch, reference_beam_search, score_by_hand
from user_errors import one_line_error

from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.inference.prefix import PieceIndex, Spelling
from nmt.inference.search import Sampling, beam_search, forced_decode, greedy_search, sample
from nmt.inference.translator import Translator
from nmt.inference.typed_prefix import TargetVocabulary, plan_prefixes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = [[3, 5, 1, 7], [2], [4, 4, 6, 8, 1, 2], [5, 3]]
PREFIXES = [[4], [], [3, 3], [5, 6, 3]]  # one sentence without a prefix
SEEDS = range(4)


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def words(model: ToyModel) -> list[int]:
    return [t for t in range(model.vocab_size) if t not in (model.pad_id, model.bos_id, model.eos_id)]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_beam_search_with_prefixes_equals_plain_python_reference(seed, alpha):
    model, k = ToyModel(seed=seed, eos_bias=1.0), 3
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(model, src, lengths, beam_size=k, nbest=k, length_penalty=alpha, max_len_a=1.0,
                        max_len_b=2, prefix=PREFIXES)
    for sentence, prefix, hyps in zip(SENTENCES, PREFIXES, found, strict=True):
        expected = reference_beam_search(model, sentence, k, alpha, max_len=len(sentence) + 2, prefix=prefix)
        assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
        assert [h.score for h in hyps] == pytest.approx([score for _, score in expected], rel=1e-9)
        assert all(h.tokens[: len(prefix)] == prefix for h in hyps)


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_with_prefixes_equals_the_reference_with_one_hypothesis(seed):
    model = ToyModel(seed=seed, eos_bias=1.0)
    src, lengths = pad_batch(SENTENCES)
    found = greedy_search(model, src, lengths, max_len_a=1.0, max_len_b=2, prefix=PREFIXES)
    for sentence, prefix, [hyp] in zip(SENTENCES, PREFIXES, found, strict=True):
        [(tokens, score)] = reference_beam_search(model, sentence, 1, 0.0, max_len=len(sentence) + 2, prefix=prefix)
        assert hyp.tokens == tokens
        assert hyp.score == pytest.approx(score, rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_continues_its_own_output_unchanged(seed):
    """Forcing the first tokens greedy search chose anyway changes nothing."""
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    free = greedy_search(model, src, lengths, return_attention=True)
    own = [hyps[0].tokens[:2] for hyps in free]
    assert any(own), "the toy model should produce some tokens"
    steered = greedy_search(model, src, lengths, return_attention=True, prefix=own)
    for a, b in zip(free, steered, strict=True):
        assert a[0].tokens == b[0].tokens
        assert a[0].score == pytest.approx(b[0].score, rel=1e-12)
        torch.testing.assert_close(a[0].attention, b[0].attention)


@pytest.mark.parametrize("seed", SEEDS)
def test_wide_beam_finds_the_exhaustive_best_among_outputs_with_the_prefix(seed):
    model, max_len = ToyModel(vocab_size=6, seed=seed), 4
    everything = [list(s) for n in range(max_len + 1) for s in itertools.product(words(model), repeat=n)]
    prefixes = [[3], [], [5, 4], [4]]
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(model, src, lengths, beam_size=len(everything), max_len_a=0.0, max_len_b=max_len,
                        prefix=prefixes)
    for sentence, prefix, hyps in zip(SENTENCES, prefixes, found, strict=True):
        scores = {tuple(s): score_by_hand(model, sentence, s)[0] / lp(len(s) + 1, 1.0)
                  for s in everything if s[: len(prefix)] == prefix}
        best = max(scores, key=scores.get)
        assert hyps[0].tokens == list(best)
        assert hyps[0].score == pytest.approx(scores[best], rel=1e-9)
        unconstrained_best = max(score_by_hand(model, sentence, s)[0] / lp(len(s) + 1, 1.0) for s in everything)
        assert hyps[0].score <= unconstrained_best + 1e-12


def test_samples_begin_with_the_prefix_and_their_scores_are_the_models():
    model = ToyModel(seed=3)
    src, lengths = pad_batch(SENTENCES)
    drawn = sample(model, src, lengths, samples=4, sampling=Sampling(temperature=1.5, seed=7), prefix=PREFIXES)
    for i, (prefix, hyps) in enumerate(zip(PREFIXES, drawn, strict=True)):
        assert len(hyps) == 4
        for hyp in hyps:
            assert hyp.tokens[: len(prefix)] == prefix
            [forced] = forced_decode(model, src[i : i + 1, : lengths[i]], lengths[i : i + 1], [hyp.tokens])
            assert hyp.score == pytest.approx(forced.score, rel=1e-9)
    assert len({tuple(h.tokens) for h in drawn[1]}) > 1, "the free sentence should draw different samples"


def test_a_prefix_longer_than_the_length_limit_is_kept_whole_and_then_ended():
    model = ToyModel(seed=1)
    src, lengths = pad_batch([[3, 5]])
    long_prefix = [3, 4, 5, 6, 3, 4, 5]  # the limit is 2 tokens
    raw = score_by_hand(model, [3, 5], long_prefix)[0]  # the prefix then EOS
    [[beam]] = beam_search(model, src, lengths, beam_size=3, max_len_a=0.0, max_len_b=2, prefix=[long_prefix])
    [[greedy]] = greedy_search(model, src, lengths, max_len_a=0.0, max_len_b=2, prefix=[long_prefix])
    assert beam.tokens == greedy.tokens == long_prefix
    assert beam.score == pytest.approx(raw / lp(len(long_prefix) + 1, 1.0), rel=1e-9)  # beam's default alpha 1
    assert greedy.score == pytest.approx(raw, rel=1e-9)  # greedy's default: the raw sum


def test_a_prefix_longer_than_max_output_len_is_kept_whole_and_a_shorter_one_continued_to_it():
    model = ToyModel(seed=1, eos_bias=-30.0)  # never ends of itself
    src, lengths = pad_batch([[3, 5], [4, 4, 4, 4]])
    prefixes = [[3, 4, 5, 6, 3], [4]]  # the cap is 3 tokens
    limits = {"max_len_a": 1.5, "max_len_b": 10, "max_output_len": 3, "prefix": prefixes}
    for found in (greedy_search(model, src, lengths, **limits), beam_search(model, src, lengths, beam_size=3, **limits),
                  sample(model, src, lengths, **limits)):
        [[long], [short]] = found
        assert long.tokens == prefixes[0]
        assert len(short.tokens) == 3 and short.tokens[0] == 4


@pytest.mark.parametrize(("prefix", "message"), [
    ([[4]], "got 1 target prefixes for 2 source sentences"),
    ([[4], [ToyModel.eos_id]], "a target prefix holds pad, BOS or EOS"),
    ([[ToyModel.bos_id], []], "a target prefix holds pad, BOS or EOS"),
])
def test_prefixes_that_cannot_be_followed_are_refused(prefix, message):
    src, lengths = pad_batch([[3, 5], [4]])
    with pytest.raises(ValueError, match=message):
        beam_search(ToyModel(), src, lengths, beam_size=2, prefix=prefix)


ENDS_WORD = [True, True, False, True]  # the second sentence has no prefix: its flag must not matter
WORD_STARTS = {ToyModel.eos_id, 4, 6}  # a made-up set of tokens that begin a word


def word_starts_mask(vocab_size: int, allowed=WORD_STARTS) -> torch.Tensor:
    return torch.tensor([t in allowed for t in range(vocab_size)])  # (V,) bool


@pytest.mark.parametrize("seed", SEEDS)
def test_after_a_whole_word_prefix_beam_search_starts_a_word_as_the_reference_does(seed):
    model, k = ToyModel(seed=seed), 3
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(model, src, lengths, beam_size=k, nbest=k, max_len_a=1.0, max_len_b=2, prefix=PREFIXES,
                        prefix_ends_word=ENDS_WORD, word_starts=word_starts_mask(model.vocab_size))
    greedy = greedy_search(model, src, lengths, max_len_a=1.0, max_len_b=2, prefix=PREFIXES,
                           prefix_ends_word=ENDS_WORD, word_starts=word_starts_mask(model.vocab_size))
    for sentence, prefix, ends, hyps, [one] in zip(SENTENCES, PREFIXES, ENDS_WORD, found, greedy, strict=True):
        after = WORD_STARTS if ends else None
        expected = reference_beam_search(model, sentence, k, 1.0, max_len=len(sentence) + 2, prefix=prefix,
                                         after_prefix=after)
        assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
        assert [h.score for h in hyps] == pytest.approx([score for _, score in expected], rel=1e-9)
        [(tokens, _)] = reference_beam_search(model, sentence, 1, 0.0, max_len=len(sentence) + 2, prefix=prefix,
                                              after_prefix=after)
        assert one.tokens == tokens
        for hyp in hyps + [one]:
            if ends and prefix and len(hyp.tokens) > len(prefix):
                assert hyp.tokens[len(prefix)] in WORD_STARTS


@pytest.mark.parametrize("seed", SEEDS)
def test_the_word_start_rule_changes_what_a_prefix_gets_only_where_it_applies(seed):
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    free = beam_search(model, src, lengths, beam_size=3, prefix=PREFIXES)
    unmarked = beam_search(model, src, lengths, beam_size=3, prefix=PREFIXES, prefix_ends_word=[False] * 4,
                           word_starts=word_starts_mask(model.vocab_size))
    assert [[h.tokens for h in hyps] for hyps in unmarked] == [[h.tokens for h in hyps] for hyps in free]
    everything_starts = beam_search(model, src, lengths, beam_size=3, prefix=PREFIXES, prefix_ends_word=ENDS_WORD,
                                    word_starts=torch.ones(model.vocab_size, dtype=torch.bool))
    assert [[h.tokens for h in hyps] for hyps in everything_starts] == [[h.tokens for h in hyps] for hyps in free]


def test_samples_after_a_whole_word_prefix_start_a_word():
    model = ToyModel(seed=2)
    src, lengths = pad_batch(SENTENCES)
    drawn = sample(model, src, lengths, samples=6, sampling=Sampling(temperature=2.0, seed=3), prefix=PREFIXES,
                   prefix_ends_word=ENDS_WORD, word_starts=word_starts_mask(model.vocab_size))
    nexts = {hyp.tokens[len(prefix)] for prefix, ends, hyps in zip(PREFIXES, ENDS_WORD, drawn, strict=True)
             if prefix and ends for hyp in hyps if len(hyp.tokens) > len(prefix)}
    assert nexts and nexts <= WORD_STARTS
    unmarked = {hyp.tokens[len(PREFIXES[2])] for hyp in drawn[2] if len(hyp.tokens) > len(PREFIXES[2])}
    assert unmarked - WORD_STARTS, "the sentence whose prefix is not marked should draw other tokens too"


def test_a_word_start_set_without_eos_is_refused():
    src, lengths = pad_batch([[3, 5], [4]])
    with pytest.raises(ValueError, match="word_starts must allow EOS"):
        beam_search(ToyModel(), src, lengths, beam_size=2, prefix=[[4], []], prefix_ends_word=[True, False],
                    word_starts=word_starts_mask(ToyModel().vocab_size, {4, 6}))


PIECES = ["", "", "", "\u2581a", "b", "\u2581ab", "bc"]  # the toy vocabulary's texts; pad, BOS, EOS spell nothing
SPELLINGS = ["\u2581ab", "b", None, "\u2581abc"]  # per sentence of SENTENCES; the second has no forced tokens


def test_a_spelling_table_lists_the_pieces_that_spell_more_of_the_word():
    table = Spelling.of("\u2581ab", PieceIndex(PIECES))
    assert table.chars == 3
    allowed = {c: [t for t in range(len(PIECES)) if table.allowed[c, t]] for c in range(4)}
    assert allowed == {0: [3, 5], 1: [], 2: [4, 6], 3: list(range(len(PIECES)))}
    assert [int(table.after[0, t]) for t in (3, 5)] == [2, 3]  # "▁a" spells 2 characters, "▁ab" all 3
    assert [int(table.after[2, t]) for t in (4, 6)] == [3, 3]  # "b" ends it, "bc" ends it and goes on
    # "▁ab" would leave "c", which no piece begins: only "▁a" (then "bc") may start "▁abc".
    dead_end = Spelling.of("\u2581abc", PieceIndex(PIECES))
    assert [t for t in range(len(PIECES)) if dead_end.allowed[0, t]] == [3]
    with pytest.raises(ValueError, match="at least one character"):
        Spelling.of("", PieceIndex(PIECES))
    with pytest.raises(ValueError, match="no sequence of the vocabulary's pieces spells"):
        Spelling.of("\u2581ac", PieceIndex(PIECES))


def spelling_by_scan(text: str, pieces: list[str]) -> tuple[set, dict]:
    """What Spelling.of must give, by trying every piece at every position: the allowed
    (characters spelled, token) pairs and how many characters each pair leaves spelled."""
    spellable = [False] * len(text) + [True]
    allowed, after = set(), {}
    for c in reversed(range(len(text))):
        rest = text[c:]
        for token, piece in enumerate(pieces):
            if piece and rest.startswith(piece) and spellable[c + len(piece)]:
                allowed.add((c, token)), after.update({(c, token): c + len(piece)})
            elif piece and piece.startswith(rest):
                allowed.add((c, token)), after.update({(c, token): len(text)})
        spellable[c] = any(row == c for row, _ in allowed)
    return allowed, after


@pytest.mark.parametrize("seed", range(6))
def test_a_spelling_table_equals_a_scan_of_every_piece(seed):
    # Random vocabularies over a small alphabet, with "▁" and a character past the Basic Multilingual
    # Plane (the index finds pieces that extend a text by sorting: code points must not trip it).
    rng = torch.Generator().manual_seed(seed)
    alphabet = ["\u2581", "a", "b", "\U0001F415"]
    def draw(longest):
        size = int(torch.randint(1, longest + 1, (1,), generator=rng))
        return "".join(alphabet[int(i)] for i in torch.randint(len(alphabet), (size,), generator=rng))
    pieces = ["", "", ""] + sorted({draw(3) for _ in range(25)}) + [alphabet[1]]
    index = PieceIndex(pieces)
    checked = 0
    for _ in range(40):
        text = draw(6)
        allowed, after = spelling_by_scan(text, pieces)
        if not any(row == 0 for row, _ in allowed):
            with pytest.raises(ValueError, match="no sequence"):
                Spelling.of(text, index)
            continue
        table = Spelling.of(text, index)
        got = {(c, t) for c in range(len(text)) for t in range(len(pieces)) if table.allowed[c, t]}
        assert got == allowed
        assert {pair: int(table.after[pair]) for pair in got} == after
        assert bool(table.allowed[len(text)].all())
        checked += 1
    assert checked >= 5  # enough texts were spellable for the comparison to mean something


@pytest.mark.parametrize("seed", SEEDS)
def test_after_a_prefix_beam_and_greedy_search_spell_a_partly_typed_word_as_the_reference_does(seed):
    model, k = ToyModel(seed=seed), 3
    src, lengths = pad_batch(SENTENCES)
    spellings = [None if s is None else Spelling.of(s, PieceIndex(PIECES)) for s in SPELLINGS]
    found = beam_search(model, src, lengths, beam_size=k, nbest=k, max_len_a=1.0, max_len_b=2, prefix=PREFIXES,
                        prefix_spellings=spellings)
    greedy = greedy_search(model, src, lengths, max_len_a=1.0, max_len_b=2, prefix=PREFIXES,
                           prefix_spellings=spellings)
    for sentence, prefix, spell, hyps, [one] in zip(SENTENCES, PREFIXES, SPELLINGS, found, greedy, strict=True):
        spell = spell or ""
        expected = reference_beam_search(model, sentence, k, 1.0, max_len=len(sentence) + 2, prefix=prefix,
                                         spell=spell, pieces=PIECES)
        assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
        assert [h.score for h in hyps] == pytest.approx([score for _, score in expected], rel=1e-9)
        [(tokens, _)] = reference_beam_search(model, sentence, 1, 0.0, max_len=len(sentence) + 2, prefix=prefix,
                                              spell=spell, pieces=PIECES)
        assert one.tokens == tokens
        for hyp in hyps + [one]:
            assert hyp.tokens[: len(prefix)] == prefix
            assert "".join(PIECES[t] for t in hyp.tokens[len(prefix):]).startswith(spell)


def test_samples_spell_the_partly_typed_word():
    model = ToyModel(seed=4)
    src, lengths = pad_batch(SENTENCES)
    spellings = [None if s is None else Spelling.of(s, PieceIndex(PIECES)) for s in SPELLINGS]
    drawn = sample(model, src, lengths, samples=6, sampling=Sampling(temperature=2.0, seed=5), prefix=PREFIXES,
                   prefix_spellings=spellings)
    for i, (prefix, spell, hyps) in enumerate(zip(PREFIXES, SPELLINGS, drawn, strict=True)):
        for hyp in hyps:
            assert "".join(PIECES[t] for t in hyp.tokens[len(prefix):]).startswith(spell or "")
            [forced] = forced_decode(model, src[i : i + 1, : lengths[i]], lengths[i : i + 1], [hyp.tokens])
            assert hyp.score == pytest.approx(forced.score, rel=1e-9)
    assert len({tuple(h.tokens) for h in drawn[0]}) > 1, "the spelling leaves room for different samples"


SOURCES = ["ein hund läuft über die wiese", "zwei männer", "eine frau spielt fußball"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translator_output_begins_with_the_prefix_pieces(checkpoint, beam_size):
    translator = Translator.load(checkpoint, "cpu")
    prefixes = ["the dog ", "", "a woman plays "]  # whole words: their pieces are forced
    steered = translator.translate(SOURCES, beam_size=beam_size, prefixes=prefixes, return_attention=True)
    free = translator.translate(SOURCES, beam_size=beam_size, return_attention=True)
    for prefix, [hyp] in zip(prefixes, steered, strict=True):
        pieces = translator.tokenizers.tgt.pieces(prefix.strip()) if prefix else []
        assert hyp.tgt_pieces[: len(pieces)] == pieces
        assert hyp.attention.shape == (len(hyp.tgt_pieces), len(hyp.src_pieces))
    assert steered[1][0].tgt_pieces == free[1][0].tgt_pieces  # no prefix: as without prefixes
    assert steered[0][0].text.startswith("the dog")


def test_a_prefix_ending_with_a_space_is_followed_by_a_new_word(checkpoint):
    translator = Translator.load(checkpoint, "cpu")
    sources = SOURCES * 2
    prefixes = ["the dog", "", "a woman plays", "the dog ", " ", "a woman plays  "]
    results = translator.translate(sources, beam_size=3, nbest=3, prefixes=prefixes)
    tgt = translator.tokenizers.tgt
    for prefix, hyps in zip(prefixes[3:], results[3:], strict=True):
        if not prefix.strip():
            continue
        width = len(tgt.pieces(prefix.strip()))
        for hyp in hyps:
            assert hyp.tgt_pieces[width] == "</s>" or hyp.tgt_pieces[width].startswith("\u2581")
            assert hyp.text.split()[: len(prefix.split())] == prefix.split()
    assert [h.tgt_pieces for h in results[4]] == [h.tgt_pieces for h in results[1]]  # blank: no prefix
    # The untrained model lengthens the last word of "the dog" or "a woman plays" in some hypothesis:
    # the rule then has something to forbid.
    lengthened = [hyp for prefix, hyps in zip(prefixes[:3], results[:3], strict=True) if prefix
                  for hyp in hyps if not (hyp.tgt_pieces[len(tgt.pieces(prefix))] == "</s>"
                                          or hyp.tgt_pieces[len(tgt.pieces(prefix))].startswith("\u2581"))]
    assert lengthened


def test_typed_prefixes_become_forced_whole_words_and_a_word_to_spell(checkpoint):
    tgt = Translator.load(checkpoint, "cpu").tokenizers.tgt
    plan = plan_prefixes(["", "the dog ", "the pl", "pl", "two \U0001F415"], tgt, TargetVocabulary.of(tgt))
    assert plan.ids[:4] == [[], tgt.encode(["the dog"])[0], tgt.encode(["the"])[0], []]
    assert plan.ends_word == [False, True, False, False, False]
    assert plan.spellings[0] is None and plan.spellings[1] is None
    assert bool(plan.word_starts[tgt.encode(["two"])[0][0]]) and not bool(plan.word_starts[tgt.encode(["ab"])[0][-1]])
    vocab = tgt.ids_to_pieces(range(tgt.vocab_size))
    for spelling in plan.spellings[2:4]:  # "▁pl" in both: "▁" then "p", or the whole-word piece "▁play"
        assert spelling.chars == len("\u2581pl")
        first = {vocab[t] for t in range(tgt.vocab_size) if spelling.allowed[0, t]}
        assert {"\u2581", "\u2581play"} <= first and "\u2581the" not in first and "</s>" not in first
        assert int(spelling.after[0, vocab.index("\u2581play")]) == spelling.chars
    # A character the vocabulary lacks cannot be spelled: the pieces of the whole text are forced.
    assert plan.spellings[4] is None and plan.ids[4] == tgt.encode(["two \U0001F415"])[0]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_partly_typed_last_word_is_kept_as_typed_and_may_be_completed(checkpoint, beam_size):
    translator = Translator.load(checkpoint, "cpu")
    prefixes = ["the do", "tw", "a woman pl"]
    for sampling in (None, Sampling(temperature=2.0, seed=3)):
        results = translator.translate(SOURCES, beam_size=beam_size, nbest=beam_size, prefixes=prefixes,
                                       sampling=sampling)
        for prefix, hyps in zip(prefixes, results, strict=True):
            assert hyps and all(hyp.text.startswith(prefix) for hyp in hyps)


def command_config(checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])


def test_translate_prefix_file_steers_each_line(checkpoint, tmp_path, capsys):
    (tmp_path / "src.txt").write_text("".join(f"{s}\n" for s in SOURCES), encoding="utf-8")
    (tmp_path / "prefix.txt").write_text("the dog\n\na woman plays\n", encoding="utf-8")
    translate.run(command_config(checkpoint, f"input={tmp_path / 'src.txt'}", f"prefix={tmp_path / 'prefix.txt'}",
                                 "beam_size=3"))
    lines = capsys.readouterr().out.splitlines()
    expected = Translator.load(checkpoint, "cpu").translate(SOURCES, beam_size=3,
                                                            prefixes=["the dog", "", "a woman plays"])
    assert lines == [hyps[0].text for hyps in expected]
    assert lines[0].startswith("the dog") and lines[2].startswith("a woman plays")


@pytest.mark.parametrize(("prefix_lines", "extra", "message"), [
    ("the dog\n", [], "prefix.txt has 1 lines but the input"),
    ("the dog\n\n\n", ["reference={ref}"], "prefix= steers the translations, but reference= scores given ones"),
])
def test_translate_refuses_a_prefix_file_that_does_not_fit(checkpoint, tmp_path, capsys, prefix_lines, extra,
                                                           message):
    (tmp_path / "src.txt").write_text("".join(f"{s}\n" for s in SOURCES), encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "prefix.txt").write_text(prefix_lines, encoding="utf-8")
    overrides = [e.format(ref=tmp_path / "ref.txt") for e in extra]
    cfg = command_config(checkpoint, f"input={tmp_path / 'src.txt'}", f"prefix={tmp_path / 'prefix.txt'}", *overrides)
    assert message in one_line_error(capsys, translate.run, cfg)


def test_an_ensemble_follows_the_prefix_too(checkpoint, tmp_path):
    other = make_checkpoint(tmp_path / "other.pt", seed=1)
    ensemble = Translator.load([checkpoint, other], "cpu")
    [[steered], [free]] = ensemble.translate(SOURCES[:2], beam_size=3, prefixes=["two men", ""])
    pieces = ensemble.tokenizers.tgt.pieces("two men")
    assert steered.tgt_pieces[: len(pieces)] == pieces
    assert free.tgt_pieces == ensemble.translate([SOURCES[1]], beam_size=3)[0][0].tgt_pieces
