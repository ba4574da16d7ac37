#!/usr/bin/env bash
# Run every test of the workspace: unit tests, crate integration tests and the kiln binary's
# end-to-end tests (which start loopback registries and a dockerd; run as root).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash testdata/scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

start=$(date +%s)
cargo build --workspace --all-targets
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# Keep cargo's own output, and add up its "test result:" lines for the closing summary.
# The output goes to a file (followed by tail until cargo exits), never to a pipe: a process a
# test leaked would hold a pipe open and keep this script waiting forever.
set +e
cargo test --workspace --no-fail-fast >"$results" 2>&1 &
test_pid=$!
tail -n +1 -f --pid="$test_pid" "$results"
wait "$test_pid"
status=$?
set -e
# Any process still holding the output file open was leaked by a test: name it, stop it, fail.
leaked=0
for fd_dir in /proc/[0-9]*/fd; do
  pid=${fd_dir#/proc/}; pid=${pid%/fd}
  if ls -l "$fd_dir" 2>/dev/null | grep -qF -- "$results"; then
    echo "test: process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) outlived the tests" >&2
    kill -9 "$pid" 2>/dev/null || true
    leaked=1
  fi
done
if [ "$leaked" -ne 0 ] && [ "$status" -eq 0 ]; then status=1; fi
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$results" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$results" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -ne 0 ]; then
  echo "test: $passed passed, $failed failed"
  exit "$status"
fi

# Fuzz the Dockerfile parser (parse + lower) and the word lexer for a fixed time each; any
# panic, or an input running over 10 s (a hang), fails the script. cargo-fuzz needs nightly
# flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Crashing inputs are kept in
# fuzz/artifacts/<target>/.
fuzz_seconds="${KILN_FUZZ_SECONDS:-20}"
(
  cd fuzz
  export RUSTC_BOOTSTRAP=1
  cargo fuzz build -s none parse
  cargo fuzz build -s none lexer
  for target in parse lexer; do
    corpus=$(mktemp -d)
    seeds=()
    if [ "$target" = parse ]; then seeds=(../testdata/realworld ../testdata/dockerfiles); fi
    echo "test: fuzzing $target for ${fuzz_seconds}s" >&2
    log="$corpus.log"
    if ! cargo fuzz run -s none "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
      tail -n 60 "$log" >&2
      echo "test: fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
      rm -rf "$corpus" "$log"
      exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units)' "$log" >&2 || true
    rm -rf "$corpus" "$log"
  done
)
echo "test: all tests and fuzzing passed in $(( $(date +%s) - start ))s" >&2
echo "test: $passed passed, $failed failed"
