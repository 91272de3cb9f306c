#!/bin/sh
# Checks of `dnnsim calibrate` (tests/calibrate/CMakeLists.txt):
#   cli_calibrate.sh cli|gpu|mpi DNNSIM WORKDIR [MPIEXEC]
# Each check prints what it expected when it fails; exit 1 on the first.
set -u
what=$1 dnnsim=$2 dir=$3 mpiexec=${4:-mpirun}
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir" || exit 1

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect CODE CMD...: runs CMD, checks its exit code; output in out.txt.
expect() {
  code=$1
  shift
  "$@" >out.txt 2>&1
  rc=$?
  [ "$rc" -eq "$code" ] || { cat out.txt >&2; fail "'$*' exited $rc, expected $code"; }
}

# contains TEXT: out.txt has TEXT.
contains() {
  grep -qF -- "$1" out.txt || { cat out.txt >&2; fail "output lacks '$1'"; }
}

case $what in
cli)
  expect 2 "$dnnsim" calibrate
  contains "mpi|cpu|gpu|derive|fit|check"
  expect 0 "$dnnsim" calibrate cpu --help
  contains "--network NET"
  expect 2 "$dnnsim" calibrate cpu
  contains "-o PROFILE is required"
  expect 2 "$dnnsim" calibrate cpus -o x.ini
  contains "did you mean 'cpu'"
  expect 2 "$dnnsim" calibrate cpu --batch 0 -o x.ini
  expect 3 "$dnnsim" calibrate cpu --network resnet99 -o x.ini
  contains "resnet99"
  expect 1 "$dnnsim" calibrate derive --from missing.ini --to v100-sxm2 -o d.ini
  contains "missing.ini"

  # A quick calibration; the profile loads and predicts.
  expect 0 "$dnnsim" calibrate cpu --quick --threads 1 -o cpu.ini
  contains "median relative error"
  [ -f cpu.ini ] && [ -f cpu.kernels.csv ] && [ -f cpu.meas.csv ] ||
    fail "cpu.ini, cpu.kernels.csv and cpu.meas.csv expected"
  [ ! -f cpu.meas.csv.part ] || fail "the .part file should be gone"
  grep -q "by: dnnsim calibrate cpu --quick" cpu.ini || fail "provenance"
  expect 0 "$dnnsim" describe resnet18 --image 32 --profile cpu.ini
  expect 0 "$dnnsim" calibrate check --profile cpu.ini --kernels cpu.meas.csv
  contains "profile (table + model):"
  expect 0 "$dnnsim" calibrate fit --kernels cpu.meas.csv --base cpu.ini -o refit.ini
  [ -f refit.ini ] || fail "refit.ini expected"

  # The NCC classifier: two 200-unit LSTMs over 100 steps pass the
  # gradient checks (wide layers once failed them: the finite-difference
  # step was not scaled to the fan-in).
  expect 0 "$dnnsim" calibrate cpu --network ncc --quick --threads 1 -o ncc.ini
  contains "measured 18 kernels"

  # Interrupted: the old profile survives, the .part file resumes.
  cp cpu.ini before.ini
  "$dnnsim" calibrate cpu --quick --threads 1 --image 64 --batch 2,4 \
    -o cpu.ini >out.txt 2>&1 &
  pid=$!
  sleep 2
  kill -INT $pid
  wait $pid
  rc=$?
  if [ $rc -ne 0 ]; then
    contains "interrupted"
    [ -f cpu.meas.csv.part ] || fail "the .part file should be kept"
    cmp -s cpu.ini before.ini || fail "cpu.ini changed by an interrupted run"
    expect 0 "$dnnsim" calibrate cpu --quick --threads 1 --image 64 \
      --batch 2,4 --resume -o cpu.ini
    contains "new) of resnet18"
  fi

  # Derive a profile for another device from this one.
  expect 0 "$dnnsim" calibrate derive --from cpu.ini --to cpu.ini -o derived.ini
  contains "kernel times scaled"
  expect 3 "$dnnsim" calibrate derive --from cpu.ini --to v100-sxm2 -o d.ini
  contains "cannot derive a gpu profile"
  ;;
gpu)
  "$dnnsim" calibrate gpu --quick -o gpu.ini >out.txt 2>&1
  rc=$?
  if [ $rc -eq 4 ]; then
    contains "no CUDA device"
  else
    [ $rc -eq 0 ] || { cat out.txt >&2; fail "calibrate gpu exited $rc"; }
    [ -f gpu.ini ] || fail "gpu.ini expected"
  fi
  ;;
mpi)
  expect 0 "$mpiexec" --allow-run-as-root --oversubscribe -np 2 \
    "$dnnsim" calibrate mpi --quick -o net.ini
  contains "LogGP"
  [ -f net.ini ] && [ -f net.meas.csv ] || fail "net.ini and net.meas.csv"
  grep -q "^\[fit.allreduce.default.2\]" net.ini || fail "default allreduce fit"
  expect 0 "$dnnsim" calibrate check --comm-profile net.ini --csv net.meas.csv
  contains "fitted rank counts:"
  expect 0 "$dnnsim" calibrate fit --csv net.meas.csv -o refit.ini
  # One rank only: a clear error, not a hang.
  expect 3 "$dnnsim" calibrate mpi --quick -o one.ini
  contains "at least 2 MPI ranks"
  ;;
esac
echo "ok: $what"
