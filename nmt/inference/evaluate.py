"""Scores a checkpoint on a test set: hypotheses, BLEU/chrF/TER with signatures, attention statistics
of the output, optionally the perplexity of the references and the word stroke ratio of a simulated
interactive translation, a JSON report."""

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.analysis.attention_stats import corpus_statistics, format_statistics
from nmt.analysis.interactive import SimulationResult, simulate_corrections
from nmt.analysis.repeats import format_repetition, repetition_report
from nmt.data.pipeline import load_test_split
from nmt.data.readers import CONVERT_TO_UTF8, read_lines
from nmt.errors import ConfigError, DataError
from nmt.files import replace_contents
from nmt.inference.metrics import corpus_scores, format_scores
from nmt.inference.progress import DecodingProgress
from nmt.inference.translator import Translator, decoding_options, perplexity
from nmt.values import path_list

log = logging.getLogger(__name__)


def load_references(cfg: DictConfig, translator: Translator) -> tuple[list[str], list[str], str]:
    """(sources, references, name of the test set) from src_file/ref_file or a split of the corpus."""
    if cfg.src_file or cfg.ref_file:
        if not (cfg.src_file and cfg.ref_file):
            raise ConfigError("give both src_file=... and ref_file=... (or neither, to use split=...)")
        src, ref = read_lines(cfg.src_file, hint=CONVERT_TO_UTF8), read_lines(cfg.ref_file, hint=CONVERT_TO_UTF8)
        if len(src) != len(ref):
            raise DataError(f"{cfg.src_file} has {len(src)} lines but {cfg.ref_file} has {len(ref)}")
        if not src:
            raise DataError(f"src_file={cfg.src_file} and ref_file={cfg.ref_file} are empty: nothing to score")
        return src, ref, Path(cfg.src_file).name
    train_cfg = OmegaConf.create(translator.config)
    root = cfg.data_root or os.environ.get("NMT_DATA_DIR")
    if root:
        train_cfg.data.root = root
    src, ref = load_test_split(train_cfg, cfg.split, translator.tokenizers)
    if not src:
        raise DataError(f"split={cfg.split} holds no sentences: nothing to score")
    return src, ref, cfg.split


def evaluate(cfg: DictConfig) -> dict:
    checkpoints = [Path(p) for p in path_list("checkpoint", cfg.checkpoint)]
    translator = Translator.load(checkpoints, cfg.device)
    sources, references, test_name = load_references(cfg, translator)
    start = time.perf_counter()
    nbest_lists = translator.translate(sources, **decoding_options(cfg), coverage_penalty=cfg.coverage_penalty,
                                       no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                                       batch_sentences=cfg.batch_sentences, return_attention=cfg.attention_stats,
                                       on_batch=DecodingProgress(sum(1 for text in sources if text.strip())))
    seconds = time.perf_counter() - start
    hypotheses = [nbest[0].text for nbest in nbest_lists]
    scores = corpus_scores(hypotheses, references)
    path = report_path(cfg)
    out_dir, stem = path.parent, path.name
    checkpoint = str(checkpoints[0]) if len(checkpoints) == 1 else [str(p) for p in checkpoints]
    report = {"checkpoint": checkpoint, "test_set": test_name, "sentences": len(sources),
              **decoding_options(cfg), "coverage_penalty": cfg.coverage_penalty,
              "no_repeat_ngram_size": cfg.no_repeat_ngram_size,
              "direction": f"{translator.config['data']['src_lang']}-{translator.config['data']['tgt_lang']}",
              "decode_seconds": round(seconds, 3), "sentences_per_second": round(len(sources) / seconds, 1),
              "scores": scores, "repetition": repetition_report(hypotheses, references)}
    if cfg.attention_stats:
        # The attention the model paid while producing its own (beam search) output.
        attention = corpus_statistics((best.attention, best.src_pieces, best.tgt_pieces)
                                      for best in (nbest[0] for nbest in nbest_lists) if best.attention is not None)
        report["attention"] = attention.as_dict()
    if cfg.reference_perplexity:
        report["references"] = reference_perplexity(translator, sources, references, cfg.batch_sentences)
    if cfg.interactive_simulation:
        simulation = interactive_simulation(translator, cfg, sources, references, hypotheses)
        report["interactive"] = simulation.as_dict()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        replace_contents(out_dir / f"{stem}.hyp", ("\n".join(hypotheses) + "\n").encode("utf-8"))
        replace_contents(out_dir / f"{stem}.json",
                         (json.dumps(_without_nan(report), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write results to {out_dir}: {exc.strerror}"
                          f"{'' if cfg.output_dir else '; give output_dir=FOLDER'}") from None
    if len(checkpoints) > 1:
        print(f"ensemble of {len(checkpoints)} models: {', '.join(str(p) for p in checkpoints)}")
    print(f"{test_name}: {len(sources)} sentences, beam {cfg.beam_size}, "
          f"{report['sentences_per_second']} sentences/s")
    print(format_scores(scores))
    print(format_repetition(report["repetition"]))
    if cfg.attention_stats:
        print(format_statistics(attention))
    if cfg.reference_perplexity:
        refs = report["references"]
        print(f"references: perplexity {refs['perplexity']:.2f} ({refs['nll_per_subword']:.3f} nats per subword "
              f"over {refs['subwords']:,} subwords, EOS included)")
    if cfg.interactive_simulation:
        print(format_simulation(simulation))
    print(f"hypotheses and report: {out_dir / stem}.hyp / .json")
    return report


def interactive_simulation(translator: Translator, cfg: DictConfig, sources: list[str], references: list[str],
                           hypotheses: list[str]) -> SimulationResult:
    """A simulated user correcting the model's translations word by word or key by key
    (`interactive_unit`), with the same search options as the evaluation (nmt.analysis.interactive)."""
    def translate(texts: list[str], prefixes: list[str]) -> list[str]:
        nbest_lists = translator.translate(texts, **decoding_options(cfg), coverage_penalty=cfg.coverage_penalty,
                                           no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                                           batch_sentences=cfg.batch_sentences, prefixes=prefixes)
        log.info(f"interactive simulation: translated {len(texts):,} sentences with their corrected prefixes")
        return [nbest[0].text for nbest in nbest_lists]

    return simulate_corrections(translate, sources, references, first_outputs=hypotheses, unit=cfg.interactive_unit)


def format_simulation(result: SimulationResult) -> str:
    ratio = "word stroke ratio" if result.unit == "word" else "key stroke ratio"
    return (f"interactive simulation: {ratio} {result.stroke_ratio:.3f} ({result.typed:,} of "
            f"{result.reference_units:,} reference {result.unit}s typed; {result.right_unaided:,} of "
            f"{result.sentences:,} sentences right unaided; {result.rounds} rounds)")


def reference_perplexity(translator: Translator, sources: list[str], references: list[str],
                         batch_sentences: int) -> dict:
    """How likely the model finds the references (teacher forcing), as training's validation reports it."""
    scores = translator.score(sources, references, batch_sentences=batch_sentences,
                              on_batch=DecodingProgress(len(sources), verb="scored"))
    subwords = sum(s.tokens for s in scores)
    nll = -sum(s.log_prob for s in scores) / max(subwords, 1)
    return {"perplexity": round(perplexity(scores), 4), "nll_per_subword": round(nll, 6), "subwords": subwords}


def report_path(cfg: DictConfig) -> Path:
    """Where `evaluate` writes its hypotheses and report, without the .hyp and .json suffixes. From the
    options alone, so that a sweep's jobs that would write the same files are found before any runs."""
    checkpoints = [Path(p) for p in path_list("checkpoint", cfg.checkpoint)]
    test_name = Path(cfg.src_file).name if cfg.src_file else cfg.split  # as load_references names it
    out_dir = Path(cfg.output_dir) if cfg.output_dir else checkpoints[0].parent
    stem = f"{_model_name(checkpoints)}.{test_name}.beam{cfg.beam_size}"
    if cfg.length_penalty != 1.0:
        # Tuning the penalty on val means several runs per beam size: each keeps its own report.
        stem += f".lp{cfg.length_penalty:g}"
    if cfg.coverage_penalty:
        stem += f".cp{cfg.coverage_penalty:g}"
    if cfg.no_repeat_ngram_size:
        stem += f".norepeat{cfg.no_repeat_ngram_size}"
    return out_dir / stem


def _model_name(checkpoints: list[Path]) -> str:
    """The checkpoint's stem; for an ensemble `ensemble<M>-<hash of its paths>`, so that reports of
    different ensembles written to one folder do not overwrite each other."""
    if len(checkpoints) == 1:
        return checkpoints[0].stem
    digest = hashlib.sha256("\n".join(str(p.resolve()) for p in checkpoints).encode()).hexdigest()[:8]
    return f"ensemble{len(checkpoints)}-{digest}"


def _without_nan(value):
    """The report with NaN (attention statistics of no sentence) as null: NaN is not JSON."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value
