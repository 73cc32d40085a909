#!/usr/bin/env bash
# bench/load.sh BIN_DIR: load + unpack of the 200 MB, 5-layer benchmark
# image (../shared/bench/mkimages.sh), berth side by side with podman load
# and umoci unpack in ONE hyperfine run. Each run starts from an empty
# store (hyperfine --prepare). Prints hyperfine's table and a throughput
# and CPU table, and writes bench/results/load.{md,json}. Not a test:
# timings are noisy, compare the ratios of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../bin}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
need=()
for p in podman skopeo umoci runc hyperfine jq; do dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' || need+=($p); done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
P=/tmp/peers
[ -f "$P/oci-big/index.json" ] || bash "$here/../../shared/bench/mkimages.sh" >/dev/null
work=$(mktemp -d /tmp/bload.XXXXXX)
# podman refuses a runroot longer than 50 characters: keep paths short.
cleanup() {
	podman --root "$work/p" --runroot "$work/pr" --storage-driver overlay system reset -f >/dev/null 2>&1 || true
	"$BIN/berth" --root "$work/b" --runroot "$work/br" image unmount --all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
tar -C "$P/oci-big" -cf "$work/big-oci.tar" .
skopeo copy -q "oci:$P/oci-big:latest" "docker-archive:$work/big-docker.tar:localhost/big:latest"
ls -l "$work"/*.tar
mkdir -p "$here/results"
B="$BIN/berth --root $work/b --runroot $work/br"
PD="podman --root $work/p --runroot $work/pr --storage-driver overlay"
runs=${RUNS:-10}
hyperfine --warmup 1 --runs "$runs" --export-markdown "$here/results/load.md" --export-json "$here/results/load.json" \
	--prepare "rm -rf $work/b $work/br; sync" -n "berth load (oci-archive)" "$B load -i $work/big-oci.tar" \
	--prepare "rm -rf $work/b $work/br; sync" -n "berth load (docker-archive)" "$B load -i $work/big-docker.tar" \
	--prepare "rm -rf $work/b $work/br; sync" -n "berth load (OCI layout dir)" "$B load -i $P/oci-big" \
	--prepare "$PD system reset -f >/dev/null 2>&1; rm -rf $work/p $work/pr; sync" -n "podman load (oci-archive)" "$PD load -q -i $work/big-oci.tar" \
	--prepare "$PD system reset -f >/dev/null 2>&1; rm -rf $work/p $work/pr; sync" -n "podman load (docker-archive)" "$PD load -q -i $work/big-docker.tar" \
	--prepare "rm -rf $work/u; sync" -n "umoci unpack (OCI layout dir)" "umoci unpack --image $P/oci-big:latest $work/u"
# Throughput over the image's uncompressed size, and how many cores each
# kept busy ((user+system)/wall).
size=$(jq '[.layers[].size]|add' "$P/oci-big/blobs/sha256/$(jq -r '.manifests[0].digest' "$P/oci-big/index.json" | cut -d: -f2)")
echo
echo "| command | mean | MB/s (compressed $((size/1000000)) MB) | cores busy |"
echo "|---|---|---|---|"
jq -r --argjson size "$size" '.results[] | "| \(.command) | \(.mean*1000|floor) ms | \($size/1000000/.mean|floor) | \(((.user+.system)/.mean)*100|floor/100) |"' "$here/results/load.json"
