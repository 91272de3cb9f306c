#!/bin/sh
# GPU check of the cuDNN + CUPTI back end (docs/measure.md): builds dnnsim
# with CUDA, runs the GPU tests, a quick GPU calibration and a short one of
# ResNet-18, of NCC (LSTMs) and a GPU validate run, checks the profiles
# load and predict, and prints a summary.
# Meant to finish in a few minutes on one GPU (well under 10).
#
#   measure/gpu-check.sh [BUILD_DIR] [OUT_DIR]
#
# Exit status: 0 when everything passed, 4 when there is no CUDA device,
# 1 otherwise.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-gpu-check}
out=${2:-$build/gpu-check}
mkdir -p "$out"
log="$out/gpu-check.log"
: >"$log"
t0=$(date +%s)

step() {
  echo "== $*" | tee -a "$log"
}

tests=ON
pkg-config --exists cmocka 2>/dev/null || tests=OFF
step "configure ($build, tests $tests)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DDNNSIM_WITH_CUDA=ON -DDNNSIM_BUILD_TESTS=$tests >>"$log" 2>&1 ||
  { tail -20 "$log"; exit 1; }
grep -q "GPU measurement with CUDA" "$log" ||
  { echo "gpu-check: CMake did not find CUDA with cuDNN and CUPTI"; exit 1; }
jobs=$(nproc 2>/dev/null || echo 4)
targets=dnnsim_cli
[ $tests = ON ] && targets="$targets test_meas_cuda test_meas_executor_gpu test_meas_ref test_meas_stats"
step "build"
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" --target $targets >>"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }
dnnsim=$build/cli/dnnsim

step "device"
"$dnnsim" calibrate gpu --quick -o "$out/probe.ini" >"$out/probe.txt" 2>&1
rc=$?
if [ $rc -eq 4 ]; then
  cat "$out/probe.txt"
  echo "gpu-check: no CUDA device on this machine"
  exit 4
fi
[ $rc -eq 0 ] || { cat "$out/probe.txt"; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$log"

status=0
if [ $tests = ON ]; then
  step "GPU tests (ctest -L gpu) and the reference kernels"
  (cd "$build" && ctest -L gpu -R "test_meas|calibrate_cli" --output-on-failure &&
    ctest -R "test_meas_(ref|stats)" --output-on-failure) >>"$log" 2>&1 ||
    status=1
  tail -5 "$log"
fi

step "quick calibration (resnet18 at 32 px, batch 2)"
cat "$out/probe.txt"

step "short calibration: resnet18 at 112 px, batches 8 and 32, fp32"
"$dnnsim" calibrate gpu --network resnet18 --image 112 --batch 8,32 \
  -o "$out/gpu-resnet18.ini" >"$out/calib.txt" 2>&1 || status=1
cat "$out/calib.txt"

step "held-out network: alexnet at 112 px, batch 8 (model only)"
"$dnnsim" calibrate gpu --network alexnet --image 112 --batch 8 \
  -o "$out/gpu-alexnet.ini" >"$out/alexnet.txt" 2>&1 || status=1
tail -2 "$out/alexnet.txt"
"$dnnsim" calibrate check --profile "$out/gpu-resnet18.ini" \
  --kernels "$out/gpu-alexnet.meas.csv" --model-only || status=1

step "LSTM: ncc (embedding + 2 LSTMs) through cuDNN's RNN API, batches 1 and 8"
"$dnnsim" calibrate gpu --quick --network ncc --batch 1,8 \
  -o "$out/gpu-ncc.ini" >"$out/ncc.txt" 2>&1 || status=1
tail -2 "$out/ncc.txt"
if [ -f "$out/gpu-ncc.meas.csv" ]; then
  n=$(awk -F, '$5 == "lstm"' "$out/gpu-ncc.meas.csv" | wc -l)
  echo "lstm rows: $n (2 layers x 3 passes x 2 batches expected: 12)"
  [ "$n" -eq 12 ] || status=1
fi

step "executor: validate resnet18 at 112 px, batch 64, on the GPU (cuDNN)"
"$dnnsim" calibrate gpu --quick --network resnet18 --image 112 --batch 64 \
  -o "$out/gpu-val.ini" >"$out/val-calib.txt" 2>&1 || status=1
"$dnnsim" validate "$root/scenarios/validate/resnet18-gpu.ini" \
  -s "hardware.profile=$out/gpu-val.ini" >"$out/validate.txt" 2>&1 || status=1
grep -E "^iteration|measured:|training check|dnnsim:" "$out/validate.txt"

step "summary"
csv=$out/gpu-resnet18.meas.csv
if [ -f "$csv" ]; then
  echo "rows: $(grep -vc '^#' "$csv") (header included)"
  echo "backends: $(grep -v '^#' "$csv" | cut -d, -f1 | sort | uniq -c |
    tr '\n' ' ')"
  echo "convolution algorithms timed per (layer, pass, batch):"
  grep -v '^#' "$csv" | awk -F, '$5 == "conv2d" {n[$3 "/" $6 "/" $9]++}
    END {for (k in n) c[n[k]]++; for (a in c) printf "  %d algorithms: %d\n", a, c[a]}'
  "$dnnsim" describe resnet18 --image 112 --batch 32 \
    --profile "$out/gpu-resnet18.ini" | tail -3 || status=1
fi
echo "gpu-check: $( [ $status -eq 0 ] && echo PASSED || echo FAILED ) in $(( $(date +%s) - t0 )) s; log in $log"
exit $status
