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
cargo test --workspace --no-fail-fast
echo "test: all tests passed in $(( $(date +%s) - start ))s" >&2
