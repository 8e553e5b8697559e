#!/usr/bin/env bash
# The GPU measurements of issue 13 in one go (a lent GPU machine has no network and little time):
#   bash benchmarks/gpu_session.sh MNIST_DIR OUT_DIR [PHASES]
# MNIST_DIR holds the four MNIST .gz files; OUT_DIR receives the logs, a results tarball (no
# checkpoints) and the benchmark CSVs. PHASES (default "env smoke default roofline throughput"):
#   env         the GPU, driver, torch/Lightning/Snakemake versions, CPU capability
#   smoke       snakemake --cores all --configfile config/smoke.yaml, from empty data/ and results/
#   default     the default workflow on real MNIST, from empty data/ and results/, timed
#   roofline    benchmarks/roofline.py on the GPU: matmul peaks, each model's training FLOP/s
#   throughput  benchmarks/train_throughput.py on the prepared real MNIST, at the configured
#               precision (auto) and at each of $PRECISIONS if set (e.g. "32-true bf16-mixed")
# Each phase has its own time limit, so a stall in one still leaves the others' numbers.
set -uo pipefail
mnist=$(realpath "${1:?MNIST_DIR}")
out=$(realpath -m "${2:?OUT_DIR}")
phases=${3:-env smoke default roofline throughput}
# A cold cache: the precision probes run (and are timed) as on a user's first run.
export MNISTBENCH_CACHE_DIR=${MNISTBENCH_CACHE_DIR:-$(mktemp -d)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the package, as the Snakefile does
step() { echo "=== $(date +%T) $*"; }
has() { [[ " $phases " == *" $1 "* ]]; }
pack() { # results without checkpoints or ONNX files, plus the logs
  tar czf "$out/$1.tgz" --exclude='*.ckpt' --exclude='*.onnx' --exclude='*.npz' results logs 2>/dev/null
}

if has env; then
  step environment
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 - <<'PY'
import platform, os, torch, lightning, snakemake
print(f"torch {torch.__version__}, lightning {lightning.__version__}, snakemake "
      f"{snakemake.__version__}; {torch.cuda.get_device_name(0)}; CPU "
      f"{platform.processor() or platform.machine()} x{os.cpu_count()}, capability "
      f"{torch.backends.cpu.get_cpu_capability()}, bf16 on GPU {torch.cuda.is_bf16_supported()}")
PY
fi

if has smoke; then
  step smoke workflow
  rm -rf data results logs .snakemake
  /usr/bin/time -f 'smoke workflow wall %e s' timeout "${SMOKE_LIMIT:-240}" \
    python3 -m snakemake --cores all --configfile config/smoke.yaml >"$out/smoke.log" 2>&1
  echo "rc=$?"; grep -E 'wall|steps \(|Error|error' "$out/smoke.log" | tail -n 20
  cat results/synthetic/comparison.md 2>/dev/null
  pack smoke
fi

if has default; then
  step default workflow on real MNIST
  rm -rf data results logs .snakemake
  /usr/bin/time -f 'default workflow wall %e s' timeout "${DEFAULT_LIMIT:-420}" \
    python3 -m snakemake --cores all --config data="{local_dir: $mnist}" >"$out/default.log" 2>&1
  echo "rc=$?"; grep -E 'wall|steps \(|Error|error' "$out/default.log" | tail -n 20
  cat results/mnist/comparison.md 2>/dev/null
  for f in results/mnist/benchmarks/*/*.tsv; do
    printf '%s %s\n' "$f" "$(tail -n 1 "$f" | cut -f1)"
  done
  grep -h 'memory format' logs/mnist/train_model/*.log | cut -c 25-
  grep -h 'epoch .*/' logs/mnist/train_model/*.log | cut -c 25- | tail -n 30
  pack default
fi

if has roofline; then
  step roofline
  timeout 240 python3 benchmarks/roofline.py --device cuda --channels-last --matmul 8192 \
    --out "$out/roofline-gpu.csv" 2>&1 | grep -vE 'warn|Warn'
fi

if has throughput; then
  step training throughput
  if [ ! -f data/mnist/prepared/train.pt ]; then
    timeout 120 python3 -m snakemake --cores all --config data="{local_dir: $mnist}" \
      data/mnist/prepared/train.pt >"$out/prepare.log" 2>&1
  fi
  for precision in config ${PRECISIONS:-}; do
    flag=(); [ "$precision" = config ] || flag=(--precision "$precision")
    timeout "${THROUGHPUT_LIMIT:-150}" python3 benchmarks/train_throughput.py \
      --prepared data/mnist/prepared --rounds 1 --threads 4 --workers 4 \
      --methods ${METHODS:-tutorial mnistbench raw} "${flag[@]}" \
      --out "$out/throughput-$precision.csv" 2>&1 |
      grep -E '^\||samples/s|^x86|Error|error' | grep -v Warn
  done
fi
step done
