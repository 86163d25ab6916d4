#!/usr/bin/env bash
# Serving levers A/B'd in alternating rounds: each variant starts its own maas-serve (environment
# and --set flags of its own), runs maas-bench serve over binary v2 with one image per request at
# concurrency 1 and 16, and prints the rows prefixed with the variant and round, then the mean batch.
# A variant is NAME|ENV ASSIGNMENTS|MAAS-SERVE FLAGS (either part may be empty).
# SERVE_LEVERS_BENCH_ARGS replaces maas-bench's "--images-per-request 1 --concurrency 1,16", e.g. with
# "--images-per-request 1,32 --concurrency 1,16 --in-process MODEL.pt" for the in-process ceiling of
# every round (its rows are printed too).
# Usage: tests/bench/serve_levers.sh MODEL.pt ROUNDS 'base||' 'jemalloc|LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2|' ...
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 rounds=$2
shift 2
port=${SERVE_LEVERS_PORT:-8100}
for round in $(seq "$rounds"); do
  for variant in "$@"; do
    IFS='|' read -r name envs flags <<< "$variant"
    while ss -ltnH "sport = :$port" | grep -q .; do sleep 0.2; done  # the last variant's server has gone
    # shellcheck disable=SC2086  # ENV assignments and flags are word lists on purpose
    env $envs build/bin/maas-serve --model "cifar10=$model" --port "$port" $flags > /dev/null 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "localhost:$port/v2/health/ready" > /dev/null && break; sleep 0.1; done
    sleep 2  # let start-up settle: the first in-process figures after a start ran slow
    # shellcheck disable=SC2086  # extra arguments are a word list on purpose
    build/bin/maas-bench serve --url "http://127.0.0.1:$port" --model cifar10 --protocols binary \
      --seconds 3 ${SERVE_LEVERS_BENCH_ARGS:---images-per-request 1 --concurrency 1,16} |
      grep -E '^\| (binary|in-process)|batch 1' | sed "s/^/$name r$round /"
    curl -s "localhost:$port/metrics" | awk -v n="$name r$round" '/^maas_batch_images_sum/ {s=$2} /^maas_batch_images_count/ {c=$2}
      END {if (c) printf "%s mean batch %.1f images\n", n, s / c}'
    kill "$server"; wait "$server" 2> /dev/null || true
  done
done
