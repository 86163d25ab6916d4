#!/usr/bin/env bash
# Issue 12's deployment table: each model exported without TTA as float32 and as static int8, then
# measured as maas-serve runs it (`maas-bench artifacts`: file size, MACs, test accuracy, batch 1
# latency and batch 32 images/s at 1 and 2 threads). Exports are kept in runs/deploy and reused.
# Needs the runs README "Smaller and faster models" lists. Usage: tests/bench/deploy_table.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=runs/deploy
mkdir -p "$out"
artifacts=()
export_one() {  # RUN NAME [maas-export flags]
  local run=$1 name=$2
  shift 2
  if [ ! -f "$run/best.pt" ]; then
    echo "deploy_table: $run has no best.pt: $name left out of the table" >&2
    return
  fi
  # An interrupted run's best.pt is not its result: its metrics.csv must hold every epoch.
  local epochs done_epochs
  epochs=$(sed -n 's/^  epochs: *\([0-9]*\).*/\1/p' "$run/config.yaml")
  done_epochs=$(($(wc -l < "$run/metrics.csv") - 1))
  if [ "$done_epochs" != "$epochs" ]; then
    echo "deploy_table: $run holds $done_epochs of $epochs epochs (resume it first): $name left out of the table" >&2
    return
  fi
  [ -f "$out/$name.pt" ] || build/bin/maas-export --run "$run" --out "$out/$name.pt" --tta none "$@"
  artifacts+=("$out/$name.pt")
}
export_one runs/cnn_aug cnn-f32
export_one runs/cnn_aug cnn-int8 --quantize int8
export_one runs/cnn_pruned cnn-pruned-f32
export_one runs/cnn_pruned cnn-pruned-int8 --quantize int8
export_one runs/cnn_aug10 cnn-10ep-f32
export_one runs/cnn_distill10 cnn-10ep-distilled-f32
export_one runs/fast fast-f32
# airbench's int8 loses more than maas-export's 1-point default: written here only to be measured.
export_one runs/fast fast-int8 --quantize int8 --max-accuracy-drop 100
export_one runs/fast_pruned fast-pruned-f32
export_one runs/fast_pruned fast-pruned-int8 --quantize int8 --max-accuracy-drop 100
IFS=,
build/bin/maas-bench artifacts --artifacts "${artifacts[*]}" --threads 1,2 --seconds "${1:-1.5}"
