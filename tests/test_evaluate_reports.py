"""Where nmt-evaluate writes its hypotheses and report, and what the report says."""
import json
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from sacrebleu.metrics import BLEU, CHRF, TER
from tiny_checkpoint import make_checkpoint

from nmt.analysis.repeats import format_repetition, repeats_ngram, repetition_report
from nmt.cli.common import config_dir
from nmt.inference.evaluate import evaluate
from nmt.inference.metrics import corpus_scores
from nmt.inference.translator import Translator
from nmt.serve.app import recorded_bleu

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def evaluate_files(checkpoint, tmp_path, *overrides, sources="ein hund läuft\n\neine frau\n",
                   references="a dog runs\n\na woman\n"):
    (tmp_path / "src.txt").write_text(sources, encoding="utf-8")
    (tmp_path / "ref.txt").write_text(references, encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", f"src_file={tmp_path / 'src.txt'}",
                                             f"ref_file={tmp_path / 'ref.txt'}", f"output_dir={tmp_path}",
                                             "device=cpu", *overrides])
    return evaluate(cfg)


def test_each_length_penalty_keeps_its_own_report(checkpoint, tmp_path):
    plain = evaluate_files(checkpoint, tmp_path, "beam_size=2")
    tuned = evaluate_files(checkpoint, tmp_path, "beam_size=2", "length_penalty=1.5")
    reports = {path.name: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert set(reports) == {"best.src.txt.beam2.json", "best.src.txt.beam2.lp1.5.json"}
    assert reports["best.src.txt.beam2.json"] == plain and plain["length_penalty"] == 1.0
    assert reports["best.src.txt.beam2.lp1.5.json"] == tuned and tuned["length_penalty"] == 1.5
    hypotheses = (tmp_path / "best.src.txt.beam2.lp1.5.hyp").read_text(encoding="utf-8").splitlines()
    assert len(hypotheses) == 3 and (tmp_path / "best.src.txt.beam2.hyp").is_file()


def test_the_report_records_the_length_limit_it_decoded_with(checkpoint, tmp_path):
    """A score depends on the output length limit too: the report says which one (max_output_len caps it)."""
    report = evaluate_files(checkpoint, tmp_path, "beam_size=2", "max_len_a=2", "max_len_b=3", "max_output_len=40")
    assert (report["max_len_a"], report["max_len_b"], report["max_output_len"]) == (2, 3, 40)
    assert json.loads((tmp_path / "best.src.txt.beam2.json").read_text())["max_output_len"] == 40
    assert evaluate_files(checkpoint, tmp_path, "max_output_len=null")["max_output_len"] is None


def test_the_hypotheses_are_the_detokenized_translations_in_input_order_and_bleu_scores_them(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=4)  # its translations differ, in several words
    sources = ["ein hund läuft", "", "eine frau", "zwei männer spielen"]
    expected = [hyps[0].text for hyps in Translator.load(checkpoint, "cpu").translate(sources, beam_size=2)]
    assert len(set(expected)) == 4 and any(" " in text for text in expected)
    assert not any("\u2581" in text for text in expected)  # text, not SentencePiece pieces
    references = [expected[0], "", "a woman", expected[3]]  # two right, so the scores depend on the pairing
    report = evaluate_files(checkpoint, tmp_path, "beam_size=2", sources="".join(f"{s}\n" for s in sources),
                            references="".join(f"{r}\n" for r in references))
    written = (tmp_path / "best.src.txt.beam2.hyp").read_text(encoding="utf-8")
    assert written == "".join(f"{text}\n" for text in expected)  # one line per source line, blank ones included
    assert report["sentences"] == 4
    scores = corpus_scores(expected, references)
    assert 0 < scores["bleu"]["score"] < 100
    for metric in ("bleu", "chrf", "ter"):
        assert report["scores"][metric]["score"] == pytest.approx(scores[metric]["score"])


def test_coverage_penalty_and_ngram_blocking_reports_keep_the_names_the_server_reads(checkpoint, tmp_path):
    """Each search setting keeps its own report, named as nmt-serve's /model expects to find it."""
    plain = evaluate_files(checkpoint, tmp_path, "beam_size=2")
    tuned = evaluate_files(checkpoint, tmp_path, "beam_size=2", "coverage_penalty=0.2", "no_repeat_ngram_size=3")
    assert sorted(path.name for path in tmp_path.glob("*.json")) == [
        "best.src.txt.beam2.cp0.2.norepeat3.json", "best.src.txt.beam2.json"]
    assert json.loads((tmp_path / "best.src.txt.beam2.cp0.2.norepeat3.json").read_text()) == tuned
    records = {(r.coverage_penalty, r.no_repeat_ngram_size): r.bleu for r in recorded_bleu(tmp_path / "best.pt")}
    assert records == {(0.0, 0): plain["scores"]["bleu"]["score"], (0.2, 3): tuned["scores"]["bleu"]["score"]}


def test_evaluate_prints_and_reports_the_attention_statistics(checkpoint, tmp_path, capsys):
    report = evaluate_files(checkpoint, tmp_path, "beam_size=2")
    assert report["attention"]["sentences"] == 2  # the blank line has no attention
    assert set(report["attention"]) == {"sentences", "entropy", "coverage_min", "coverage_max", "coverage_low",
                                        "diagonal_distance"}
    assert "attention (2 sentences, word level): entropy" in capsys.readouterr().out


def test_evaluate_counts_the_translations_and_references_that_repeat_a_word_trigram(checkpoint, tmp_path, capsys):
    report = evaluate_files(checkpoint, tmp_path, "beam_size=2", sources="ein hund läuft\neine frau\n",
                            references="a dog runs and a dog runs\na woman\n")
    hypotheses = (tmp_path / "best.src.txt.beam2.hyp").read_text(encoding="utf-8").splitlines()
    looping = sum(repeats_ngram(text, 3) for text in hypotheses)
    assert report["repetition"] == {"ngram": 3, "sentences": 2, "translations": looping, "references": 1}
    assert f"repeated word 3-grams: {looping} of 2 translations (references: 1)" in capsys.readouterr().out


def test_the_reported_scores_are_sacrebleus_of_the_written_translations_against_the_references(tmp_path):
    """Scored as detokenized text (the .hyp file), hypotheses against references: with references that
    extend each translation, every metric is far from 0 and tells the two sides apart."""
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=3)  # this seed's untrained model says several words
    sources = "ein hund läuft\neine frau spielt fußball\nzwei männer\n"
    evaluate_files(checkpoint, tmp_path, "beam_size=2", sources=sources, references="a\nb\nc\n")
    hyp_file = tmp_path / "best.src.txt.beam2.hyp"
    hypotheses = hyp_file.read_text(encoding="utf-8").splitlines()
    references = [f"{hypothesis} a dog runs" for hypothesis in hypotheses]
    report = evaluate_files(checkpoint, tmp_path, "beam_size=2", sources=sources, references="\n".join(references))
    assert hyp_file.read_text(encoding="utf-8").splitlines() == hypotheses
    for name, metric in {"bleu": BLEU(), "chrf": CHRF(), "ter": TER()}.items():
        assert report["scores"][name]["score"] == pytest.approx(metric.corpus_score(hypotheses, [references]).score)
        assert report["scores"][name]["score"] != pytest.approx(metric.corpus_score(references, [hypotheses]).score)
    assert 10 < report["scores"]["bleu"]["score"] < 90


def test_a_repeated_word_trigram_is_counted_once_per_sentence():
    assert repeats_ngram("a man in a blue shirt and a man in a red shirt")  # "a man in" twice
    assert not repeats_ngram("a man and a man")  # only bigrams repeat
    assert not repeats_ngram("") and not repeats_ngram("one two")
    report = repetition_report(["in a blue wetsuit in a blue wetsuit", "a dog runs"],
                               ["the girl in yellow and the girl in blue", "a dog"])
    assert report == {"ngram": 3, "sentences": 2, "translations": 1, "references": 1}
    assert format_repetition(report) == "repeated word 3-grams: 1 of 2 translations (references: 1)"


def test_a_report_without_any_attention_is_still_json(checkpoint, tmp_path):
    """Blank sources give empty translations and no attention: its statistics are null, not NaN."""
    evaluate_files(checkpoint, tmp_path, "beam_size=2", sources="\n \n", references="a dog\ntwo men\n")
    [report_file] = tmp_path.glob("*.json")

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    report = json.loads(report_file.read_text(encoding="utf-8"), parse_constant=refuse)
    assert report["attention"]["entropy"] is None


def test_a_hydra_sweep_tunes_the_length_penalty_in_one_command(checkpoint, tmp_path):
    """`nmt-evaluate -m ... length_penalty=1.0,1.5` runs once per value; each keeps its report."""
    (tmp_path / "src.txt").write_text("ein hund läuft\neine frau\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a dog runs\na woman\n", encoding="utf-8")
    result = subprocess.run(
        ["nmt-evaluate", "-m", f"checkpoint={checkpoint}", f"src_file={tmp_path / 'src.txt'}",
         f"ref_file={tmp_path / 'ref.txt'}", f"output_dir={tmp_path / 'out'}", "device=cpu", "beam_size=2",
         "length_penalty=1.0,1.5"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = sorted(path.name for path in (tmp_path / "out").glob("*.json"))
    assert reports == ["best.src.txt.beam2.json", "best.src.txt.beam2.lp1.5.json"]
    assert result.stdout.count("BLEU = ") == 2
    [summary] = tmp_path.glob("multirun/*/*/summary.tsv")  # the sweep ends with a table of both
    table = result.stdout[result.stdout.index("2 evaluations (also in "):].splitlines()
    assert table[1].split() == ["job", "length_penalty", "test_set", "bleu", "chrf", "ter", "sentences_per_s"]
    rows = [dict(zip(table[1].split(), line.split(), strict=True)) for line in table[2:4]]
    for row, name in zip(rows, reports, strict=True):
        report = json.loads((tmp_path / "out" / name).read_text(encoding="utf-8"))
        assert row["bleu"] == f"{report['scores']['bleu']['score']:.2f}"
        assert row["length_penalty"] == str(report["length_penalty"])
    assert len(summary.read_text(encoding="utf-8").splitlines()) == 3
