"""scripts/benchmark.py runs end to end on a tiny model and prints sane JSON (no timing assertions)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from project_scripts import load_script
from torch.profiler import profile

from nmt.models.attention import available_attentions

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
# The smoke experiment shrunk to a few seconds: a 1,000-pair subset, a 300-piece vocabulary, width 16.
TINY = ["data.max_train_examples=1000", "tokenizer.vocab_size=300", "model.emb_size=16",
        "model.enc_hidden=16", "model.dec_hidden=16", "trainer.batch_tokens=1024"]
KEYS = {"device", "device_name", "cpu_native_bf16", "threads", "omp_wait_policy", "torch", "commit", "experiment", "attention", "decoder_style",
        "input_feeding", "params", "train_tgt_tokens_per_s", "epoch_s", "decode_greedy_sents_per_s",
        "decode_beam5_sents_per_s", "peak_mem_mb", "bleu", "time_to_bleu_s", "subword_alpha"}


@pytest.fixture(scope="module")
def bench(multi30k_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")

    def run(*args: str) -> list[dict]:
        env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
        command = [sys.executable, str(SCRIPT), "--experiment", "smoke", "--device", "cpu", "--threads", "1",
                   *args, f"data.cache_dir={cache}", *TINY]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        lines = result.stdout.strip().splitlines()
        assert lines and all(line.startswith("{") for line in lines), result.stdout[-3000:]
        return [json.loads(line) for line in lines]

    return run


def assert_positive(record: dict, *keys: str) -> None:
    for key in keys:
        value = record[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)


def test_quick_mode_prints_one_json_line_with_every_figure(bench):
    (record,) = bench("--steps", "2", "--warmup", "1", "--decode-sentences", "6")
    assert KEYS <= record.keys()
    assert record["device"] == "cpu" and record["threads"] == 1 and record["mode"] == "quick"
    assert record["cpu_native_bf16"] in (True, False, None)
    assert record["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "unset")
    assert (record["experiment"], record["attention"], record["decoder_style"]) == ("smoke", "additive", "bahdanau")
    assert record["train_steps"] == 2 and record["decode_sentences"] == 6
    assert_positive(record, "params", "train_tgt_tokens_per_s", "epoch_s", "epoch_tgt_tokens",
                    "decode_greedy_sents_per_s", "decode_beam5_sents_per_s", "peak_mem_mb")
    # The epoch estimate is the epoch's target tokens at the measured speed.
    assert record["epoch_s"] == pytest.approx(record["epoch_tgt_tokens"] / record["train_tgt_tokens_per_s"],
                                              rel=1e-3, abs=0.01)
    assert record["bleu"] is None and record["time_to_bleu_s"] is None


def assert_rate(rate: float, count: int, seconds: float) -> None:
    """`rate` (rounded to 0.1) is `count` over `seconds` (rounded to 0.001), within those roundings."""
    assert count / (seconds + 0.0005) - 0.05 <= rate <= count / max(seconds - 0.0005, 1e-9) + 0.05, (rate, count, seconds)


def test_quick_mode_counts_only_the_timed_steps_and_its_speeds_are_its_counts_over_its_times(bench):
    (record,) = bench("--steps", "1", "--warmup", "3", "--decode-sentences", "3")
    # A batch holds at most batch_tokens target tokens: one timed step cannot count more (warm-up ones excluded).
    assert 0 < record["train_tgt_tokens"] <= record["train_steps"] * record["batch_tokens"]
    assert_rate(record["train_tgt_tokens_per_s"], record["train_tgt_tokens"], record["train_s"])
    for name in ("greedy", "beam5"):
        assert_rate(record[f"decode_{name}_sents_per_s"], record["decode_sentences"], record[f"decode_{name}_s"])


def test_all_attention_mode_prints_one_line_per_attention_and_decoder_style(bench):
    records = bench("--all-attention", "--steps", "1", "--warmup", "0", "--decode-sentences", "2")
    combos = {(r["attention"], r["decoder_style"], r["input_feeding"]) for r in records}
    expected = {(a, s, f) for a in available_attentions()
                for s, f in [("bahdanau", False), ("luong", True), ("luong", False)]}
    assert combos == expected and len(records) == len(expected)
    for record in records:
        assert KEYS <= record.keys()
        assert_positive(record, "train_tgt_tokens_per_s", "decode_beam5_sents_per_s", "peak_mem_mb")


def test_full_mode_trains_to_the_end_and_reports_bleu_and_time_to_it(bench, tmp_path):
    (record,) = bench("--full", "--decode-sentences", "4", "--run-dir", str(tmp_path / "run"),
                      "trainer.max_steps=3", "trainer.valid_every=3", "trainer.valid_max_sentences=4",
                      "trainer.progress=false")
    assert KEYS <= record.keys() and record["mode"] == "full" and record["train_steps"] == 3
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert 0 <= record["bleu"] <= 100
    assert_positive(record, "time_to_bleu_s", "train_tgt_tokens_per_s", "epoch_s", "decode_beam5_sents_per_s")
    assert record["time_to_bleu_s"] >= record["train_s"]
    assert record["bleu_checkpoint"] == "best.pt"


def test_full_mode_with_average_scores_the_average_of_the_kept_checkpoints(bench, tmp_path):
    (record,) = bench("--full", "--average", "--decode-sentences", "4", "--run-dir", str(tmp_path / "run"),
                      "trainer.max_steps=4", "trainer.valid_every=1", "trainer.valid_max_sentences=4",
                      "trainer.keep_best_checkpoints=3", "trainer.progress=false")
    assert record["bleu_checkpoint"] == "averaged.pt" and record["averaged_checkpoints"] == 3
    assert (tmp_path / "run" / "checkpoints" / "averaged.pt").is_file() and 0 <= record["bleu"] <= 100


def test_full_mode_stopped_by_sigterm_still_prints_what_it_measured(multi30k_root, tmp_path):
    # A device job's time limit ends the run with SIGTERM (`timeout`): its training figures must not be lost.
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    run_dir = tmp_path / "run"
    command = [sys.executable, str(SCRIPT), "--experiment", "smoke", "--device", "cpu", "--threads", "1", "--full",
               "--run-dir", str(run_dir), f"data.cache_dir={tmp_path / 'cache'}", *TINY, "trainer.max_steps=100000",
               "trainer.max_epochs=null", "trainer.valid_every=2", "trainer.valid_max_sentences=2",
               "trainer.progress=false"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "checkpoints" / "last.pt").exists():  # saved at the first validation
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    (line,) = stdout.strip().splitlines()
    record = json.loads(line)
    assert KEYS <= record.keys() and record["mode"] == "full" and record["stopped_by"] == "SIGTERM"
    assert record["train_steps"] >= 2 and record["bleu"] is None and record["time_to_bleu_s"] is None
    assert 0 <= record["best_valid_bleu"] <= 100
    assert_positive(record, "params", "train_tgt_tokens_per_s", "train_s", "peak_mem_mb")


def test_average_without_full_is_refused_by_the_option_parser():
    result = subprocess.run([sys.executable, str(SCRIPT), "--average"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().endswith("error: --average goes with --full")


def run_tiny(script: str, data_root, cache, *args: str) -> str:
    """stdout of scripts/`script` on the tiny smoke model, fp32, 1 thread; it must exit 0."""
    env = {**os.environ, "NMT_DATA_DIR": str(data_root)}
    command = [sys.executable, str(SCRIPT.parent / script), "--experiment", "smoke", "--precision", "fp32",
               "--threads", "1", *args, f"data.cache_dir={cache}", *TINY]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_profile_training_prints_throughput_and_a_profile_table(multi30k_root, tmp_path):
    stdout = run_tiny("profile_training.py", multi30k_root, tmp_path, "--batches", "1", "--profile-steps", "1",
                      "--rows", "5")
    first, *table = stdout.strip().splitlines()
    assert first.startswith("smoke fp32 compiled=False threads=1: 1 updates, ") and first.endswith(" target tokens/s")
    assert float(first.split(" = ")[1].split()[0]) > 0
    assert any("aten::" in line for line in table)  # the profiler saw the operators


def test_cpu_ceiling_reads_batch_m_k_n_off_every_kind_of_matrix_product():
    ceiling = load_script("cpu_ceiling")
    x, w, bias = torch.randn(5, 7), torch.randn(7, 3), torch.randn(3)
    left, right = torch.randn(2, 4, 6), torch.randn(2, 6, 9)
    with profile(record_shapes=True) as prof:
        torch.mm(x, w)
        torch.mm(x, w)
        torch.addmm(bias, x, w)
        torch.bmm(left, right)
        torch.baddbmm(torch.zeros(2, 4, 9), left, right)
    assert dict(ceiling.count_products(prof)) == {(1, 5, 7, 3): 3, (2, 4, 6, 9): 2}


def test_cpu_ceiling_prints_the_products_of_a_training_step_and_the_ceiling(multi30k_root, tmp_path):
    stdout = run_tiny("cpu_ceiling.py", multi30k_root, tmp_path, "--batches", "1", "--repeats", "1", "--rows", "100")
    lines = [line for line in stdout.strip().splitlines() if not line.startswith(("USDT", "["))]
    assert lines[0].startswith("smoke, fp32, 1 threads"), lines
    # The output layer (target tokens x 16 -> 300-piece vocabulary) is one of the products seen; the
    # training step rounds its rows up with padding positions (step.output_positions).
    from nmt.training.step import OUTPUT_ROWS_MULTIPLE

    tokens = int(lines[0].split(" target tokens")[0].split()[-1])
    output_rows = [int(line.split()[2]) for line in lines[2:-1]
                   if line.split()[:2] == ["1", "x"] and line.split()[3:7] == ["x", "16", "x", "300"]]
    assert any(tokens <= rows < tokens + OUTPUT_ROWS_MULTIPLE for rows in output_rows), lines
    summary = lines[-1]
    assert summary.startswith("matrix products: ") and summary.endswith(" target tokens/s")
    assert float(summary.split(" MFLOP")[0].split()[-1]) > 0
    assert int(summary.split("ceiling ")[1].split()[0].replace(",", "")) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_benchmark_on_a_missing_gpu_is_one_error_line(multi30k_root, tmp_path):
    env = {**os.environ, "NMT_DATA_DIR": str(multi30k_root)}
    command = [sys.executable, str(SCRIPT), "--device", "cuda", "--steps", "1", f"data.cache_dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: device=cuda was requested but no CUDA GPU is available; use device=cpu"]


@pytest.mark.parametrize(("script", "args", "message"), [
    ("benchmark.py", ["--experiment", "m30k_deen_smal"], "error: experiment=m30k_deen_smal is not an option; "
                                                        "choose one of: m30k_deen_best, "),
    ("benchmark.py", ["trainer.max_step=3"], "error: trainer.max_step is not an option (did you mean "
                                             "trainer.max_steps?)"),
    ("benchmark.py", ["model.dropout=1.5"], "error: model.dropout must be a number in [0, 1); got 1.5"),
    ("cpu_ceiling.py", ["optimizer.lr=-1"], "error: optimizer.lr must be a number > 0"),
    ("benchmark.py", ["--full", "--average"], "error: --average needs trainer.keep_best_checkpoints of 2 or more "
                                              "(now 0), e.g. trainer.keep_best_checkpoints=5"),
])
def test_a_mistake_in_a_scripts_options_is_one_error_line_before_any_data_is_read(tmp_path, script, args, message):
    env = {**os.environ, "NMT_DATA_DIR": str(tmp_path / "no_data_here")}  # data would fail with another error
    command = [sys.executable, str(SCRIPT.parent / script), "--threads", "1", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(message)
