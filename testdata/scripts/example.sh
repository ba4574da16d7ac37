#!/usr/bin/env bash
# Build the example image (testdata/example: a busybox build stage + a FROM scratch result)
# into an OCI archive and show it with skopeo. Starts a loopback registry holding a busybox
# base image for the build and stops it (by pid) at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash testdata/scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

cargo build --quiet -p kiln-testsupport --bin kiln-testbed
cargo build --quiet --bin kiln

work=$(mktemp -d /tmp/kiln-example-XXXXXX)
testbed_pid=""
cleanup() {
  if [ -n "$testbed_pid" ]; then kill "$testbed_pid" 2>/dev/null || true; wait "$testbed_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/debug/kiln-testbed registry "$work/refs" >/dev/null &
testbed_pid=$!
for _ in $(seq 300); do
  [ -s "$work/refs" ] && break
  kill -0 "$testbed_pid" 2>/dev/null || { echo "example: test registry failed to start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/refs" ] || { echo "example: test registry did not come up in 30s" >&2; exit 1; }
base=$(head -n1 "$work/refs")
echo "example: base image $base" >&2

mkdir -p target/example
out=target/example/kiln-example.oci.tar
rm -f "$out"
cargo run --quiet --bin kiln -- build --progress=plain \
  --root "$work/root" \
  --build-arg "BASE=$base" \
  -t kiln-example:latest \
  -o "type=oci,dest=$out" \
  testdata/example

echo "example: wrote $out" >&2
skopeo inspect "oci-archive:$out"
skopeo inspect --config "oci-archive:$out"
