#!/usr/bin/env bash
# test/interop/cosign.sh [BIN_DIR]: cosign verify --key accepts what berth
# signs, and refuses it under another key. cosign is built from the module
# proxy (about 8 minutes the first time; COSIGN=path skips that), so this
# is a script run by hand, not part of make test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:-$here/../../bin}" && pwd)
work=$(mktemp -d /tmp/bcosign.XXXXXX)
regpid=
trap '[ -n "$regpid" ] && kill $regpid 2>/dev/null; rm -rf "$work"' EXIT
COSIGN=${COSIGN:-}
if [ -z "$COSIGN" ]; then
	GOBIN="$work/gobin" go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
	COSIGN="$work/gobin/cosign"
fi
export BERTH_PASSWORD=interop
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$work/accept.json"
B="$BIN/berth --root $work/root --runroot $work/run --signature-policy $work/accept.json --custody-policy $work/custody.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$B registry serve --addr "127.0.0.1:$port" --storage "$work/reg" --no-access-log 2>"$work/registry.log" &
regpid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
$B key generate "$work/team" >/dev/null
$B key generate "$work/other" >/dev/null
mkdir -p "$work/rootfs/bin" && cp /bin/busybox "$work/rootfs/bin/" && tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
ref="127.0.0.1:$port/cosign/app:1"
$B import "$work/rootfs.tar" "$ref" >/dev/null
sleep 0.2; $B push -q --sign-by "$work/team.key" "$ref"
pass=0 fail=0
if "$COSIGN" verify --key "$work/team.pub" --insecure-ignore-tlog=true --allow-insecure-registry "$ref" >/dev/null 2>&1; then
	echo "ok: cosign verify accepts berth's signature"; pass=$((pass+1))
else
	echo "FAIL: cosign verify refuses berth's signature"; fail=$((fail+1))
fi
if "$COSIGN" verify --key "$work/other.pub" --insecure-ignore-tlog=true --allow-insecure-registry "$ref" >/dev/null 2>&1; then
	echo "FAIL: cosign verify accepts it under another key"; fail=$((fail+1))
else
	echo "ok: cosign verify refuses it under another key"; pass=$((pass+1))
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
