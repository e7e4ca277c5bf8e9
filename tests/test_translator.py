"""The Python API's scores: every beam size and forced decoding divide by the same length penalty."""

import re
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import one_line_error

from nmt.cli import align, evaluate, plot, translate
from nmt.cli.common import config_dir, exit_on_user_error, quote_text_overrides
from nmt.errors import CheckpointError, DecodingError
from nmt.inference.search import Sampling
from nmt.inference.translator import Translator, warn_longer_than_training
from nmt.models.seq2seq import Seq2Seq
from nmt.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCE, TRANSLATION = "ein hund läuft über die wiese", "a dog runs across the meadow"


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    return Translator.load(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt"), "cpu")


def gnmt_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_greedy_score_is_divided_by_the_length_penalty(translator, alpha):
    [[raw]] = translator.translate([SOURCE], beam_size=1, length_penalty=0.0)
    [[penalised]] = translator.translate([SOURCE], beam_size=1, length_penalty=alpha)
    assert penalised.tgt_pieces == raw.tgt_pieces
    length = len(raw.tgt_pieces)  # produced pieces, EOS included
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(length, alpha), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_forced_score_uses_the_penalty_translate_uses(translator, alpha):
    raw = translator.force(SOURCE, TRANSLATION, length_penalty=0.0)
    penalised = translator.force(SOURCE, TRANSLATION, length_penalty=alpha)
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(len(raw.tgt_pieces), alpha), rel=1e-6)
    assert translator.force(SOURCE, TRANSLATION).score == pytest.approx(
        raw.score / gnmt_penalty(len(raw.tgt_pieces), 1.0), rel=1e-6)  # the default is translate's 1.0


def broken_copy(source, target, **changes):
    state = load_checkpoint(source)
    state.pop("format_version")
    save_checkpoint({**state, **changes}, target)
    return target


def test_a_checkpoint_that_does_not_fit_the_model_names_the_file_and_the_weight(tmp_path):
    source = make_checkpoint(tmp_path / "good.pt")
    weights = {**load_checkpoint(source)["model"], "src_embed.weight": torch.zeros(3, 3)}
    path = broken_copy(source, tmp_path / "shape.pt", model=weights)
    with pytest.raises(CheckpointError, match=f"^checkpoint {path} does not match this version of nmt: "
                                              "size mismatch for src_embed.weight"):
        Translator.load(path, "cpu")
    path = broken_copy(source, tmp_path / "tokenizer.pt", tokenizers={"joint": True, "src": b"garbage"})
    with pytest.raises(CheckpointError, match=f"^{path}: checkpoint has no usable tokenizer models"):
        Translator.load(path, "cpu")


def test_nbest_lines_give_each_inputs_hypotheses_in_input_order_best_first_with_their_scores(tmp_path, capsys):
    """nmt-translate nbest=3: three `score<TAB>translation` lines per input line, in input order, each
    input's best first; a blank input still gets its three (empty) lines."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    sources = ["ein hund läuft über die wiese", "", "zwei männer"]
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", f"input={tmp_path / 'in.txt'}",
                                              "beam_size=3", "nbest=3"])
    translate.run(cfg)
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 * len(sources) and all(len(row) == 2 for row in rows)
    api = Translator.load(checkpoint, "cpu").translate(sources, beam_size=3, nbest=3)
    for k, hyps in enumerate(api):
        group = rows[3 * k: 3 * k + 3]
        scores = [float(score) for score, _ in group]
        assert scores == sorted(scores, reverse=True)  # best first
        if not sources[k]:
            assert group == [["0.0000", ""]] * 3
            continue
        assert len({h.text for h in hyps}) > 1  # distinct hypotheses: their order can be checked
        assert [text for _, text in group] == [h.text for h in hyps]
        assert scores == pytest.approx([h.score for h in hyps], abs=1e-4)


def test_inputs_longer_than_any_training_sentence_are_named_in_a_warning(translator, caplog):
    """A paragraph on one line came back as its first sentence or two, without a word of why."""
    long_line = " ".join([SOURCE] * 20)  # 120 words, more subwords than data.max_len (100)
    pieces = len(translator.tokenizers.src.encode([long_line])[0])
    assert pieces > translator.config["data"]["max_len"] == 100
    translator.translate([SOURCE, long_line], beam_size=1, max_len_a=0, max_len_b=2)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"input line 2: {pieces} subwords, longer than any sentence the model was trained on (data.max_len "
        "100): the translation may stop early; give long text one sentence a line"]
    caplog.clear()
    translator.translate([SOURCE] * 3, beam_size=1, max_len_a=0, max_len_b=2)
    assert not caplog.records


def test_the_warning_for_many_long_inputs_names_the_first_five_and_the_longest(caplog):
    lengths = [3, 101, 5, 150, 120, 101, 102, 103, 104, 100]
    warn_longer_than_training([[7] * n for n in lengths], max_len=100)
    assert [r.getMessage() for r in caplog.records] == [
        "input lines 2, 4, 5, 6, 7 and 2 more: up to 150 subwords, longer than any sentence the model was "
        "trained on (data.max_len 100): the translation may stop early; give long text one sentence a line"]
    caplog.clear()
    warn_longer_than_training([[7] * 101], max_len=100)  # a typed line, a plot's sentence
    assert caplog.records[0].getMessage().startswith("the input: 101 subwords, longer than any sentence")
    caplog.clear()
    warn_longer_than_training([[7] * n for n in lengths], max_len=None)  # trained without a limit: nothing known
    assert not caplog.records


def never_ending(monkeypatch) -> None:
    """Every model's EOS made unlikely at every step, as a real model's can be on a line far longer than
    its training sentences (it then went on repeating itself up to the length limit)."""
    decode_step = Seq2Seq.decode_step

    def without_eos(self, prev_tokens, state):
        log_probs, state, weights = decode_step(self, prev_tokens, state)
        return log_probs - 30.0 * (torch.arange(log_probs.size(-1)) == self.eos_id), state, weights

    monkeypatch.setattr(Seq2Seq, "decode_step", without_eos)


@pytest.mark.parametrize(("options", "api"), [
    (["beam_size=1"], {"beam_size": 1}),
    (["beam_size=3", "nbest=2"], {"beam_size": 3, "nbest": 2}),
    (["sampling=true", "nbest=2"], {"sampling": Sampling(), "nbest": 2}),
    (["beam_size=2", "checkpoint=[{checkpoint},{checkpoint}]"], {"beam_size": 2}),  # an ensemble
])
def test_a_long_input_line_stops_at_max_output_len_and_the_warning_names_the_cap(tmp_path, monkeypatch, capsys,
                                                                                 options, api):
    """One 20,000-character line decoded for tens of minutes: its length limit, max_len_a x source length +
    max_len_b, grew with the line. The cap holds in every search, 256 subwords by default."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    never_ending(monkeypatch)
    long_line = " ".join([SOURCE] * 20)  # 480 subwords: the length limit was 1.5 x 481 + 10 = 731
    (tmp_path / "in.de").write_text(f"{SOURCE}\n{long_line}\n", encoding="utf-8")
    models = [checkpoint] * (2 if any(o.startswith("checkpoint=") for o in options) else 1)
    for cap in (None, 12):
        monkeypatch.setattr(sys, "argv", ["nmt-translate", f"checkpoint={checkpoint}", f"input={tmp_path / 'in.de'}",
                                          f"output={tmp_path / 'out.en'}", "device=cpu",
                                          *(o.format(checkpoint=checkpoint) for o in options),
                                          *([f"max_output_len={cap}"] if cap else [])])
        translate.main()
        limit = cap or 256
        expected = Translator.load(models, "cpu").translate([SOURCE, long_line], **api, **({"max_output_len": cap}
                                                                                           if cap else {}))
        assert [len(h.tgt_pieces) for h in expected[1]] == [limit + 1] * len(expected[1])  # EOS included
        written = [line.split("\t")[-1] for line in (tmp_path / "out.en").read_text().splitlines()]
        assert written == [h.text for hyps in expected for h in hyps]
        assert capsys.readouterr().err.splitlines()[0] == (
            "input line 2: 480 subwords, longer than any sentence the model was trained on (data.max_len 100): the "
            f"translation may stop early or be cut at max_output_len={limit} subwords; give long text one sentence "
            "a line")


def test_max_output_len_none_lifts_the_cap_in_the_python_api(translator, monkeypatch):
    never_ending(monkeypatch)
    long_line = " ".join([SOURCE] * 20)
    subwords = len(translator.tokenizers.src.encode([long_line])[0])
    [[free]] = translator.translate([long_line], beam_size=1, max_output_len=None)
    assert len(free.tgt_pieces) == int(1.5 * (subwords + 1) + 10) + 1 > 256  # EOS included


# --- out of memory while decoding -------------------------------------------------------------------

CPU_ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 51200000000 bytes. Error code 12 (Cannot allocate memory)")


def fail_in_decoding(monkeypatch, error: Exception) -> None:
    """Every decoder step of the model (search, sampling and forced decoding alike) raises `error`, as a
    beam of 50,000,000 does without 50 GB to allocate: simulated, not allocated."""
    def decode_step(*args, **kwargs):
        raise error

    monkeypatch.setattr(Seq2Seq, "decode_step", decode_step)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oom")
    make_checkpoint(folder / "model.pt")
    (folder / "src.de").write_text("ein hund läuft\nzwei männer spielen fußball\n", encoding="utf-8")
    (folder / "ref.en").write_text("a dog runs\ntwo men play football\n", encoding="utf-8")
    return folder


def command_error(capsys, command: str, overrides: list[str]) -> str:
    """A command's run() on its config, as the console script runs it: the one `error:` line (exit status 2)."""
    module = {"translate": translate, "evaluate": evaluate, "plot": plot, "align": align}[command]
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose(command, overrides=quote_text_overrides([*overrides, "device=cpu"], {"src", "ref"}))
    return one_line_error(capsys, module.run, cfg)


@pytest.mark.parametrize(("command", "options", "message"), [
    ("translate", ["beam_size=50000000"],
     "host out of memory in beam search (a batch of 2 sentences x N subwords); lower beam_size (now 50000000) or "
     "batch_sentences (now 128)"),
    ("translate", ["beam_size=50000000", "batch_sentences=1"],
     "host out of memory in beam search (a batch of 1 sentence x N subwords); lower beam_size (now 50000000)"),
    ("translate", ["beam_size=8", "nbest=8"],
     "host out of memory in beam search (a batch of 2 sentences x N subwords); lower beam_size (now 8), nbest "
     "(now 8, which beam_size must reach) or batch_sentences (now 128)"),
    ("translate", ["sampling=true", "nbest=2000000"],
     "host out of memory in sampling (a batch of 2 sentences x N subwords); lower nbest (now 2000000, the samples "
     "drawn per sentence) or batch_sentences (now 128)"),
    ("translate", ["beam_size=1", "batch_sentences=1"],
     "host out of memory in greedy search (a batch of 1 sentence x N subwords); the sentence is too long for this "
     "device's memory: split it into shorter ones"),
    ("translate", ["reference={folder}/ref.en"],
     "host out of memory in scoring (a batch of 2 sentence pairs x N subwords); lower batch_sentences (now 128)"),
    ("evaluate", ["ref_file={folder}/ref.en", "output_dir={folder}/eval", "beam_size=2000000"],
     "host out of memory in beam search (a batch of 2 sentences x N subwords); lower beam_size (now 2000000) or "
     "batch_sentences (now 128)"),
    ("plot", ["src=ein hund läuft", "output={folder}/a.png", "beam_size=50000000"],
     "host out of memory in beam search (a batch of 1 sentence x N subwords); lower beam_size (now 50000000)"),
    ("plot", ["src=ein hund läuft", "ref=a dog runs", "output={folder}/a.png"],
     "host out of memory in forced decoding of a given translation (N subwords); the sentence pair is too long "
     "for this device's memory: split it into shorter ones"),
    ("align", ["tgt_file={folder}/ref.en", "batch_sentences=2"],
     "host out of memory in aligning (a batch of 2 sentence pairs x N subwords); lower batch_sentences (now 2)"),
])
def test_decoding_that_runs_out_of_host_memory_is_one_line_naming_what_to_lower(files, monkeypatch, capsys,
                                                                                command, options, message):
    fail_in_decoding(monkeypatch, RuntimeError(CPU_ALLOCATOR))
    source = "input" if command == "translate" else "src_file"
    overrides = [f"checkpoint={files / 'model.pt'}", *(o.format(folder=files) for o in options)]
    if command != "plot":
        overrides.append(f"{source}={files / 'src.de'}")
    # N: the batch's length in subwords, which depends on the tokenizer
    assert re.sub(r"\d+ subwords", "N subwords", command_error(capsys, command, overrides)) == message


def test_cuda_out_of_memory_in_decoding_says_cuda(translator, monkeypatch):
    fail_in_decoding(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 47.68 GiB (GPU 0; "
                                                         "79.15 GiB total)\nSee documentation for Memory Management"))
    with pytest.raises(DecodingError, match=r"^CUDA out of memory in beam search \(a batch of 1 sentence x \d+ "
                                            r"subwords\); lower beam_size \(now 5\)$"):
        translator.translate([SOURCE])


@pytest.mark.parametrize("method", ["translate", "score", "force"])
def test_other_runtime_errors_in_decoding_keep_their_traceback(translator, monkeypatch, method):
    """Only allocation failures are a user's mistake: another RuntimeError is a bug and is not turned into one line."""
    fail_in_decoding(monkeypatch, RuntimeError("shape mismatch: value tensor of shape [5] cannot be broadcast"))
    call = {"translate": lambda: translator.translate([SOURCE]),
            "score": lambda: translator.score([SOURCE], [TRANSLATION]),
            "force": lambda: translator.force(SOURCE, TRANSLATION)}[method]
    with pytest.raises(RuntimeError, match="^shape mismatch"):
        exit_on_user_error(lambda _: call())(None)
