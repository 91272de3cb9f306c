#!/usr/bin/env bash
# The one GPU session of dnnsim's measurement work (docs/measure.md, "GPU
# session"; docs/models.md §10.5): on one H100 or H200 it checks the cuDNN +
# CUPTI back end, measures kernel tables of AlexNet and ResNet-18, reports
# the kernel model's error against them, and validates the µ-cuDNN
# predictions by running the planned micro-batched schedules with cuDNN.
#
# What the lead runs (device tool `run`, from the repository root, with
# carry ["build-gpu-carry"] so that a prebuilt binary is there should the
# machine lack GSL/jansson/inih/GLPK for a native build):
#
#     measure/gpu-session.sh "$OUT"            (timeout_s 560)
#
# Before that call, on the development machine, make the prebuilt binary of
# the current sources (about a minute; build-gpu-carry/ is git-ignored):
#
#     measure/gpu-session.sh --prebuild
#
# Steps, in order of value per second, each under `timeout` with its own cap
# and a global deadline (GPU_SESSION_DEADLINE, default 510 s), going on
# after a failure. Estimates for an H100/H200 with 16 cores:
#
#   a  build: native Release -j16 of dnnsim_cli and test_meas_cuda when the
#      libraries are there (est. 30 s, cap 200), else the carried prebuilt
#   b  nvidia-smi -L and the device's datasheet profile      est.  2 s, cap 15
#   c  dnnsim calibrate gpu --quick (peaks, ResNet-18 at 32 px, batch 2)
#                                                             est. 15 s, cap 90
#   b' GPU tests: ctest -L gpu (test_meas_cuda; calibrate_cli_gpu repeats c
#      and is left out), or the prebuilt test binary         est. 15 s, cap 90
#   g  NCC's LSTM kernel table through cuDNN's RNN API (first run on a
#      device), batches 1, 8, 64                            est. 15 s, cap 60
#   h  the executor's cuDNN engine (first run on a device): calibrate
#      ResNet-18 at 112 px, batches 32 and 64, then `dnnsim validate
#      scenarios/validate/resnet18-gpu.ini` with that profile and with the
#      datasheet's                                          est. 40 s, cap 165
#   d1 AlexNet kernel table: every conv algorithm, 224 px, batches 1..256
#      (powers of two, the µ-cuDNN sizes), --base datasheet   est. 40 s, cap 150
#   e1 AlexNet µ-cuDNN at 8, 64, 512 MiB: plans from the datasheet profile,
#      the calibrated profile and the measured table (cuDNN workspaces);
#      the last run with cuDNN (--measure)                   est. 25 s, cap 150
#   d2 ResNet-18 kernel table, same sizes, measured peaks    est. 100 s, cap 210
#   e2 ResNet-18 µ-cuDNN, as e1 (repeated shapes measured once)
#                                                             est. 35 s, cap 170
#   d3 kernel model against the tables: the datasheet profile per kernel and
#      per layer (best algorithm), the ResNet-18 fit on AlexNet (held out),
#      and a profile derived for the other Hopper part       est.  3 s, cap 80
#   f  summary (stdout and summary.txt)                       est.  1 s
#
# Expected total about 5 minutes; the deadline keeps it under 8.5 minutes
# (a step's cap shrinks to what is left, keeping a reserve for the steps
# after it). A calibration cut short leaves its rows in OUT.meas.csv.part,
# which the µ-cuDNN step then plans from.
#
# Files written to OUTDIR (at most 7, each well under 2 MB):
#   summary.txt          what stdout shows at the end
#   session.log          every step's command and output (capped per step)
#   microbatch-alexnet.csv, microbatch-resnet18.csv
#                        per kernel and limit: plan, measured baseline and
#                        schedule, workspaces, output checks
#   model-vs-measured.csv  per layer, pass and batch: measured best time
#                        and the datasheet model's best time
#   tables.tar.gz        raw kernel CSVs and calibrated profiles
#
# Environment (for dry runs and reruns; defaults are the session's):
#   GPU_SESSION_DRY=1       dry run: no exit on "no CUDA device", -j of
#                           this machine, everything else the same
#   GPU_SESSION_BIN=PATH    use this dnnsim (skips the build; tests skipped)
#   GPU_SESSION_PREBUILT=1  use build-gpu-carry/ even if a native build works
#   GPU_SESSION_DEADLINE=S  global deadline in seconds (default 510)
#   GPU_SESSION_IMAGE=PX    image side of the tables and plans (224)
#   GPU_SESSION_BATCHES=L   table batches (1,2,4,8,16,32,64,128,256)
#   GPU_SESSION_N=N         µ-cuDNN mini-batch (256)
#   GPU_SESSION_LIMITS=L    per-layer limits (8MiB,64MiB,512MiB)
#   GPU_SESSION_WORK=DIR    scratch directory (default /tmp/dnnsim-gpu-session)
#
# Exit status: 0 all steps passed, 4 no CUDA device (not in a dry run),
# 1 otherwise.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRY=$ROOT/build-gpu-carry

# Sources whose hash stamps the prebuilt binary.
src_hash() {
  (cd "$ROOT" && find core model scenarios parallelism measure calibrate \
    plots cli include CMakeLists.txt cmake -type f \
    \( -name '*.c' -o -name '*.h' -o -name '*.ini' -o -name '*.txt' \
    -o -name '*.cmake' -o -name '*.in' \) 2>/dev/null | LC_ALL=C sort |
    xargs cat | sha256sum | cut -c1-16)
}

# ---- --prebuild: the carried fallback binary ---------------------------
if [ "${1:-}" = "--prebuild" ]; then
  b=$CARRY/build
  rm -rf "$CARRY"
  mkdir -p "$CARRY/bin" "$CARRY/lib"
  cmake -S "$ROOT" -B "$b" -DCMAKE_BUILD_TYPE=Release -DDNNSIM_WITH_CUDA=ON \
    -DDNNSIM_WITH_MPI=OFF -DDNNSIM_WITH_DNNL=OFF -DDNNSIM_BUILD_TESTS=ON \
    >"$CARRY/build.log" 2>&1 || { tail -20 "$CARRY/build.log"; exit 1; }
  grep -q "GPU measurement with CUDA" "$CARRY/build.log" ||
    { echo "prebuild: CMake found no CUDA with cuDNN and CUPTI"; exit 1; }
  cmake --build "$b" -j"$(nproc)" --target dnnsim_cli test_meas_cuda \
    test_meas_executor_gpu >>"$CARRY/build.log" 2>&1 ||
    { tail -30 "$CARRY/build.log"; exit 1; }
  cp "$b/cli/dnnsim" "$b/tests/measure/test_meas_cuda" \
    "$b/tests/measure/test_meas_executor_gpu" "$CARRY/bin/"
  # Shared libraries a CUDA image may lack; CUDA's and the C runtime's are
  # the machine's own.
  ldd "$CARRY/bin/dnnsim" "$CARRY/bin/test_meas_cuda" \
    "$CARRY/bin/test_meas_executor_gpu" |
    awk '/=> \// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libutil|libgcc_s|libstdc\+\+|libz|ld-linux[^/]*)\.so|libcu(da|dart|blas|blasLt|dnn|pti)[^/]*\.so' |
    while read -r lib; do cp -L "$lib" "$CARRY/lib/"; done
  rm -rf "$b"
  {
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    echo "sources $(src_hash)"
  } >"$CARRY/STAMP"
  ls -la "$CARRY/bin" "$CARRY/lib"
  du -sh "$CARRY"
  exit 0
fi

if [ $# -ne 1 ]; then
  echo "usage: measure/gpu-session.sh OUTDIR | --prebuild" >&2
  exit 2
fi
mkdir -p "$1" || exit 1
OUT=$(cd "$1" && pwd)
DRY=${GPU_SESSION_DRY:-0}
DEADLINE=${GPU_SESSION_DEADLINE:-510}
IMAGE=${GPU_SESSION_IMAGE:-224}
BATCHES=${GPU_SESSION_BATCHES:-1,2,4,8,16,32,64,128,256}
N=${GPU_SESSION_N:-256}
LIMITS=${GPU_SESSION_LIMITS:-8MiB,64MiB,512MiB}
W=${GPU_SESSION_WORK:-/tmp/dnnsim-gpu-session}
BUILD=$ROOT/build-gpu-session
JOBS=16
[ "$DRY" = 1 ] && JOBS=$(nproc 2>/dev/null || echo 2)
rm -rf "$W"
mkdir -p "$W"
LOG=$OUT/session.log
SUM=$OUT/summary.txt
STEPS=$W/steps.txt
: >"$LOG"
: >"$STEPS"
T0=$(date +%s)
LOG_CAP=250000 # bytes of one step's output kept in session.log

left() { echo $((DEADLINE - ($(date +%s) - T0))); }

# run NAME CAP RESERVE CMD...: CMD under `timeout` for at most CAP seconds,
# and never into the last RESERVE seconds before the deadline (kept for the
# steps after it). Output in $W/NAME.out and the log; status in $STEPS.
run() {
  local name=$1 cap=$2 reserve=$3
  shift 3
  local avail
  avail=$(($(left) - reserve))
  if [ "$avail" -lt 10 ]; then
    echo "$name skipped 0 0 (no time left)" >>"$STEPS"
    echo "== $name: skipped, no time left" >>"$LOG"
    : >"$W/$name.out"
    return 125
  fi
  [ "$cap" -gt "$avail" ] && cap=$avail
  echo "== $name (cap ${cap}s, ${avail}s before the reserve): $*" >>"$LOG"
  local t
  t=$(date +%s)
  timeout -k 20 "$cap" "$@" >"$W/$name.out" 2>&1
  local rc=$?
  local dt=$(($(date +%s) - t))
  if [ "$(wc -c <"$W/$name.out")" -gt "$LOG_CAP" ]; then
    {
      head -c $((LOG_CAP / 2)) "$W/$name.out"
      echo "... (cut) ..."
      tail -c $((LOG_CAP / 2)) "$W/$name.out"
    } >>"$LOG"
  else
    cat "$W/$name.out" >>"$LOG"
  fi
  local what=ok
  [ $rc -ne 0 ] && what=FAILED
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && what=TIMEOUT
  [ $rc -eq 4 ] && what=NO-DEVICE
  echo "$name $what $rc $dt" >>"$STEPS"
  echo "== $name: exit $rc after ${dt}s" >>"$LOG"
  return $rc
}

note() { echo "$*" | tee -a "$LOG" >>"$W/notes.txt"; }

# ---- a: build ----------------------------------------------------------
# CUDA's libraries for the prebuilt binary (and a cuDNN outside the toolkit
# for the native build, e.g. from the nvidia-cudnn pip package).
cuda_dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib \
  /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/extras/CUPTI/lib64; do
  [ -d "$d" ] && cuda_dirs="$cuda_dirs:$d"
done
have_lib() {
  ldconfig -p 2>/dev/null | grep -q "$1" && return 0
  for d in ${cuda_dirs//:/ }; do [ -e "$d/$1" ] && return 0; done
  return 1
}
cudnn_flags=()
if ! have_lib libcudnn.so.9; then
  py=$(command -v python3 || true)
  site=""
  [ -n "$py" ] && site=$(timeout 20 "$py" -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
  if [ -n "$site" ] && [ -e "$site/lib/libcudnn.so.9" ]; then
    cuda_dirs="$cuda_dirs:$site/lib"
    note "cuDNN from $site"
    cudnn_flags=(-DCUDNN_LIBRARY="$site/lib/libcudnn.so.9"
      -DCMAKE_C_FLAGS="-I$site/include")
  else
    note "libcudnn.so.9 not found in the toolkit or by ldconfig"
  fi
fi
BIN=""
TEST=""
MODE=""
if [ -n "${GPU_SESSION_BIN:-}" ]; then
  BIN=$GPU_SESSION_BIN
  MODE="given ($BIN)"
elif [ "${GPU_SESSION_PREBUILT:-0}" != 1 ] &&
  pkg-config --exists gsl jansson inih 2>/dev/null &&
  { [ -e /usr/include/glpk.h ] || [ -e /usr/local/include/glpk.h ]; }; then
  tests=OFF
  pkg-config --exists cmocka 2>/dev/null && tests=ON
  if run a-configure 60 300 cmake -S "$ROOT" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DDNNSIM_WITH_CUDA=ON -DDNNSIM_WITH_MPI=OFF \
    -DDNNSIM_WITH_DNNL=OFF -DDNNSIM_BUILD_TESTS=$tests "${cudnn_flags[@]}"; then
    grep -q "GPU measurement with CUDA" "$W/a-configure.out" ||
      note "CMake did not find CUDA with cuDNN and CUPTI: the native build cannot measure"
    targets=(dnnsim_cli)
    [ $tests = ON ] && targets+=(test_meas_cuda test_meas_executor_gpu)
    if run a-build 200 300 cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}" &&
      grep -q "GPU measurement with CUDA" "$W/a-configure.out"; then
      BIN=$BUILD/cli/dnnsim
      [ $tests = ON ] && TEST=ctest
      MODE="native Release build (-j$JOBS, tests $tests)"
    fi
  fi
else
  note "no native build: GSL, jansson, inih or GLPK missing (or GPU_SESSION_PREBUILT=1)"
fi
if [ -z "$BIN" ] && [ -x "$CARRY/bin/dnnsim" ]; then
  export LD_LIBRARY_PATH="$CARRY/lib$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  BIN=$CARRY/bin/dnnsim
  TEST=$CARRY/bin/test_meas_cuda
  MODE="prebuilt ($(head -1 "$CARRY/STAMP" 2>/dev/null))"
  stamp=$(sed -n 's/^sources //p' "$CARRY/STAMP" 2>/dev/null)
  [ "$stamp" = "$(src_hash)" ] ||
    note "WARNING: the prebuilt binary is older than these sources (rerun --prebuild)"
elif [ -z "$BIN" ]; then
  note "no dnnsim: the native build failed and build-gpu-carry/ was not carried"
fi
echo "dnnsim: ${MODE:-none}" >>"$LOG"
[ -n "$BIN" ] && run a-version 15 0 "$BIN" --version

# ---- b: the device -------------------------------------------------------
GPU="none"
DEV=h100-sxm5
if command -v nvidia-smi >/dev/null 2>&1; then
  run b-smi 15 0 nvidia-smi -L
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv,noheader >>"$W/b-smi.out" 2>&1
  cat "$W/b-smi.out" >>"$LOG"
  GPU=$(head -1 "$W/b-smi.out")
  case $GPU in *H200*) DEV=h200 ;; esac
  case $GPU in *PCIe*) note "PCIe card: the datasheet profile h100-sxm5 is the SXM part's" ;; esac
else
  note "no nvidia-smi"
fi
echo "device: $GPU; datasheet profile $DEV" >>"$LOG"

# ---- c: quick calibration (the first real use of the device) -------------
NODEV=0
if [ -n "$BIN" ]; then
  (cd "$W" && run c-quick 90 0 "$BIN" calibrate gpu --quick -o "$W/quick.ini")
  rc=$(awk '$1 == "c-quick" {print $3}' "$STEPS")
  if [ "$rc" = 4 ]; then
    NODEV=1
    note "no CUDA device: $(grep -m1 'no CUDA device\|without CUDA' "$W/c-quick.out")"
  fi
fi

summary() {
  local S=$W/summary.new
  {
    echo "==== dnnsim GPU session: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - T0)) s"
    echo "device: $GPU (datasheet profile $DEV)"
    echo "dnnsim: ${MODE:-none}"
    [ -s "$W/notes.txt" ] && sed 's/^/note: /' "$W/notes.txt"
    echo
    echo "step                status      rc   seconds"
    awk '{printf "%-19s %-10s %4s %6s\n", $1, $2, $3, $4}' "$STEPS"
    if [ -s "$W/c-quick.out" ]; then
      echo
      echo "---- c: quick calibration"
      grep -E "^profile|^fit:|^measured|dnnsim:" "$W/c-quick.out" | head -6
    fi
    if [ -s "$W/b-tests.out" ]; then
      echo
      echo "---- b': GPU tests"
      grep -E "tests passed|tests failed|PASSED|FAILED|SKIPPED|Error|ERROR" "$W/b-tests.out" | head -12
    fi
    if [ -e "$W/g-ncc.out" ]; then
      echo
      echo "---- g: ncc (embedding + 2 LSTMs) through cuDNN, batches 1,8,64"
      grep -E "^fit:|^measured|skipp|fails|dnnsim:" "$W/g-ncc.out" | head -8 | cut -c1-300
      csv=$W/ncc.meas.csv
      [ -s "$csv" ] || csv=$W/ncc.meas.csv.part
      [ -s "$csv" ] && awk -F, '$5 == "lstm" {printf "%s %s b=%s: %.4g ms (verify L2 %s)\n", $3, $6, $9, 1e3 * $16, $23}' "$csv" | head -18
    fi
    if [ -e "$W/h-validate.out" ] || [ -e "$W/h-validate-datasheet.out" ]; then
      echo
      echo "---- h: executor (cuDNN) vs prediction, resnet18 112 px batch 64"
      grep -E "^component|^forward|^backward|^optimizer|^iteration|measured:|training check|dnnsim:|error" "$W/h-validate.out" 2>/dev/null | head -13 | cut -c1-200
      grep -o '"relative_error": *[-0-9.e]*' "$W/h-validate-datasheet.out" 2>/dev/null | sed 's/^/datasheet profile: /'
    fi
    for net in alexnet resnet18; do
      [ -e "$W/d-$net.out" ] || continue
      echo
      echo "---- d: $net kernel table ($IMAGE px, batches $BATCHES)"
      grep -E "^profile|^class|^conv |^gemm |^eltwise|^norm|^pool|^fit:|^measured|dnnsim:" "$W/d-$net.out" | head -14
      csv=$W/$net.meas.csv
      [ -s "$csv" ] || csv=$W/$net.meas.csv.part
      if [ -s "$csv" ]; then
        # Rows per layer and pass over the batches: a (layer, pass) with
        # fewer batches than asked lost kernels (skipped or out of time).
        awk -F, -v nb="$(echo "$BATCHES" | tr ',' '\n' | wc -l)" '
          /^#/ || $1 == "backend" {next}
          {k = $3 " " $6; if (!((k, $9) in seen)) {seen[k, $9] = 1; n[k]++}
           if ($5 == "conv2d") algos[$3 " " $6 " " $9]++}
          END {full = 0; part = 0; for (k in n) if (n[k] >= nb) full++; else {part++; if (part <= 6) short = short " " k "(" n[k] ")"}
               na = 0; s = 0; for (k in algos) {na++; s += algos[k]}
               printf "kernels: %d (layer, pass) with every batch, %d with fewer%s\n", full, part, short
               if (na) printf "convolutions: %.1f algorithms timed per (layer, pass, batch) on average\n", s / na}' "$csv"
      fi
    done
    if [ -s "$W/d3-points-resnet18.out" ] || [ -s "$W/d3-points-alexnet.out" ]; then
      echo
      echo "---- d3: kernel model ($DEV datasheet profile, model only) vs measured"
      for net in resnet18 alexnet; do
        [ -s "$W/d3-points-$net.out" ] || continue
        echo "$net, every measured kernel (each algorithm):  $(grep -m1 'roofline model:' "$W/d3-points-$net.out" | sed 's/roofline model: *//')"
        [ -s "$W/d3-layers-$net.txt" ] && sed "s/^/$net, /" "$W/d3-layers-$net.txt"
      done
      [ -s "$W/d3-fit.out" ] && echo "resnet18 fitted profile on resnet18 (fit):      $(grep -m1 'roofline model:' "$W/d3-fit.out" | sed 's/roofline model: *//')"
      [ -s "$W/d3-heldout.out" ] && echo "resnet18 fitted profile on alexnet (held out): $(grep -m1 'roofline model:' "$W/d3-heldout.out" | sed 's/roofline model: *//')"
      [ -s "$W/d3-derive.out" ] && head -2 "$W/d3-derive.out" | cut -c1-300
    fi
    if ls "$W"/e-*-measured.out >/dev/null 2>&1 || ls "$W"/e-*-datasheet.out >/dev/null 2>&1; then
      echo
      echo "---- e: µ-cuDNN conv speedup, batch $N, fp32, dp powerOfTwo, over the undivided"
      echo "     fastest algorithm within the limit (predicted: datasheet profile | calibrated"
      echo "     profile, model workspaces | measured table, cuDNN workspaces; measured: CUPTI"
      echo "     kernel sums over the compared kernels, with the prediction for the same ones)"
      printf "%-9s %-7s %9s %9s %9s | %9s %9s %9s %9s\n" network limit datasheet profile table measured "pred same" wall compared
      for net in alexnet resnet18; do
        i=0
        for lim in ${LIMITS//,/ }; do
          i=$((i + 1))
          pd=$(grep "^convolutions:" "$W/e-$net-datasheet.out" 2>/dev/null | sed -n "${i}p" | sed -n 's/.*speedup \([0-9.]*\)x.*/\1/p')
          pp=$(grep "^convolutions:" "$W/e-$net-profile.out" 2>/dev/null | sed -n "${i}p" | sed -n 's/.*speedup \([0-9.]*\)x.*/\1/p')
          pt=$(grep "^convolutions:" "$W/e-$net-measured.out" 2>/dev/null | sed -n "${i}p" | sed -n 's/.*speedup \([0-9.]*\)x.*/\1/p')
          m=$(grep "^measured (" "$W/e-$net-measured.out" 2>/dev/null | sed -n "${i}p")
          ms=$(echo "$m" | sed -n 's/.*, speedup \([0-9.]*\)x (predicted.*/\1/p')
          mp=$(echo "$m" | sed -n 's/.*(predicted \([0-9.]*\)x for the same.*/\1/p')
          mw=$(echo "$m" | sed -n 's/.*wall-clock \([0-9.]*\)x.*/\1/p')
          mc=$(echo "$m" | sed -n 's/.*: \([0-9]* of [0-9]*\) kernels compared.*/\1/p')
          printf "%-9s %-7s %9s %9s %9s | %9s %9s %9s %9s\n" "$net" "$lim" "${pd:--}" "${pp:--}" "${pt:--}" "${ms:--}" "${mp:--}" "${mw:--}" "${mc:--}"
        done
      done
      for net in alexnet resnet18; do
        [ -s "$W/e-$net-measured.out" ] || continue
        grep -E "^measured \(|^not compared" "$W/e-$net-measured.out" | sed "s/^/$net: /" | cut -c1-400
        # Kernels that did not count, and why (first few).
        grep -E "NOT RUN|OVER LIMIT|MISMATCH|UNCHECKED" "$W/e-$net-measured.out" | head -8 | cut -c1-300
      done
    fi
    failed=$(awk '$2 != "ok" && $2 != "skipped" && $1 != "c-quick" {print $1}' "$STEPS")
    [ "$NODEV" = 1 ] && failed=""
    for s in $failed; do
      echo
      echo "---- $s: last lines"
      tail -15 "$W/$s.out" | cut -c1-300
    done
    echo
    echo "files: $(find "$OUT" -maxdepth 1 -type f -printf '%f(%s B) ' | LC_ALL=C sort)"
  } >"$S" 2>&1
  head -c 11000 "$S" >"$SUM"
}

if [ "$NODEV" = 1 ] && [ "$DRY" != 1 ]; then
  summary
  cat "$SUM"
  exit 4
fi

summary
# ---- b': GPU tests -------------------------------------------------------
if [ "$TEST" = ctest ]; then
  run b-tests 90 0 sh -c "cd '$BUILD' && ctest -L gpu -E calibrate_cli_gpu --output-on-failure --timeout 80"
elif [ -n "$TEST" ]; then
  run b-tests 90 0 sh -c "'$TEST' && '$CARRY/bin/test_meas_executor_gpu'"
fi

# ---- g: NCC's LSTMs through cuDNN's RNN API ------------------------------
# Written without a device (Nov 2026): its first run on a GPU is here,
# before the longer steps. Rows of lstm_1/lstm_2 with their verification
# errors go to the summary.
if [ -n "$BIN" ]; then
  (cd "$W" && run g-ncc 60 300 "$BIN" calibrate gpu --quick --network ncc \
    --batch 1,8,64 -o "$W/ncc.ini")
fi

# ---- h: the executor's cuDNN engine against the prediction ---------------
# Also written without a device (Nov 2026). ResNet-18 at 112 px, batch 64,
# one rank: calibrate the kernels it runs, then `dnnsim validate` with that
# profile (the model's error) and with the datasheet profile.
if [ -n "$BIN" ]; then
  VSCN=$ROOT/scenarios/validate/resnet18-gpu.ini
  (cd "$W" && run h-calib 60 230 "$BIN" calibrate gpu --quick \
    --network resnet18 --image 112 --batch 32,64 -o "$W/val.ini")
  [ -s "$W/val.ini" ] &&
    run h-validate 60 200 "$BIN" validate "$VSCN" \
      -s "hardware.profile=$W/val.ini" --layers
  run h-validate-datasheet 45 180 "$BIN" validate "$VSCN" \
    -s "hardware.profile=$DEV" -f json
fi

# ---- d, e: kernel tables and µ-cuDNN validation, per network ------------
# table NET BASE CAP RESERVE: the measured kernel table of NET.
table() {
  local net=$1 base=$2 cap=$3 reserve=$4
  local args=(calibrate gpu --quick --network "$net" --image "$IMAGE"
    --batch "$BATCHES" -o "$W/$net.ini")
  [ -n "$base" ] && args+=(--base "$base")
  (cd "$W" && run "d-$net" "$cap" "$reserve" "$BIN" "${args[@]}")
}

# microbatch NET CAP RESERVE: plans at every limit from the datasheet
# profile and the calibrated one, then from the measured table with cuDNN.
microbatch() {
  local net=$1 cap=$2 reserve=$3
  local scn=$ROOT/scenarios/ucudnn-$net-p100-64mib.ini
  local common=(microbatch "$scn" -s "model.batch=$N" -s "model.image=$IMAGE"
    --workspace "$LIMITS" --solver dp --policy powerOfTwo)
  run "e-$net-datasheet" 30 "$reserve" "$BIN" "${common[@]}" -s "hardware.profile=$DEV"
  [ -s "$W/$net.ini" ] &&
    run "e-$net-profile" 30 "$reserve" "$BIN" "${common[@]}" -s "hardware.profile=$W/$net.ini"
  local csv=$W/$net.meas.csv
  [ -s "$csv" ] || csv=$W/$net.meas.csv.part
  if [ -s "$csv" ]; then
    [ "$csv" = "$W/$net.meas.csv.part" ] && note "$net: planning from the partial table $csv"
    run "e-$net-measured" "$cap" "$reserve" "$BIN" "${common[@]}" \
      -s "hardware.profile=$DEV" --kernels "$csv" --measure \
      --profile-out "$OUT/microbatch-$net.csv"
  else
    note "$net: no kernel table, nothing to run"
  fi
}

if [ -n "$BIN" ]; then
  table alexnet "$DEV" 150 290
  microbatch alexnet 150 250
  summary # a provisional summary.txt, should the call be cut short
  table resnet18 "" 210 90
  microbatch resnet18 170 20
fi

# ---- d3: the kernel model against the tables ------------------------------
# Per layer: the best measured algorithm against the model's best among the
# same algorithms (calibrate check --points lists every kernel).
layers() {
  awk -v order="$BATCHES" '$5 == "measured" && $8 == "predicted" {
         k = $1 " " $3 " " $4
         if (!(k in m) || $6 < m[k]) m[k] = $6
         if (!(k in p) || $9 < p[k]) p[k] = $9
       }
       END {
         n = 0
         for (k in m) {
           e = (p[k] - m[k]) / m[k]; if (e < 0) e = -e
           err[++n] = e; split(k, f, " "); b = f[3]; sub("b=", "", b)
           sm[b] += m[k]; sp[b] += p[k]
           printf "%s,%s,%s,%.6g,%.6g,%.4f\n", f[1], f[2], b, m[k], p[k], e > "/dev/stderr"
         }
         for (i = 2; i <= n; i++) { v = err[i]; j = i - 1
           while (j > 0 && err[j] > v) { err[j + 1] = err[j]; j-- } err[j + 1] = v }
         if (n) printf "per layer and pass (best algorithm), %d points: median %.1f%%, worst %.1f%%\n", n, 100 * (n % 2 ? err[(n + 1) / 2] : (err[n / 2] + err[n / 2 + 1]) / 2), 100 * err[n]
         s = ""
         nb = split(order, bs, ",")
         for (i = 1; i <= nb; i++) if (bs[i] in sm)
           s = s sprintf(" b=%s %+.0f%%", bs[i], 100 * (sp[bs[i]] - sm[bs[i]]) / sm[bs[i]])
         if (n) printf "network (sum of layers) per batch:%s\n", s
       }' "$1"
}
if [ -n "$BIN" ]; then
  echo "network,layer,pass,batch,measured_s,model_s,rel_err" >"$OUT/model-vs-measured.csv"
  for net in resnet18 alexnet; do
    csv=$W/$net.meas.csv
    [ -s "$csv" ] || csv=$W/$net.meas.csv.part
    [ -s "$csv" ] || continue
    if run "d3-points-$net" 20 5 "$BIN" calibrate check --profile "$DEV" \
      --kernels "$csv" --model-only --points; then
      layers "$W/d3-points-$net.out" >"$W/d3-layers-$net.txt" \
        2>"$W/d3-rows-$net.txt"
      sed 's|/|,|' "$W/d3-rows-$net.txt" >>"$OUT/model-vs-measured.csv"
    fi
  done
  [ -s "$W/resnet18.ini" ] && [ -s "$W/resnet18.meas.csv" ] &&
    run d3-fit 20 5 "$BIN" calibrate check --profile "$W/resnet18.ini" \
      --kernels "$W/resnet18.meas.csv" --model-only
  [ -s "$W/resnet18.ini" ] && [ -s "$W/alexnet.meas.csv" ] &&
    run d3-heldout 20 5 "$BIN" calibrate check --profile "$W/resnet18.ini" \
      --kernels "$W/alexnet.meas.csv" --model-only
  # A profile for the other Hopper part derived from this one (Habitat-style
  # scaling; unverifiable here, a smoke test of the path).
  other=h200
  [ "$DEV" = h200 ] && other=h100-sxm5
  [ -s "$W/resnet18.ini" ] &&
    run d3-derive 20 5 "$BIN" calibrate derive --from "$W/resnet18.ini" \
      --to "$other" -o "$W/derived-$other.ini"
fi

# ---- f: files and summary -------------------------------------------------
(cd "$W" && tar czf "$OUT/tables.tar.gz" -- *.ini *.csv *.part 2>/dev/null)
[ -s "$OUT/model-vs-measured.csv" ] &&
  [ "$(wc -l <"$OUT/model-vs-measured.csv")" -le 1 ] && rm -f "$OUT/model-vs-measured.csv"
summary
cat "$SUM"
bad=$(awk '$2 != "ok" {n++} END {print n + 0}' "$STEPS")
[ "$bad" -eq 0 ] && exit 0
exit 1
