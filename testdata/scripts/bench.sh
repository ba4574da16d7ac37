#!/usr/bin/env bash
# Benchmarks kiln against BuildKit (Debian's dockerd 20.10, DOCKER_BUILDKIT=1) and buildah,
# side by side in one run, on the scenarios of docs/benchmarks.md. Prints a markdown table
# to stdout and to target/bench/results.md.
#
#   bash testdata/scripts/bench.sh [scenario...]
#
# Scenarios: two-stage parallel8 ctx10k big-copy run20 (default: all). Set PEERS="kiln" to
# skip the peers. Runs as root; starts a loopback registry and a dockerd, stops both by pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD

bash testdata/scripts/setup.sh >&2
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"
cargo build --quiet --release --bin kiln >&2
cargo build --quiet -p kiln-testsupport --bin kiln-testbed >&2
KILN=$top/target/release/kiln
PEERS=${PEERS:-"kiln docker buildah"}
scenarios=${*:-"two-stage parallel8 ctx10k big-copy run20"}

work=$(mktemp -d /tmp/kb-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -d "$work/d" ]; then
    grep " $work/d" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

target/debug/kiln-testbed registry "$work/refs" >/dev/null &
pids+=($!)
for _ in $(seq 300); do [ -s "$work/refs" ] && break; sleep 0.1; done
BASE=$(head -n1 "$work/refs")
REG=${BASE%%/*}
export work BASE REG KILN
echo "bench: base image $BASE" >&2

if [[ " $PEERS " == *" docker "* ]]; then
  mkdir -p "$work/d"
  dockerd --data-root "$work/d/data" --exec-root "$work/d/x" --pidfile "$work/d/pid" \
    --host "unix://$work/d/sock" --storage-driver overlay2 --iptables=false --ip6tables=false \
    --bridge=none --insecure-registry "$REG" >"$work/dockerd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$work/d/sock" ] && break; sleep 0.1; done
  docker_() { DOCKER_BUILDKIT=1 DOCKER_HOST="unix://$work/d/sock" /usr/bin/docker "$@"; }
  # The socket appears before dockerd has finished starting; wait until it answers so its
  # start-up does not run beside the first measurement.
  for _ in $(seq 100); do docker_ info >/dev/null 2>&1 && break; sleep 0.1; done
fi

results="$top/target/bench/results.md"
mkdir -p "$top/target/bench"
printf '| scenario | tool | wall s | peak RSS MiB |\n|---|---|---:|---:|\n' | tee "$results"

# measure SCENARIO TOOL CMD...: wall time and peak RSS of CMD (the client process for docker,
# whose work happens in dockerd: its RSS is not comparable and is shown as "daemon").
measure() {
  local scen=$1 tool=$2; shift 2
  local t0 t1 rss
  t0=$(date +%s.%N)
  # GNU time runs programs, not shell functions: hand it a bash that knows ours.
  export -f $(compgen -A function)
  if ! /usr/bin/time -f '%M' -o "$work/time" bash -c '"$@"' _ "$@" >"$work/last.log" 2>&1; then
    echo "bench: $scen/$tool failed; log:" >&2; tail -20 "$work/last.log" >&2
    printf '| %s | %s | failed | |\n' "$scen" "$tool" | tee -a "$results"
    return 0
  fi
  t1=$(date +%s.%N)
  rss=$(( $(tail -n1 "$work/time") / 1024 ))
  [ "$tool" = docker ] && rss="daemon"
  printf '| %s | %s | %.2f | %s |\n' "$scen" "$tool" "$(echo "$t1 - $t0" | bc)" "$rss" | tee -a "$results"
}

kiln_build() { # ROOT CTX [extra args]
  local root=$1 ctx=$2; shift 2
  "$KILN" build --progress=plain --root "$root" --build-arg "BASE=$BASE" "$@" "$ctx"
}
docker_build() { local ctx=$1; shift; docker_ build --network=none --build-arg "BASE=$BASE" "$@" "$ctx"; }
buildah_build() {
  local root=$1 ctx=$2; shift 2
  buildah --root "$root" --runroot "$root-run" --storage-driver overlay bud --isolation=oci \
    --runtime=runc --layers --tls-verify=false --build-arg "BASE=$BASE" "$@" "$ctx"
}
reset_docker() { docker_ builder prune -af >/dev/null 2>&1 || true; docker_ image prune -af >/dev/null 2>&1 || true; }

# run_scenario NAME CTX [kiln extra args] -- phases are handled by the caller.
cold_and_noop() {
  local name=$1 ctx=$2
  for tool in $PEERS; do
    case $tool in
      kiln) rm -rf "$work/kr"; measure "$name cold" kiln kiln_build "$work/kr" "$ctx"
            measure "$name no-op" kiln kiln_build "$work/kr" "$ctx" ;;
      docker) reset_docker; measure "$name cold" docker docker_build "$ctx"
              measure "$name no-op" docker docker_build "$ctx" ;;
      buildah) rm -rf "$work/br" "$work/br-run"; measure "$name cold" buildah buildah_build "$work/br" "$ctx"
               measure "$name no-op" buildah buildah_build "$work/br" "$ctx" ;;
    esac
  done
}

for s in $scenarios; do
  # Let the previous scenario's writes (1 GiB for big-copy) reach the disk first: writeback
  # running beside a measurement slowed it by 2x.
  sync; sleep 2
  case $s in
    two-stage) cold_and_noop "2-stage" "$top/testdata/bench/two-stage" ;;
    parallel8) cold_and_noop "8 × sleep 1 stages" "$top/testdata/bench/parallel8" ;;
    run20)
      cold_and_noop "20 × RUN true" "$top/testdata/bench/run20"
      # The floor: runc alone starting `true` 20 times in a busybox bundle (no overlay, no
      # layer export), the container runtime BuildKit and buildah use here.
      if [[ " $PEERS " == *" buildah "* || " $PEERS " == *" docker "* ]]; then
        rm -rf "$work/rb"; mkdir -p "$work/rb"
        skopeo copy -q --src-tls-verify=false "docker://$BASE" "oci:$work/rb/img:latest" >/dev/null
        umoci unpack -q --image "$work/rb/img:latest" "$work/rb/bundle" >/dev/null 2>&1 || \
          umoci unpack --image "$work/rb/img:latest" "$work/rb/bundle" >/dev/null
        python3 - "$work/rb/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
        runc20() { for i in $(seq 20); do runc --root "$work/rb/state" run --bundle "$work/rb/bundle" "kb$i" >/dev/null; done; }
        measure "20 × runc run true" runc runc20
      fi ;;
    ctx10k)
      export ctx="$work/ctx10k"; rm -rf "$ctx"; mkdir -p "$ctx"
      cp "$top/testdata/bench/ctx10k/Dockerfile" "$ctx/"
      for d in $(seq 0 99); do mkdir "$ctx/d$d"; for f in $(seq 0 99); do echo "file $d $f" > "$ctx/d$d/f$f"; done; done
      for tool in $PEERS; do
        case $tool in
          kiln) rm -rf "$work/kr"; b() { kiln_build "$work/kr" "$ctx"; } ;;
          docker) reset_docker; b() { docker_build "$ctx"; } ;;
          buildah) rm -rf "$work/br" "$work/br-run"; b() { buildah_build "$work/br" "$ctx"; } ;;
        esac
        measure "10k files cold" "$tool" b
        measure "10k files no-op" "$tool" b
        echo edited >> "$ctx/d5/f5"; measure "10k files 1 edited" "$tool" b
        find "$ctx" -type f -exec touch {} +; measure "10k files all touched" "$tool" b
      done ;;
    big-copy)
      export ctx="$work/big"; rm -rf "$ctx"; mkdir -p "$ctx"
      cp "$top/testdata/bench/big-copy/Dockerfile" "$ctx/"
      head -c 1G /dev/urandom > "$ctx/big"
      for tool in $PEERS; do
        case $tool in
          kiln)
            for c in gzip zstd uncompressed; do
              rm -rf "$work/kr" "$work/out.tar"
              measure "1 GiB COPY → oci $c" kiln kiln_build "$work/kr" "$ctx" -o "type=oci,dest=$work/out.tar,compression=$c"
            done ;;
          docker) reset_docker; measure "1 GiB COPY → docker image" docker docker_build "$ctx" ;;
          buildah) rm -rf "$work/br" "$work/br-run"; measure "1 GiB COPY → storage" buildah buildah_build "$work/br" "$ctx" ;;
        esac
      done
      rm -rf "$ctx" ;;
    *) echo "bench: unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "bench: results in $results" >&2
