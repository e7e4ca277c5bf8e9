"""Ensemble decoding: the mean of the members' probabilities, searched like one model, from the commands."""

import json
import math
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint

from nmt.cli.common import config_dir
from nmt.data.batching import collate
from nmt.errors import CheckpointError
from nmt.inference.ensemble import Ensemble
from nmt.inference.evaluate import evaluate
from nmt.inference.search import beam_search, forced_decode, greedy_search
from nmt.inference.translator import Translator
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCES = ["ein hund läuft über die wiese", "zwei männer spielen fußball", "eine frau"]


def other_weights(path, out, seed: int, **model_overrides):
    """A checkpoint with the same tokenizers and config as `path` but freshly initialised weights."""
    state = load_checkpoint(path)
    config = {**state["config"], "model": {**state["config"]["model"], **model_overrides}}
    vocab = state["model"]["generator.weight"].shape[0]
    torch.manual_seed(seed)
    model = build_model(config["model"], vocab, vocab, shared_vocab=True)
    save_checkpoint({"model": model.state_dict(), "config": config, "tokenizers": state["tokenizers"]}, out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    first = make_checkpoint(folder / "a.pt")
    # A different model too: Luong style, dot attention, other weights; the same vocabulary.
    second = other_weights(first, folder / "b.pt", seed=1, decoder_style="luong", attention={"name": "dot"})
    return first, second


def batch_of(translator: Translator):
    ids = translator.tokenizers.src.encode(SOURCES)
    return collate(ids, None, list(range(len(ids))))


def test_each_step_is_the_log_of_the_members_mean_probability(checkpoints):
    a, b = (Translator.load(path, "cpu").model for path in checkpoints)
    ensemble = Ensemble([a, b]).eval()
    batch = batch_of(Translator.load(checkpoints[0], "cpu"))
    prev = torch.full((len(SOURCES),), a.bos_id)
    with torch.inference_mode():
        state_a, state_b, state = a.encode(batch.src, batch.src_lengths), b.encode(batch.src, batch.src_lengths), \
            ensemble.encode(batch.src, batch.src_lengths)
        for token in (prev, prev + 5, prev + 7):  # three steps, each member on its own state
            log_a, state_a, attn_a = a.decode_step(token, state_a)
            log_b, state_b, attn_b = b.decode_step(token, state_b)
            log_e, state, attn_e = ensemble.decode_step(token, state)
            expected = torch.log((log_a.exp() + log_b.exp()) / 2)  # (B, V)
            torch.testing.assert_close(log_e, expected, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(log_e.exp().sum(-1), torch.ones(len(SOURCES)))
            torch.testing.assert_close(attn_e, (attn_a + attn_b) / 2)
            assert not torch.allclose(log_a, log_b)  # two different models, so the test means something


def test_an_ensemble_of_one_model_with_itself_searches_as_the_model(checkpoints):
    translator = Translator.load(checkpoints[0], "cpu")
    model, batch = translator.model, batch_of(translator)
    twice = Ensemble([model, model]).eval()
    for search in (greedy_search, lambda m, s, n: beam_search(m, s, n, beam_size=4, nbest=4)):
        single, doubled = search(model, batch.src, batch.src_lengths), search(twice, batch.src, batch.src_lengths)
        assert [[h.tokens for h in hyps] for hyps in doubled] == [[h.tokens for h in hyps] for hyps in single]
        for hyps_single, hyps_doubled in zip(single, doubled, strict=True):
            assert [h.score for h in hyps_doubled] == pytest.approx([h.score for h in hyps_single], abs=1e-5)


def test_forced_decoding_of_the_ensembles_beam_output_reproduces_its_score(checkpoints):
    translator = Translator.load(list(checkpoints), "cpu")
    assert isinstance(translator.model, Ensemble)
    batch = batch_of(translator)
    hyps = beam_search(translator.model, batch.src, batch.src_lengths, beam_size=3, length_penalty=1.0)
    forced = forced_decode(translator.model, batch.src, batch.src_lengths, [h[0].tokens for h in hyps],
                           length_penalty=1.0)
    assert [f.score for f in forced] == pytest.approx([h[0].score for h in hyps], abs=1e-4)
    assert all(math.isfinite(h[0].score) for h in hyps)


def test_members_must_share_direction_and_vocabulary(checkpoints, tmp_path):
    english_german = make_checkpoint(tmp_path / "en-de.pt", src_lang="en", tgt_lang="de")
    with pytest.raises(CheckpointError, match="translates en->de but .* translates de->en: an ensemble needs one"):
        Translator.load([checkpoints[0], english_german], "cpu")
    other_vocabulary = make_checkpoint(tmp_path / "other.pt", vocab_size=44)
    with pytest.raises(CheckpointError, match="use different SentencePiece models: an ensemble needs the same"):
        Translator.load([checkpoints[0], other_vocabulary], "cpu")


def test_nmt_evaluate_scores_an_ensemble_and_names_its_members(checkpoints, tmp_path, capsys):
    (tmp_path / "src.txt").write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a dog runs\ntwo men play football\na woman\n", encoding="utf-8")
    members = f"[{checkpoints[0]},{checkpoints[1]}]"
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[f"checkpoint={members}", f"src_file={tmp_path / 'src.txt'}",
                                             f"ref_file={tmp_path / 'ref.txt'}", f"output_dir={tmp_path}",
                                             "device=cpu", "beam_size=3"])
    report = evaluate(cfg)
    assert capsys.readouterr().out.startswith(f"ensemble of 2 models: {checkpoints[0]}, {checkpoints[1]}\n")
    [report_file] = tmp_path.glob("ensemble2-*.src.txt.beam3.json")
    assert json.loads(report_file.read_text()) == report
    assert report["checkpoint"] == [str(checkpoints[0]), str(checkpoints[1])]
    ensemble = Translator.load(list(checkpoints), "cpu").translate(SOURCES, beam_size=3)
    hypotheses = report_file.with_suffix(".hyp").read_text(encoding="utf-8").splitlines()
    assert hypotheses == [nbest[0].text for nbest in ensemble]


def run_command(name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    code = f"import sys; from nmt.cli.{name} import main; sys.argv = ['nmt-{name}', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_nmt_translate_with_a_list_of_checkpoints_translates_with_the_ensemble(checkpoints):
    done = run_command("translate", f"checkpoint=[{checkpoints[0]},{checkpoints[1]}]", "device=cpu",
                       "beam_size=3", stdin="\n".join(SOURCES) + "\n")
    assert done.returncode == 0, done.stderr
    ensemble = Translator.load(list(checkpoints), "cpu").translate(SOURCES, beam_size=3)
    assert done.stdout.splitlines() == [nbest[0].text for nbest in ensemble]


@pytest.mark.parametrize(("command", "option"), [("serve", "checkpoint"), ("align", "checkpoint"),
                                                 ("align", "reverse_checkpoint")])
def test_commands_for_one_model_refuse_a_list_in_one_line(checkpoints, tmp_path, command, option):
    args = [f"{option}=[{checkpoints[0]},{checkpoints[1]}]"]
    if command == "align":
        (tmp_path / "s.txt").write_text("ein hund\n", encoding="utf-8")
        args += [f"src_file={tmp_path / 's.txt'}", f"tgt_file={tmp_path / 's.txt'}", f"checkpoint={checkpoints[0]}"] \
            if option == "reverse_checkpoint" else [f"src_file={tmp_path / 's.txt'}", f"tgt_file={tmp_path / 's.txt'}"]
    done = run_command(command, *args, "port=0" if command == "serve" else "device=cpu")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {option}= takes one checkpoint here; a list of checkpoints (an ensemble) is for nmt-evaluate and "
        "nmt-translate"]
