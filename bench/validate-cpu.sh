#!/bin/sh
# Measured against predicted on this machine: every validation scenario of
# scenarios/validate/ (docs/validation.md, "Results on the development VM")
# run ROUNDS times with `dnnsim validate --realtime`, then per row the
# median error over the rounds and its range.
#
#   bench/validate-cpu.sh [DNNSIM] [OUT_DIR]
#
# Environment: MPIRUN (default mpirun), ROUNDS (4). About 2 minutes a round
# on a 2-core machine. Needs root (or CAP_SYS_NICE) for --realtime; set
# REALTIME= to run without it. The summary is OUT_DIR/summary.txt.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
dnnsim=${1:-$root/build/cli/dnnsim}
out=${2:-$root/out/validate}
mpirun=${MPIRUN:-mpirun}
rounds=${ROUNDS:-4}
rt=${REALTIME---realtime}
v="$root/scenarios/validate"
mpi="$mpirun --allow-run-as-root --oversubscribe"
mkdir -p "$out"
cd "$root" || exit 1

# name ranks scenario [options...]
one() {
  name=$1 np=$2 scn=$3
  shift 3
  # shellcheck disable=SC2086 # $mpi and $rt split on purpose
  $mpi -np "$np" "$dnnsim" validate "$v/$scn" $rt "$@" \
    >"$out/r$r/$name.txt" 2>&1 || echo "  $name: failed (see $out/r$r/$name.txt)"
}

r=1
while [ "$r" -le "$rounds" ]; do
  echo "round $r of $rounds" >&2
  mkdir -p "$out/r$r"
  for m in 1 2 4; do
    one "ba1-M$m" 1 resnet18-ba1.ini --set "training.augment_copies=$m"
    one "ba-M$m" 2 resnet18-ba.ini --set "training.augment_copies=$m"
  done
  one mix1 1 resnet18-mix1.ini
  one mix 2 resnet18-mix.ini
  one dp1 1 resnet18-dp1.ini
  one dp2 2 resnet18-dp.ini
  one dp4 4 resnet18-dp4.ini
  one pp2-1f1b 2 resnet18-pp2.ini
  one pp2-gpipe 2 resnet18-pp2.ini --set parallelism.schedule=gpipe
  one pp2-noacc 2 resnet18-pp2.ini --no-accumulate
  one dp2-overlap 2 resnet18-dp.ini --set parallelism.overlap=true
  r=$((r + 1))
done

# The rows of the tables `validate` prints: "<label>  <measured> <unit>
# <predicted> <unit> <error>%". Per file and label: median measured,
# median predicted, median error and its range over the rounds.
summary=$out/summary.txt
for f in "$out"/r1/*.txt; do
  name=$(basename "$f" .txt)
  echo "== $name"
  cat "$out"/r*/"$name.txt" 2>/dev/null | awk '
    function ms(v, u) { return u == "s" ? v * 1e3 : u == "us" ? v / 1e3 : v }
    /^(iteration|mean step|epoch|[0-9]+ px) / && /%/ {
      n = 0; lab = ""; i0 = 1
      if ($2 == "px") { lab = $1 " px"; i0 = 3 }
      for (i = i0; i <= NF; i++) {
        if ($i ~ /^[0-9.]+$/ && $(i + 1) ~ /^(ms|us|s)$/) {
          if (n < 2) t[n] = ms($i, $(i + 1))
          n++; i++
        } else if ($i ~ /^[-+][0-9.]+%$/) { e = $i + 0; break }
        else if (n == 0 && i0 == 1) lab = lab (lab == "" ? "" : " ") $i
      }
      if (n < 2) next
      k = lab; c = ++cnt[k]; M[k, c] = t[0]; P[k, c] = t[1]; E[k, c] = e
      if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    }
    function med(A, k, c,   i, j, x, v) {
      for (i = 1; i <= c; i++) v[i] = A[k, i]
      for (i = 2; i <= c; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
      lo = v[1]; hi = v[c]
      return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
      for (q = 1; q <= nk; q++) {
        k = order[q]; c = cnt[k]
        m = med(M, k, c); p = med(P, k, c); e = med(E, k, c)
        printf "  %-36s measured %10.1f ms  predicted %10.1f ms  error %+6.1f%% [%+.1f, %+.1f] (%d runs)\n", k, m, p, e, lo, hi, c
      }
    }'
done >"$summary"
cat "$summary"
