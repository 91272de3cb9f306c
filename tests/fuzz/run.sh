#!/bin/sh
# Runs the libFuzzer targets of a DNNSIM_FUZZ build for a bounded time.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
#
# Each target fuzzes a working corpus in BUILD_DIR/fuzz-corpus/TARGET,
# seeded from scenarios/ (the files that target parses), tests/fuzz/seeds/
# and tests/fuzz/regressions/; the regression inputs are replayed first.
# Crashes, leaks, timeouts and oracle failures are written to
# BUILD_DIR/fuzz-artifacts/ and make the script exit 1. Prints the
# executions run per target (docs/robustness.md records the numbers).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}" && pwd)
secs=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
targets=${*:-scenario network profile kernels meas_csv}
art="$build/fuzz-artifacts"
mkdir -p "$art"
status=0
summary=""
for t in $targets; do
  exe="$build/tests/fuzz/fuzz_$t"
  if [ ! -x "$exe" ]; then
    echo "run.sh: $exe not built" >&2
    exit 2
  fi
  corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  case $t in
  scenario) seeds="$src/scenarios/*.ini" ;;
  network) seeds="$src/scenarios/networks/*.ini" ;;
  profile) seeds="$src/scenarios/profiles/*.ini" ;;
  *) seeds="" ;;
  esac
  for f in $seeds "$here/seeds/$t"/* "$here/regressions/$t"/*; do
    [ -f "$f" ] && cp "$f" "$corpus/" 2>/dev/null || true
  done
  dict=""
  [ -f "$here/dict/$t.dict" ] && dict="-dict=$here/dict/$t.dict"
  if [ -d "$here/regressions/$t" ] &&
     [ -n "$(ls "$here/regressions/$t" 2>/dev/null)" ]; then
    echo "== fuzz_$t: regression inputs"
    if ! "$exe" -runs=1 "$here/regressions/$t"/* </dev/null \
        >"$art/$t-regressions.log" 2>&1; then
      tail -40 "$art/$t-regressions.log"
      status=1
    fi
  fi
  echo "== fuzz_$t: ${secs} s"
  log="$art/$t.log"
  # stdin from /dev/null: a fuzzed path naming /dev/stdin must not block.
  if "$exe" "$corpus" $dict -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
      -artifact_prefix="$art/$t-" </dev/null >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    grep -E "ERROR|oracle|Assertion|runtime error|SUMMARY|Test unit written" \
      "$log" | head -20
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  summary="$summary
  fuzz_$t: ${runs:-?} executions in ${secs} s: $result"
done
echo "fuzz summary:$summary"
exit $status
