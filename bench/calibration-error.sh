#!/bin/sh
# Prediction error of the calibrated models on this machine
# (docs/calibration.md, "Error figures"):
#
#  1. Collectives: fit power-of-two sizes on communicators of 2 and 4 ranks
#     (mpirun -np 4), then predict (a) the 3*2^k sizes held back from that
#     fit and (b) a communicator of 3 ranks measured separately, which the
#     profile predicts through comm.h's formulas with the fitted links.
#  2. Kernels: fit the roofline on ResNet-18's layers, then predict every
#     layer of AlexNet and ResNet-50 (same image size and batches), which
#     were not used in the fit, from the model alone (--model-only).
#
#   bench/calibration-error.sh [DNNSIM] [OUT_DIR]
#
# Environment: MPIRUN (default mpirun), IMAGE (112), BATCH (2,4),
# THREADS (1: stable on a shared machine), MAX_SIZE (16M).
# Takes about 6-10 minutes on a 2-core machine; the summary is the last
# lines of OUT_DIR/calibration-error.txt.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
dnnsim=${1:-$root/build/cli/dnnsim}
out=${2:-$root/out/calibration}
mpirun=${MPIRUN:-mpirun}
image=${IMAGE:-112}
batch=${BATCH:-2,4}
threads=${THREADS:-1}
max=${MAX_SIZE:-16M}
mkdir -p "$out"
log=$out/calibration-error.txt
: >"$log"
mpi="$mpirun --allow-run-as-root --oversubscribe"

run() {
  echo "\$ $*" >>"$log"
  "$@" >>"$log" 2>&1 || { echo "failed: $*" | tee -a "$log"; exit 1; }
}

echo "# calibration error figures, $(date -u +%Y-%m-%dT%H:%M:%SZ) on" \
  "$(hostname), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"

# ---- Collectives ---------------------------------------------------------
run $mpi -np 4 "$dnnsim" calibrate mpi --ranks 2,4 --max-size "$max" \
  --pow2-fit -o "$out/mpi-fit.ini"
# The sizes held back from the fit: everything but powers of two.
awk -F, '/^#/ {print; next}
  !hdr {print; hdr = 1; next}
  {p = 1; while (p < $6) p *= 2; if (p != $6) print}' \
  "$out/mpi-fit.meas.csv" >"$out/mpi-heldout-sizes.csv"
run $mpi -np 3 "$dnnsim" calibrate mpi --ranks 3 --max-size "$max" \
  --ops allreduce,reduce_scatter,allgather,broadcast,alltoall \
  -o "$out/mpi-p3.ini"
echo "== collectives: held-back sizes (3*2^k), 2 and 4 ranks" >>"$log"
"$dnnsim" calibrate check --comm-profile "$out/mpi-fit.ini" \
  --csv "$out/mpi-heldout-sizes.csv" | tee "$out/sizes.txt" >>"$log"
echo "== collectives: held-back communicator size (3 ranks)" >>"$log"
"$dnnsim" calibrate check --comm-profile "$out/mpi-fit.ini" \
  --csv "$out/mpi-p3.meas.csv" | tee "$out/ranks.txt" >>"$log"

# ---- Kernels -------------------------------------------------------------
for net in resnet18 alexnet resnet50; do
  run "$dnnsim" calibrate cpu --network $net --image "$image" \
    --batch "$batch" --threads "$threads" -o "$out/cpu-$net.ini"
done
for net in alexnet resnet50; do
  echo "== kernels: $net layers predicted by the roofline fitted on" \
    "resnet18" >>"$log"
  "$dnnsim" calibrate check --profile "$out/cpu-resnet18.ini" \
    --kernels "$out/cpu-$net.meas.csv" --model-only |
    tee "$out/kernels-$net.txt" >>"$log"
done
"$dnnsim" calibrate check --profile "$out/cpu-resnet18.ini" \
  --kernels "$out/cpu-resnet18.meas.csv" --model-only \
  >"$out/kernels-fit.txt"

{
  echo "== summary (relative error of predictions against held-back" \
    "measurements)"
  printf "collectives, held-back sizes:     %s\n" \
    "$(grep 'fitted rank counts' "$out/sizes.txt" | cut -c36-)"
  printf "collectives, held-back 3 ranks:   %s\n" \
    "$(grep 'other rank counts' "$out/ranks.txt" | cut -c36-)"
  printf "kernels, resnet18 (fit itself):   %s\n" \
    "$(cut -c36- "$out/kernels-fit.txt")"
  printf "kernels, alexnet (held out):      %s\n" \
    "$(cut -c36- "$out/kernels-alexnet.txt")"
  printf "kernels, resnet50 (held out):     %s\n" \
    "$(cut -c36- "$out/kernels-resnet50.txt")"
} | tee -a "$log"
