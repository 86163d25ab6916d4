#!/usr/bin/env bash
# Serving levers A/B'd in alternating rounds: each variant starts its own maas-serve (environment
# and --set flags of its own), runs maas-bench serve over binary v2 with one image per request at
# concurrency 1 and 16, and prints the rows prefixed with the variant and round, then the mean batch.
# A variant is NAME|ENV ASSIGNMENTS|MAAS-SERVE FLAGS (either part may be empty).
# Usage: tests/bench/serve_levers.sh MODEL.pt ROUNDS 'base||' 'jemalloc|LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2|' ...
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 rounds=$2
shift 2
port=${SERVE_LEVERS_PORT:-8100}
for round in $(seq "$rounds"); do
  for variant in "$@"; do
    IFS='|' read -r name envs flags <<< "$variant"
    # shellcheck disable=SC2086  # ENV assignments and flags are word lists on purpose
    env $envs build/bin/maas-serve --model "cifar10=$model" --port "$port" $flags > /dev/null 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "localhost:$port/v2/health/ready" > /dev/null && break; sleep 0.1; done
    build/bin/maas-bench serve --url "http://127.0.0.1:$port" --model cifar10 --protocols binary \
      --images-per-request 1 --concurrency 1,16 --seconds 3 | grep '^| binary' | sed "s/^/$name r$round /"
    curl -s "localhost:$port/metrics" | awk -v n="$name r$round" '/^maas_batch_images_sum/ {s=$2} /^maas_batch_images_count/ {c=$2}
      END {if (c) printf "%s mean batch %.1f images\n", n, s / c}'
    kill "$server"; wait "$server" 2> /dev/null || true
  done
done
