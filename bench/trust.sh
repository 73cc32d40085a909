#!/usr/bin/env bash
# bench/trust.sh BIN_DIR: what trust costs, with a registry on 127.0.0.1.
#  1. verification of a 3-team, 20-layer image (platform 8 layers,
#     middleware 6, app 6): berth verify --custody on the stored image
#     (records local: nothing fetched), against berth images (the same CLI
#     start and store open, no verification), so the difference is the
#     verification; and the library's own figure (go test -bench).
#  2. signing on push: berth push --sign-by against berth push of the same
#     image to fresh tags, and berth sign alone (which is mostly the key's
#     scrypt, fixed by the key format).
#  3. the peer: upstream containers/image (what skopeo runs; Debian's skopeo
#     is built without sigstore, ../shared/MACHINE.md), as the small program
#     test/interop/cimage: a copy registry → registry signed with the same
#     key against the same copy unsigned.
# One hyperfine run each; writes bench/results/trust-*.{md,json}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../bin}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run the benchmark as root" >&2; exit 1; }
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
work=$(mktemp -d /tmp/btrust.XXXXXX)
regpid=
cleanup() {
	[ -n "$regpid" ] && kill "$regpid" 2>/dev/null || true
	for t in platform middleware app user; do "$BIN/berth" --root "$work/$t" --runroot "$work/$t-run" rm -f $("$BIN/berth" --root "$work/$t" --runroot "$work/$t-run" ps -aq) >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
out="$here/results"; mkdir -p "$out"
export BERTH_PASSWORD=bench
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$work/accept.json"
export BERTH_SIGNATURE_POLICY="$work/accept.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
R=127.0.0.1:$port
"$BIN/berth" --root "$work/reg" registry serve --addr "$R" --no-access-log 2>/dev/null &
regpid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://$R/v2/" && break; sleep 0.1; done
team() { local t=$1; shift; "$BIN/berth" --root "$work/$t" --runroot "$work/$t-run" --custody-policy "$work/$t.json" "$@"; }
for t in platform middleware app; do "$BIN/berth" key generate "$work/$t" >/dev/null; done

mkdir -p "$work/rootfs/bin"; cp /bin/busybox "$work/rootfs/bin/"; ln -s busybox "$work/rootfs/bin/sh"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
# addlayers TEAM FROM TO N: N layers of 64 KiB on FROM, committed as TO.
addlayers() {
	local t=$1 from=$2 to=$3 n=$4 cur=$2
	for i in $(seq "$n"); do
		team "$t" run --name "l$i" "$cur" sh -c "head -c 65536 /dev/urandom > /f-$t-$i" >/dev/null
		team "$t" commit "l$i" "$to-$i" >/dev/null
		team "$t" rm "l$i" >/dev/null
		cur="$to-$i"
	done
	team "$t" tag "$cur" "$to"
}
team platform import "$work/rootfs.tar" "$R/platform/base:0" >/dev/null
addlayers platform "$R/platform/base:0" "$R/platform/base:1" 7
team platform custody sign --key "$work/platform.key" --team platform "$R/platform/base:1" >/dev/null
team platform push -q "$R/platform/base:1"
team middleware trust set "$R/platform" --team "platform=$work/platform.pub" >/dev/null
team middleware pull -q "$R/platform/base:1" >/dev/null
addlayers middleware "$R/platform/base:1" "$R/middleware/rt:1" 6
team middleware custody sign --key "$work/middleware.key" --team middleware --base "$R/platform/base:1" "$R/middleware/rt:1" >/dev/null
team middleware push -q "$R/middleware/rt:1"
team app trust set "$R/middleware" --team "platform=$work/platform.pub" --team "middleware=$work/middleware.pub" >/dev/null
team app pull -q "$R/middleware/rt:1" >/dev/null
addlayers app "$R/middleware/rt:1" "$R/app/web:1" 6
team app custody sign --key "$work/app.key" --team app --base "$R/middleware/rt:1" "$R/app/web:1" >/dev/null
team app push -q "$R/app/web:1"
team user trust set "$R/app" --team "platform=$work/platform.pub" --team "middleware=$work/middleware.pub" --team "app=$work/app.pub" >/dev/null
team user pull -q "$R/app/web:1" >/dev/null
team user verify --custody "$R/app/web:1" > "$work/verify.txt"; sed -n 3p "$work/verify.txt"; grep -c " yes$" "$work/verify.txt" | sed "s/$/ layers verified/"
U="$BIN/berth --root $work/user --runroot $work/user-run --custody-policy $work/user.json"
hyperfine -N -w 3 -r 30 --export-markdown "$out/trust-verify.md" --export-json "$out/trust-verify.json" \
	-n 'berth verify --custody (20 layers, 3 teams)' "$U verify --custody $R/app/web:1" \
	-n 'berth images (no verification)' "$U images $R/app/web:1"

A="$BIN/berth --root $work/app --runroot $work/app-run --custody-policy $work/app.json"
i=0
hyperfine -N -w 1 -r 10 --export-markdown "$out/trust-push.md" --export-json "$out/trust-push.json" \
	-n 'berth push' --prepare "true" "$A push -q $R/app/web:1 $R/bench/plain:1" \
	-n 'berth push --sign-by' "$A push -q --sign-by $work/app.key $R/app/web:1 $R/bench/signed:1" \
	-n 'berth sign (key decrypt + sign)' "$A sign --key $work/app.key $R/app/web:1"
( cd "$here/../test/interop/cimage" && CGO_ENABLED=0 go build -tags 'containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_storage_stub' -o "$work/cimage" . )
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$work/cpolicy.json"
mkdir -p "$work/regd"
hyperfine -N -w 1 -r 10 --export-markdown "$out/trust-peer.md" --export-json "$out/trust-peer.json" \
	-n 'containers/image copy' "$work/cimage copy $work/cpolicy.json $work/regd docker://$R/app/web:1 docker://$R/bench/cimage-plain:1" \
	-n 'containers/image copy, sigstore-signed' "$work/cimage sign $work/app.key bench docker://$R/app/web:1 docker://$R/bench/cimage-signed:1"
( cd "$here/.." && go test -run XXX -bench . -benchtime 50x ./trust/ ) | grep Benchmark | tee "$out/trust-go-bench.txt"
