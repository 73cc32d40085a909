#!/usr/bin/env bash
# bench/engine.sh BIN_DIR: the container engine against podman.
#  1. `run --rm IMAGE true`: berth and podman with the same busybox image,
#     the same runtimes (runc, crun; berth also with berth-runtime) and no
#     network, in ONE hyperfine run inside one private mount namespace where
#     the hybrid cgroup2 mount is hidden (Debian's crun refuses hybrid
#     cgroups; see ../shared/MACHINE.md), so every command sees the same
#     conditions.
#  2. `ps -a` with 100 containers in the store, berth and podman.
#  3. Memory of an idle container: what stays beside the container's own
#     processes (berth-monitor; podman's conmon), RSS and PSS.
# Writes bench/results/engine-*.{md,json}. Not a test: timings are noisy,
# compare the ratios of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../bin}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
need=()
for p in podman skopeo runc crun hyperfine jq busybox-static; do dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' || need+=($p); done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
P=/tmp/peers
[ -f "$P/oci-busybox/index.json" ] || bash "$here/../../shared/bench/mkimages.sh" >/dev/null
# podman refuses a runroot longer than 50 characters: keep paths short.
work=$(mktemp -d /tmp/beng.XXXXXX)
export BERTH_ROOT=$work/b BERTH_RUNROOT=$work/br
B="$BIN/berth"
# podman without systemd or journald here: cgroupfs and file events; the
# host's hard nofile limit (20000) and missing CAP_SYS_RESOURCE need its
# default ulimits lowered (MACHINE.md). berth's defaults work as they are.
PD="podman --root $work/p --runroot $work/pr --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
PDRUN="--network none --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
cleanup() {
	"$B" rm -f $("$B" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
	$PD rm -f -t 0 -a >/dev/null 2>&1 || true
	$PD system reset -f >/dev/null 2>&1 || true
	"$B" image unmount --all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$here/results"

# The same image in both stores.
"$B" load -q -i "$P/oci-busybox" >/dev/null
"$B" tag "$("$B" images -q | head -1)" localhost/busybox:latest
$PD pull -q "oci:$P/oci-busybox:latest" >/dev/null
$PD tag "$($PD images -q | head -1)" localhost/busybox:latest
"$B" run --rm localhost/busybox true
$PD run --rm $PDRUN --runtime runc localhost/busybox true

# 1. run --rm true.
runs=${RUNS:-40}
unshare -m --propagation private bash -c '
	e=$(mktemp); mount --bind "$e" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || umount -l /sys/fs/cgroup/unified 2>/dev/null || true
	runs=$1 out=$2 B=$3 PD=$4 PDRUN=$5
	exec hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$out.md" --export-json "$out.json" \
		-n "berth run --rm (berth-runtime)" "$B run --rm --network none localhost/busybox true" \
		-n "berth run --rm (runc)" "$B run --rm --network none --runtime runc localhost/busybox true" \
		-n "berth run --rm (crun)" "$B run --rm --network none --runtime crun localhost/busybox true" \
		-n "podman run --rm (runc)" "$PD run --rm $PDRUN --runtime runc localhost/busybox true" \
		-n "podman run --rm (crun)" "$PD run --rm $PDRUN --runtime crun localhost/busybox true"
' bash "$runs" "$here/results/engine-run" "$B" "$PD" "$PDRUN"
# The goal compares medians, runtime for runtime.
jq -r '.results as $r | ($r | map({key: .command, value: .median}) | from_entries) as $m |
	"median berth/podman: crun \($m["berth run --rm (crun)"] / $m["podman run --rm (crun)"] * 100 | floor / 100), runc \($m["berth run --rm (runc)"] / $m["podman run --rm (runc)"] * 100 | floor / 100), berth-runtime/podman+crun \($m["berth run --rm (berth-runtime)"] / $m["podman run --rm (crun)"] * 100 | floor / 100)"' "$here/results/engine-run.json"

# 2. ps -a with 100 containers (created, not running: the listing, not the
# containers, is measured).
for i in $(seq 100); do
	"$B" create --name "c$i" localhost/busybox true >/dev/null
	$PD create --name "c$i" $PDRUN --runtime runc localhost/busybox true >/dev/null
done
[ "$("$B" ps -aq | wc -l)" = 100 ] || { echo "berth ps -a does not list 100 containers" >&2; exit 1; }
hyperfine -N --warmup 5 --runs "${PSRUNS:-100}" --export-markdown "$here/results/engine-ps.md" --export-json "$here/results/engine-ps.json" \
	-n "berth ps -a (100 containers)" "$B ps -a" \
	-n "podman ps -a (100 containers)" "$PD ps -a"
"$B" rm -f $("$B" ps -aq) >/dev/null
$PD rm -f -t 0 -a >/dev/null

# 3. Memory of an idle container: everything beside the container's own
# processes, with N idle containers of each (N=10 by default). Kernel
# figures from /proc: RSS counts shared pages (the binary's text) in full
# for every process, PSS splits them among the processes sharing them, so
# PSS total / N is what one more container costs.
n=${MEMN:-10}
for i in $(seq "$n"); do
	"$B" run -d --network none localhost/busybox sleep 1000 >/dev/null
	$PD run -d $PDRUN --runtime runc localhost/busybox sleep 1000 >/dev/null
done
sleep 2
sum() { # FIELD FILE PID... -> the field summed over the processes
	local f=$1 file=$2 t=0 v; shift 2
	for p in "$@"; do v=$(awk -v f="$f" '$1==f":"{print $2}' /proc/$p/$file); t=$((t + v)); done
	echo $t
}
bmon=$(pgrep -f "berth-monitor $work/br/containers/")
# Anything else of berth's or a runtime's still running besides the
# monitors and the containers (there should be nothing).
bleft=$(pgrep -f "berth-runtime --root $work|runc --root $work|$B run" || true)
conmon=$(pgrep -f "conmon .*$work/p" || true)
[ "$(echo $bmon | wc -w)" = "$n" ] || { echo "expected $n berth monitors, found: $bmon" >&2; exit 1; }
[ "$(echo $conmon | wc -w)" = "$n" ] || { echo "expected $n conmons, found: $conmon" >&2; exit 1; }
{
	echo "| $n idle containers | processes per container | RSS each | PSS per container | private anon per container |"
	echo "|---|---|---|---|---|"
	echo "| berth | berth-monitor${bleft:+ + $(echo $bleft | wc -w) other} | $(( $(sum VmRSS status $bmon $bleft) / n )) KB | $(( $(sum Pss smaps_rollup $bmon $bleft) / n )) KB | $(( $(sum RssAnon status $bmon $bleft) / n )) KB |"
	echo "| podman | conmon | $(( $(sum VmRSS status $conmon) / n )) KB | $(( $(sum Pss smaps_rollup $conmon) / n )) KB | $(( $(sum RssAnon status $conmon) / n )) KB |"
} | tee "$here/results/engine-mem.md"
"$B" rm -f $("$B" ps -aq) >/dev/null
$PD rm -f -t 0 -a >/dev/null
