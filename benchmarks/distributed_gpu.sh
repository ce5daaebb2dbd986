#!/usr/bin/env bash
# Run:  bash benchmarks/distributed_gpu.sh [GPUS]      (a machine with GPUS >= 2 CUDA GPUs; deepspeed for ZeRO)
#
# The equivalence check of prefalign's distributed runs on GPUs, which its CPU tests cannot make: the same run
# (SmolLM2-135M-Instruct, full fine-tuning, sigmoid DPO, float32, 8 pairs a step, 5 steps) on one process, then
# DDP, FSDP2 and DeepSpeed ZeRO-2/3 over GPUS processes (batch 8/GPUS each, so the same global batch), each
# launched with its examples/accelerate config. benchmarks/compare_metrics.py prints, for each, the largest
# relative difference from the one-process run per metric (loss, rewards, log-probs, grad_norm) and fails above
# 1e-4 (GPU kernels differ in summation order with the batch shape; the CPU tests hold 1e-5).
# A launch that fails is reported and the script goes on; result.json's `distributed` says what each run was.
# ZeRO runs are skipped when deepspeed is not installed (pip install 'prefalign[distributed]'). MODEL=DIR swaps
# the model (a smoke run of the script itself on CPU processes: MODEL=a-tiny-model-dir bash
# benchmarks/distributed_gpu.sh 2; DeepSpeed runs on CPU processes too, over gloo).
set -uo pipefail
GPUS=${1:-2}
OUT=${OUT:-runs/distributed-gpu}
MODEL=${MODEL:-builtin:smollm2-135m-instruct}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BATCH=$((8 / GPUS))
mkdir -p "$OUT"
CONFIG="$OUT/config.yaml"
cat > "$CONFIG" <<YAML
model: {path: $MODEL, lora: null}
data: {train: $ROOT/data/quickstart/train.jsonl, max_length: 256}
method: {loss: sigmoid, beta: 0.1}
reference: {mode: model}
train: {max_steps: 5, lr: 1.0e-5, warmup_ratio: 0.0, batch_size: 8, mixed_precision: "no", seed: 0}
eval: {generations: 0, before: false}
output: {save: []}
YAML

status=0
run() {  # NAME LAUNCHER...: train into $OUT/NAME
    local name=$1; shift
    echo "== $name: $*"
    if ! "$@" -m prefalign train "$CONFIG" "output.dir=$OUT/$name" output.overwrite=true \
            "train.batch_size=$([ "$name" = one ] && echo 8 || echo $BATCH)" > "$OUT/$name.log" 2>&1; then
        echo "   failed: see $OUT/$name.log (last lines below)"; tail -n 5 "$OUT/$name.log"; status=1; return
    fi
    python -c "import json; print('   ', json.load(open('$OUT/$name/result.json'))['distributed'])"
}
accelerate_run() {  # NAME CONFIG
    run "$1" accelerate launch --config_file "$ROOT/examples/accelerate/$2.yaml" --num_processes "$GPUS"
}

run one python
accelerate_run ddp ddp
accelerate_run fsdp2 fsdp2
compared=("$OUT/ddp" "$OUT/fsdp2")
if python -c "import deepspeed" 2>/dev/null; then
    accelerate_run zero2 deepspeed_zero2
    accelerate_run zero3 deepspeed_zero3
    compared+=("$OUT/zero2" "$OUT/zero3")
else
    echo "== zero2, zero3: skipped (deepspeed is not installed: pip install 'prefalign[distributed]')"
fi
existing=()
for dir in "${compared[@]}"; do [ -f "$dir/metrics.jsonl" ] && existing+=("$dir"); done
python "$ROOT/benchmarks/compare_metrics.py" "$OUT/one" "${existing[@]}" --tolerance 1e-4 || status=1
exit $status
