#!/usr/bin/env bash
# Runs every libFuzzer target of a NORMKIT_BUILD_FUZZ build over its committed corpus
# (tests/fuzz/corpus/<target>/) plus a fixed number of mutations, deterministically (-seed=1), with a
# time bound per target. Any crash, leak, timeout or sanitizer report fails; so does finding no target.
#   scripts/fuzz.sh BUILD_DIR [--runs N] [--time SECONDS] [--grow]
# --grow keeps the new inputs libFuzzer finds: they are merged (minimized) into the committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [--runs N] [--time SECONDS] [--grow]}
shift
runs=20000
seconds=60
grow=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --time) seconds=$2; shift 2 ;;
    --grow) grow=1; runs=-1; shift ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
targets=("$build"/tests/fuzz/fuzz_*)
if [ ! -x "${targets[0]}" ]; then
  echo "fuzz.sh: no fuzz target in $build/tests/fuzz (configure with -DNORMKIT_BUILD_FUZZ=ON and clang)" >&2
  exit 1
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
count=0
for target in "${targets[@]}"; do
  name=$(basename "$target")
  corpus="tests/fuzz/corpus/${name#fuzz_}"
  if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus")" ]; then
    echo "fuzz.sh: $name has no seed corpus in $corpus" >&2
    exit 1
  fi
  scratch=$(mktemp -d)
  echo "== $name: corpus $corpus ($(ls "$corpus" | wc -l) inputs), runs=$runs, at most ${seconds}s"
  # New inputs go to the scratch folder (the first corpus argument); the committed corpus is only read.
  if ! "$target" -seed=1 -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 "$scratch" "$corpus" > "$scratch.log" 2>&1; then
    tail -n 60 "$scratch.log"
    echo "fuzz.sh: $name FAILED (crash, leak, timeout or sanitizer report above)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$scratch.log" | tr '\n' ' '
  echo
  if [ "$grow" = 1 ]; then
    "$target" -merge=1 "$corpus" "$scratch" > /dev/null 2>&1
    echo "   corpus now $(ls "$corpus" | wc -l) inputs"
  fi
  rm -rf "$scratch" "$scratch.log"
  count=$((count + 1))
done
echo "fuzz.sh: $count fuzz targets passed"
