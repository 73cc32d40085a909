#!/usr/bin/env bash
# The demo: a busybox bundle run by berth-runtime, looked at the way a user
# would look at isolation: its own hostname, PID 1, its own mounts, and a
# memory limit that kills an allocation past it.
set -euo pipefail
BIN=${1:-$(cd "$(dirname "$0")/.." && pwd)/bin}
RT=$BIN/berth-runtime
[ "$(id -u)" = 0 ] || { echo "the demo runs containers: run it as root (sudo make demo)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "needs /bin/busybox (make deps installs busybox-static)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
state=$work/state
cleanup() {
	for id in $("$RT" --root "$state" list -q 2>/dev/null); do "$RT" --root "$state" delete -f "$id" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a busybox bundle"
mkdir -p "$work/bundle/rootfs"/{bin,proc,sys,dev,etc,tmp,root}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/bundle/rootfs/etc/group"
cd "$work/bundle"
"$RT" spec
# Not a terminal here, a hostname of our own, a 32 MiB memory limit, no swap.
python3 - <<'PY' 2>/dev/null || sed -i 's/"terminal": true/"terminal": false/' config.json
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["hostname"] = "berth-demo"
c["process"]["args"] = ["sh", "-c", "true"]
c.setdefault("linux", {}).setdefault("resources", {})["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
json.dump(c, open("config.json", "w"), indent=1)
PY
echo "bundle: $work/bundle (config.json from 'berth-runtime spec')"

run() { # run ID ARGS...: run the bundle with other args
	local id=$1; shift
	python3 - "$@" <<'PY'
import json, sys
c = json.load(open("config.json"))
c["process"]["args"] = sys.argv[1:]
json.dump(c, open("config.json", "w"), indent=1)
PY
	"$RT" --root "$state" run "$id"
}

say "its own hostname (the host is $(hostname))"
run demo-hostname hostname

say "it is PID 1 in its own pid namespace"
run demo-pid sh -c 'echo "my pid: $$"; ps'

say "its own mounts (the host has $(wc -l < /proc/self/mountinfo) mounts)"
run demo-mounts cat /proc/self/mounts

say "capabilities: the default set, no more"
run demo-caps sh -c 'grep Cap /proc/self/status'

say "a 32 MiB memory limit: allocating 64 MiB is killed"
set +e
run demo-oom dd if=/dev/zero of=/dev/null bs=64M count=1
code=$?
set -e
if [ "$code" = 137 ]; then echo "killed by the kernel's OOM killer (exit $code), as it should be"; else echo "unexpected exit $code" >&2; exit 1; fi

say "detached: create, state, exec, kill, delete"
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["sleep", "600"]
json.dump(c, open("config.json", "w"), indent=1)
PY
"$RT" --root "$state" create demo-bg
"$RT" --root "$state" state demo-bg | grep -E '"(status|pid)"'
"$RT" --root "$state" start demo-bg
"$RT" --root "$state" list
"$RT" --root "$state" exec demo-bg sh -c 'echo "exec sees: $(hostname), pid 1 is $(cat /proc/1/comm)"'
"$RT" --root "$state" kill demo-bg KILL
sleep 0.2
"$RT" --root "$state" state demo-bg | grep '"status"'
"$RT" --root "$state" delete demo-bg
say "done: no container, cgroup or mount left behind"
