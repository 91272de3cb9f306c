#!/bin/sh
# Runs the speed benchmarks and prints their figures.
#   bench/run.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
"$B/bench/dnnsim_bench" predict scenarios/default.ini 3
"$B/bench/dnnsim_bench" predict scenarios/default.ini 3 analytic
"$B/bench/dnnsim_bench" predict scenarios/vgg16-a100.ini 3
"$B/bench/dnnsim_bench" predict scenarios/pipeline-vgg16-v100.ini 3
"$B/bench/dnnsim_bench" sim 5
"$B/bench/dnnsim_bench" predict scenarios/gpt-175b-a100.ini 3 analytic
"$B/cli/dnnsim" search scenarios/gpt-175b-a100.ini --devices 4096 --top 3 |
  sed -n 3,4p
bench/validate-vtrain ../shared/validation/vtrain "$B"
# Blocking against non-blocking allreduce on this machine's MPI (MPI builds).
if [ -x "$B/bench/dnnsim_bench_nbc" ] && command -v mpirun >/dev/null; then
  mpirun --allow-run-as-root --oversubscribe -np 2 "$B/bench/dnnsim_bench_nbc"
fi
