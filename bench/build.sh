#!/usr/bin/env bash
# bench/build.sh BIN_DIR: berth build against podman build (buildah), side by
# side in one run, for a Dockerfile with RUN steps, a 20 MB COPY and a COPY
# of 50 small source files, FROM a busybox image both stores hold:
#  1. cold: every step runs (--no-cache; the base is there);
#  2. fully cached rebuild: nothing changed;
#  3. one source file changed: the COPY of the sources and the RUN after it
#     run again, the steps before come from the cache.
# Writes bench/results/build-*.{md,json}. Not a test: timings are noisy,
# compare the ratios of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../bin}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
need=()
for p in podman hyperfine busybox-static; do dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' || need+=($p); done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
work=$(mktemp -d /tmp/bbuild.XXXXXX)
B="$BIN/berth --root $work/b --runroot $work/br"
PD="podman --root $work/p --runroot $work/pr --storage-driver overlay --cgroup-manager cgroupfs --events-backend none"
cleanup() {
	$PD system reset -f >/dev/null 2>&1 || true
	$B image unmount --all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$here/results"

# The base: busybox-static as a one-layer image, the same tar in both.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh ls cat echo mkdir wc sha256sum cp true; do ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/base.tar" .
$B import "$work/base.tar" localhost/bb:bench >/dev/null
$PD import -q "$work/base.tar" localhost/bb:bench >/dev/null

ctx=$work/ctx
mkdir -p "$ctx/src"
head -c $((20 << 20)) /dev/urandom >"$ctx/big.bin"
for i in $(seq 50); do head -c 4096 /dev/urandom | base64 >"$ctx/src/f$i.txt"; done
cat >"$ctx/Dockerfile" <<'EOF'
FROM localhost/bb:bench
ENV APP=/app
RUN mkdir -p /app && echo built > /app/built
COPY big.bin /app/big.bin
RUN sha256sum /app/big.bin > /app/big.sum
COPY src/ /app/src/
RUN ls /app/src | wc -l > /app/count
WORKDIR /app
CMD ["sh"]
EOF
BB="$B build -q --pull=never -t bench:1 $ctx"
PB="$PD build -q --pull=never --layers --runtime runc --network none --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 -t bench:1 $ctx"
# Warm both (and check both build it).
$BB >/dev/null
$PB >/dev/null
runs=${RUNS:-10}
hyperfine -N -w 1 -r "$runs" --export-markdown "$here/results/build-cold.md" --export-json "$here/results/build-cold.json" \
	-n "berth build --no-cache" "${BB/build -q/build -q --no-cache}" \
	-n "podman build --no-cache" "${PB/build -q/build -q --no-cache}"
hyperfine -N -w 1 -r "$runs" --export-markdown "$here/results/build-cached.md" --export-json "$here/results/build-cached.json" \
	-n "berth build (all cached)" "$BB" \
	-n "podman build (all cached)" "$PB"
hyperfine -w 1 -r "$runs" --export-markdown "$here/results/build-onefile.md" --export-json "$here/results/build-onefile.json" \
	-n "berth build (one source changed)" --prepare "head -c 64 /dev/urandom | base64 > $ctx/src/f7.txt" "$BB" \
	-n "podman build (one source changed)" --prepare "head -c 64 /dev/urandom | base64 > $ctx/src/f7.txt" "$PB"
