#!/usr/bin/env bash
# Install what kiln's tests and example need (Debian 12) and check the Rust toolchain.
# Idempotent: packages are only installed when a tool is missing.
set -euo pipefail

need=()
for tool in /usr/bin/docker-registry /usr/bin/skopeo /usr/bin/umoci /usr/bin/htpasswd \
            /usr/sbin/dockerd /usr/bin/docker /usr/bin/openssl /usr/bin/newuidmap; do
  [ -x "$tool" ] || need+=("$tool")
done
# The busybox base image needs busybox-static's /bin/busybox (no program interpreter).
if [ ! -x /bin/busybox ] || grep -qa 'ld-linux' <(head -c 4096 /bin/busybox); then
  need+=(/bin/busybox-static)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing packages (missing: ${need[*]})" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    docker-registry apache2-utils skopeo umoci busybox-static docker.io openssl ca-certificates uidmap </dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! cargo --version >/dev/null 2>&1; then
  echo "setup: no working Rust toolchain (cargo) found; install one with rustup (https://rustup.rs)" >&2
  exit 1
fi
# The fuzz step of test.sh needs cargo-fuzz (about 2 minutes to build).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
echo "setup: ok ($(cargo --version))" >&2
