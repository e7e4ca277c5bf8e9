#!/usr/bin/env bash
# The GPU checks of issue #3, prepared for one call of the device tool each (never run in CI).
#
# Here, once:   bash ../shared/tools/device-prep.sh        (wheels into .whl/, corpus into data/multi30k/)
# Device call:  bash scripts/gpu_check.sh quick   (timeout_s 480; carry [".whl", "data/multi30k"])
#               bash scripts/gpu_check.sh full    (timeout_s 590: train two recipes to the end, BLEU, time)
# The steps' limits add up to 405 s for quick and 530 s for full. With 15 minutes of device time per
# session and a minute or more to start a machine, run quick first; full fits only on the machine
# while it is still warm, or in another session.
#
# quick: tests/test_cuda.py (GPU path = CPU path), then scripts/benchmark.py on the reference: bf16 with
# the issue's default 4096-token batches and all 1,000 test sentences, bf16 with 16,384-token batches and
# 500-sentence decoding batches (the issue's best case), fp32, and --all-attention. full: two --full runs.
# Every step has its own time limit, so one that hangs or fails does not cost the others. Results go to
# $OUT (the device tool's folder that comes back): gpu_check.log (all output) and bench.jsonl (one JSON
# line per benchmark run), to be copied into BENCHMARKS.md with the card's name.
set -u
stage=${1:-quick}
case $stage in quick | full) ;; *) echo "usage: bash scripts/gpu_check.sh quick|full" >&2; exit 2 ;; esac
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
log=$out/gpu_check.log
jsonl=$out/bench.jsonl
export PYTHONPATH=$PWD  # nmt itself is not installed there
if [ -d .whl ]; then  # the GPU image lacks hydra, omegaconf and datasets
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export NMT_DATA_DIR=$PWD/data
cache=data.cache_dir=/tmp/nmt_cache

step() {  # step SECONDS COMMAND...: run with a limit, log everything, keep benchmark JSON lines
  local limit=$1
  shift
  echo "== $(date -u +%H:%M:%S) $* (limit ${limit} s)" | tee -a "$log"
  # A pipeline, not a process substitution: bash waits for every part, so the last JSON line is in
  # $jsonl before the next step starts or the script ends.
  timeout "$limit" "$@" 2>> "$log" | tee -a "$log" | { grep '^{' >> "$jsonl" || true; }
  echo "== rc=${PIPESTATUS[0]}" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  git log --oneline -1 2>/dev/null; } 2>&1 | tee -a "$log"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())" 2>&1 | tail -1 | tee -a "$log"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

bench=(python3 scripts/benchmark.py --experiment m30k_deen_ref --device cuda)
case $stage in
  quick)
    step 90 python3 -m pytest -q -x -p no:cacheprovider tests/test_cuda.py
    step 75 "${bench[@]}" --steps 50 --warmup 10 trainer.precision=bf16 $cache
    step 60 "${bench[@]}" --steps 20 --warmup 5 --decode-batch 500 trainer.precision=bf16 trainer.batch_tokens=16384 $cache
    step 60 "${bench[@]}" --steps 30 --warmup 5 --decode-sentences 200 trainer.precision=fp32 $cache
    step 120 "${bench[@]}" --all-attention --steps 10 --warmup 3 --decode-sentences 200 trainer.precision=bf16 $cache
    ;;
  full)
    # Time to test BLEU: first the reference network trained for a GPU (m30k_deen_fast: 16,384-token
    # batches, 30 epochs, its 5 kept checkpoints averaged; 40.67, 40.38 and 40.87 on a CPU), then the reference
    # recipe (20 epochs; Joey NMT's best checkpoint is at epoch 20). Stopped by its step's limit, a
    # --full run still prints its training figures (stopped_by, no BLEU).
    step 280 "${bench[@]}" --full --experiment m30k_deen_fast --average --run-dir /tmp/gpu_fast \
      trainer.precision=bf16 $cache
    step 250 "${bench[@]}" --full --run-dir /tmp/gpu_full trainer.precision=bf16 trainer.max_epochs=20 $cache
    ;;
esac
echo "done: $(cat "$jsonl" 2>/dev/null | wc -l) benchmark lines in $jsonl" | tee -a "$log"
