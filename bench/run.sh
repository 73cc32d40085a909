#!/usr/bin/env bash
# bench/run.sh BIN_DIR: `run` of `true` on a busybox bundle, berth-runtime
# side by side with runc and crun in ONE hyperfine run, inside one private
# mount namespace where the hybrid cgroup2 mount is hidden (Debian's crun
# refuses hybrid cgroups; see ../shared/MACHINE.md), so every runtime sees
# the same conditions. Prints hyperfine's table and writes
# bench/results/run-true.{md,json}. Not a test: timings are noisy, compare
# the ratios of one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../bin}
RT=$(cd "$BIN" && pwd)/berth-runtime
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
need=()
for p in runc crun hyperfine busybox-static; do dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' || need+=($p); done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
b=$work/bundle
mkdir -p "$b/rootfs"/{bin,proc,sys,dev,etc,tmp}
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$b/rootfs/bin/$a"; done
# One config for all three: runc's default spec, no terminal, `true`.
(cd "$b" && runc spec && sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"/"true"/' config.json)
mkdir -p "$here/results"
runs=${RUNS:-200}
unshare -m --propagation private sh -c '
	e=$(mktemp); mount --bind "$e" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || umount -l /sys/fs/cgroup/unified
	cd "$0"
	exec hyperfine -N --warmup 10 --runs "$1" --export-markdown "$2.md" --export-json "$2.json" \
		-n berth-runtime "$3 --root $4/berth run bench-berth" \
		-n runc "runc --root $4/runc run bench-runc" \
		-n crun "crun --root $4/crun run bench-crun"
' "$b" "$runs" "$here/results/run-true" "$RT" "$work"
# No runtime process may linger after run -d returns.
"$RT" --root "$work/berth" run -d --bundle "$b" bench-detach >/dev/null
left=$(pgrep -f "berth-runtime --root $work/berth" || true)
"$RT" --root "$work/berth" delete -f bench-detach >/dev/null 2>&1 || true
echo "berth-runtime processes left after run -d: ${left:-none}"
