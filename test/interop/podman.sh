#!/usr/bin/env bash
# test/interop/podman.sh [BIN_DIR]: podman drives berth-runtime through the
# acceptance story of issue 3: run --rm with id and capabilities, run -d,
# exec, stop, pause/unpause, stats, a memory limit that kills, rm. The -it
# case runs under tmux (a real terminal). Needs root, podman and the
# localhost/busybox image from ../shared/bench/mkimages.sh.
set -euo pipefail
BIN=${1:-$(cd "$(dirname "$0")/../.." && pwd)/bin}
RT=$(cd "$BIN" && pwd)/berth-runtime
# This machine's limits (../shared/MACHINE.md): no CAP_SYS_RESOURCE, nofile hard 20000.
P=(podman --runtime "$RT" --cgroup-manager cgroupfs)
U=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
img=localhost/busybox:latest
pass=0; fail=0
check() { # check NAME CMD...: run, report
	local name=$1; shift
	if out=$("$@" 2>&1); then echo "ok   $name"; pass=$((pass+1)); else echo "FAIL $name: $out"; fail=$((fail+1)); fi
	printf '%s\n' "$out" | sed 's/^/     | /' | head -8
}
"${P[@]}" rm -f -a >/dev/null 2>&1 || true

check "run --rm id" "${P[@]}" run --rm "${U[@]}" $img id
check "run --rm capabilities" "${P[@]}" run --rm "${U[@]}" $img sh -c 'grep Cap /proc/self/status'
check "run -d" "${P[@]}" run -d --name bb "${U[@]}" $img sleep 600
check "exec" "${P[@]}" exec bb sh -c 'echo exec in $(hostname), pid1=$(cat /proc/1/comm)'
check "pause" "${P[@]}" pause bb
check "paused state" sh -c "${P[*]} inspect -f '{{.State.Status}}' bb | grep -x paused"
check "unpause" "${P[@]}" unpause bb
check "stats" "${P[@]}" stats --no-stream bb
check "stop" "${P[@]}" stop -t 2 bb
check "rm" "${P[@]}" rm bb
check "memory 64m kills an allocation past it" sh -c "! ${P[*]} run --rm ${U[*]} --memory 64m --memory-swap 64m $img sh -c 'dd if=/dev/zero of=/dev/null bs=128M count=1 && echo survived' | grep -q survived"
if command -v tmux >/dev/null; then
	tmux kill-session -t berth-it 2>/dev/null || true
	tmux new-session -d -s berth-it -x 120 -y 30 "${P[*]} run -it --rm ${U[*]} $img sh"
	sleep 3
	tmux send-keys -t berth-it 'tty; echo cols=$(stty size)' Enter
	sleep 1
	screen=$(tmux capture-pane -p -t berth-it)
	tmux send-keys -t berth-it 'exit' Enter
	sleep 1
	tmux kill-session -t berth-it 2>/dev/null || true
	check "run -it (tmux)" sh -c "printf '%s' \"\$1\" | grep -q '/dev/pts/0' && printf '%s' \"\$1\" | grep 'cols=30 120'" _ "$screen"
fi
echo "$pass passed, $fail failed"
