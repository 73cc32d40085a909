#!/usr/bin/env bash
# bench/registry.sh BIN_DIR: registries, with everything on 127.0.0.1.
#  1. pull + unpack of the 200 MB, 5-layer benchmark image
#     (../shared/bench/mkimages.sh) from berth's registry server: berth pull
#     against podman pull, every run into an empty store;
#  2. push of it to a fresh repository: berth push (from its store) against
#     skopeo copy (from the OCI layout);
#  3. the server: GET of one 40 MB layer blob, berth registry serve against
#     Debian's docker-registry (distribution 2.8), curl as the client.
# One hyperfine run each. Writes bench/results/registry-*.{md,json}. Not a
# test: timings are noisy, compare the ratios of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../bin}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
need=()
for p in podman skopeo hyperfine jq curl docker-registry; do dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' || need+=($p); done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
P=/tmp/peers
[ -f "$P/oci-big/index.json" ] || bash "$here/../../shared/bench/mkimages.sh" >/dev/null
work=$(mktemp -d /tmp/breg.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	podman --root "$work/p" --runroot "$work/pr" --storage-driver overlay system reset -f >/dev/null 2>&1 || true
	"$BIN/berth" --root "$work/b" --runroot "$work/br" image unmount --all >/dev/null 2>&1 || true
	"$BIN/berth" --root "$work/b2" --runroot "$work/br2" image unmount --all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$here/results"
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/v2/" && return 0; sleep 0.1; done; echo "registry on $1 did not start" >&2; exit 1; }

BP=$(freeport)
"$BIN/berth" --root "$work/bsrv" registry serve --addr "127.0.0.1:$BP" --no-access-log 2>"$work/berth-registry.log" &
pids+=($!)
DP=$(freeport)
cat >"$work/docker-registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dsrv}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$DP}
EOF
docker-registry serve "$work/docker-registry.yml" 2>"$work/docker-registry.log" &
pids+=($!)
waitport "$BP"
waitport "$DP"
BR=127.0.0.1:$BP
DR=127.0.0.1:$DP
skopeo copy -q --dest-tls-verify=false "oci:$P/oci-big:latest" "docker://$BR/bench/big:1"
skopeo copy -q --dest-tls-verify=false "oci:$P/oci-big:latest" "docker://$DR/bench/big:1"
size=$(jq '[.layers[].size]|add' "$P/oci-big/blobs/sha256/$(jq -r '.manifests[0].digest' "$P/oci-big/index.json" | cut -d: -f2)")
B="$BIN/berth --root $work/b --runroot $work/br"
PD="podman --root $work/p --runroot $work/pr --storage-driver overlay"
runs=${RUNS:-10}

# 1. pull + unpack.
hyperfine --warmup 1 --runs "$runs" --export-markdown "$here/results/registry-pull.md" --export-json "$here/results/registry-pull.json" \
	--prepare "rm -rf $work/b $work/br; sync" -n "berth pull" "$B pull -q $BR/bench/big:1" \
	--prepare "$PD system reset -f >/dev/null 2>&1; rm -rf $work/p $work/pr; sync" -n "podman pull" "$PD pull -q --tls-verify=false $BR/bench/big:1"

# 2. push to a fresh repository each run (a counter names it), every byte
# uploaded: berth's image is loaded from the layout (so berth knows no
# repository of this registry to mount from) and skopeo's blob-info cache
# (where it learns what to mount) is set aside for the run.
B2="$BIN/berth --root $work/b2 --runroot $work/br2"
$B2 load -q -i "$P/oci-big" >/dev/null
$B2 tag "$($B2 images -q | head -1)" local/big:1
echo 0 >"$work/n"
next='n=$(($(cat '"$work"'/n)+1)); echo $n >'"$work"'/n'
bic=/var/lib/containers/cache/blob-info-cache-v1.boltdb
[ -e "$bic" ] && mv "$bic" "$work/bic.keep"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$here/results/registry-push.md" --export-json "$here/results/registry-push.json" \
	-n "berth push" "sh -c '$next; $B2 push -q local/big:1 $BR/push/b\$n:1'" \
	--prepare "rm -f $bic" -n "skopeo copy" "sh -c '$next; skopeo copy -q --dest-tls-verify=false oci:$P/oci-big:latest docker://$BR/push/s\$n:1'"
rm -f "$bic"
[ -e "$work/bic.keep" ] && mv "$work/bic.keep" "$bic"

# 2b. the same push where the registry has every blob in another
# repository: berth mounts them (it pulled the image from there), skopeo
# too (its cache knows where it pushed them).
$B pull -q "$BR/bench/big:1" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$P/oci-big:latest" "docker://$BR/bench/big:1"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$here/results/registry-push-mount.md" --export-json "$here/results/registry-push-mount.json" \
	-n "berth push (mounts)" "sh -c '$next; $B push -q $BR/bench/big:1 $BR/mount/b\$n:1'" \
	-n "skopeo copy (mounts)" "sh -c '$next; skopeo copy -q --dest-tls-verify=false oci:$P/oci-big:latest docker://$BR/mount/s\$n:1'"

# 3. the server's blob GET: the image's largest layer.
layer=$(jq -r '.layers | max_by(.size) | .digest' "$P/oci-big/blobs/sha256/$(jq -r '.manifests[0].digest' "$P/oci-big/index.json" | cut -d: -f2)")
lsize=$(jq -r '.layers | max_by(.size) | .size' "$P/oci-big/blobs/sha256/$(jq -r '.manifests[0].digest' "$P/oci-big/index.json" | cut -d: -f2)")
hyperfine -N --warmup 3 --runs "${GETRUNS:-30}" --export-markdown "$here/results/registry-get.md" --export-json "$here/results/registry-get.json" \
	-n "berth registry serve" "curl -s -o /dev/null http://$BR/v2/bench/big/blobs/$layer" \
	-n "docker-registry 2.8" "curl -s -o /dev/null http://$DR/v2/bench/big/blobs/$layer"

echo
echo "| what | command | mean | MB/s |"
echo "|---|---|---|---|"
jq -r --argjson size "$size" '.results[] | "| pull+unpack | \(.command) | \(.mean*1000|floor) ms | \($size/1000000/.mean|floor) |"' "$here/results/registry-pull.json"
jq -r --argjson size "$size" '.results[] | "| push | \(.command) | \(.mean*1000|floor) ms | \($size/1000000/.mean|floor) |"' "$here/results/registry-push.json"
jq -r '.results[] | "| push, blobs in another repository | \(.command) | \(.mean*1000|floor) ms | |"' "$here/results/registry-push-mount.json"
jq -r --argjson size "$lsize" '.results[] | "| blob GET | \(.command) | \(.mean*1000|floor) ms | \($size/1000000/.mean|floor) |"' "$here/results/registry-get.json"
