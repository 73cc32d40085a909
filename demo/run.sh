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
say "the runtime part is done: no container, cgroup or mount left behind"

# ---- images: the local store ------------------------------------------
B="$BIN/berth --root $work/store --runroot $work/run"
cleanup_images() { $B image unmount --all >/dev/null 2>&1 || true; }
trap 'cleanup_images; cleanup' EXIT
cd "$work"

say "an image from a root file system tarball (berth import, with --change)"
tar -C "$work/bundle/rootfs" -cf rootfs.tar .
$B import -c 'CMD ["/bin/sh"]' -c 'ENV APP=demo' -m "busybox, from the demo" rootfs.tar demo/busybox:1
$B images

say "an application image on top of it: the base layer is stored once"
mkdir -p app/srv && echo "hello from the app layer" > app/srv/hello
tar -C app -cf app.tar .
$B save -o base.tar demo/busybox:1
# A two-layer image: the base's layer plus the app's, as docker save writes it.
python3 - "$work" <<'PY'
import hashlib, io, json, sys, tarfile, time
work = sys.argv[1]
base = tarfile.open(work + "/base.tar")
manifest = json.load(base.extractfile("manifest.json"))[0]
config = json.load(base.extractfile(manifest["Config"]))
base_layer = base.extractfile(manifest["Layers"][0]).read()
app_layer = open(work + "/app.tar", "rb").read()
d = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
config["rootfs"]["diff_ids"].append(d(app_layer))
config["history"].append({"created": config["created"], "created_by": "ADD app.tar /"})
config["config"]["Cmd"] = ["cat", "/srv/hello"]
cfg = json.dumps(config).encode()
out = tarfile.open(work + "/app-image.tar", "w")
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = int(time.time()); out.addfile(ti, io.BytesIO(data))
add("base.tar", base_layer); add("app.tar", app_layer); add("config.json", cfg)
add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["demo/app:1"], "Layers": ["base.tar", "app.tar"]}]).encode())
out.close()
PY
$B load -i app-image.tar
$B images
$B history demo/app:1
$B system df -v

say "mounted read-only, as podman image mount does"
mnt=$($B image mount demo/app:1)
echo "$mnt:"; ls "$mnt"; cat "$mnt/srv/hello"
$B image unmount demo/app:1 >/dev/null

say "save both as an OCI archive, load them into a second store: same IDs"
$B save --format oci-archive -o both.tar demo/busybox:1 demo/app:1
B2="$BIN/berth --root $work/store2 --runroot $work/run2"
$B2 load -i both.tar
diff <($B images -q --no-trunc | sort) <($B2 images -q --no-trunc | sort) && echo "the same image IDs in both stores"

say "a hostile layer cannot write outside the image"
python3 - "$work" <<'PY'
import io, json, hashlib, sys, tarfile
work = sys.argv[1]
layer = io.BytesIO(); t = tarfile.open(fileobj=layer, mode="w")
for name, kind, target in [("escape", tarfile.SYMTYPE, "/tmp"), ("escape/berth-demo-pwned", tarfile.REGTYPE, None), ("../../../tmp/berth-demo-pwned2", tarfile.REGTYPE, None)]:
    ti = tarfile.TarInfo(name); ti.type = kind
    if target: ti.linkname = target
    t.addfile(ti, io.BytesIO(b""))
t.close(); lb = layer.getvalue()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(lb).hexdigest()]}}).encode()
out = tarfile.open(work + "/hostile.tar", "w")
for name, data in [("layer.tar", lb), ("config.json", cfg), ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["demo/hostile:1"], "Layers": ["layer.tar"]}]).encode())]:
    ti = tarfile.TarInfo(name); ti.size = len(data); out.addfile(ti, io.BytesIO(data))
out.close()
PY
$B load -i hostile.tar
mnt=$($B image mount demo/hostile:1)
ls -la "$mnt" "$mnt/tmp" 2>/dev/null | sed 's/^/  /'
$B image unmount demo/hostile:1 >/dev/null
if [ -e /tmp/berth-demo-pwned ] || [ -e /tmp/berth-demo-pwned2 ]; then echo "ESCAPED" >&2; exit 1; fi
echo "nothing reached the host's /tmp: both files landed inside the image"

# ---- containers: berth run and friends ---------------------------------
cleanup_containers() { $B rm -f $($B ps -aq 2>/dev/null) >/dev/null 2>&1 || true; }
trap 'cleanup_containers; cleanup_images; cleanup' EXIT

say "berth run: the container's output and its own exit code"
$B run --rm demo/busybox:1 echo "hello from a container"
set +e
$B run --rm demo/busybox:1 sh -c 'exit 3'; echo "exit code: $?"
$B run --rm demo/busybox:1 no-such-command; echo "exit code: $? (127: not found)"
$B run --rm demo/busybox:1 /etc/passwd; echo "exit code: $? (126: not executable)"
set -e

say "a service: a named volume for its data, its configuration bind-mounted from the host"
mkdir -p "$work/conf" && echo "greeting=hello" > "$work/conf/app.conf"
$B volume create appdata >/dev/null
$B run -d --name svc -v appdata:/data -v "$work/conf/app.conf:/etc/app.conf:ro" --memory 64m --pids-limit 64 \
	demo/busybox:1 sh -c 'echo "started with $(cat /etc/app.conf)"; i=0; while true; do i=$((i+1)); echo "tick $i" >> /data/ticks; sleep 0.2; done' >/dev/null
sleep 0.5
$B ps
$B logs svc
echo "greeting=edited on the host" > "$work/conf/app.conf"
echo "after editing the file on the host, the container reads: $($B exec svc cat /etc/app.conf)"
$B exec svc sh -c 'echo "inside: hostname $(hostname), pid 1 is $(cat /proc/1/comm), $(wc -l < /data/ticks) ticks so far"'
$B top svc
$B stats --no-stream svc

say "stop (SIGTERM, then SIGKILL after the timeout), remove: the volume's data stays"
$B stop -t 1 svc
$B ps -a --format '{{.Names}}: {{.Status}}'
$B rm svc
$B run --rm -v appdata:/data demo/busybox:1 sh -c 'echo "a new container sees $(wc -l < /data/ticks) ticks in the volume"'
$B volume ls

say "cp, diff and commit: a change to a container becomes an image that runs with it"
$B run -d --name work demo/busybox:1 sleep 600 >/dev/null
echo "made on the host" > "$work/note.txt"
$B cp "$work/note.txt" work:/tmp/note.txt
$B exec work sh -c 'echo "made inside" > /tmp/inside.txt'
$B cp work:/tmp/inside.txt "$work/inside.txt" && echo "copied out: $(cat "$work/inside.txt")"
$B diff work
$B commit -m "add notes" -c 'CMD ["cat", "/tmp/note.txt", "/tmp/inside.txt"]' work demo/notes:1
$B rm -f work >/dev/null
$B run --rm demo/notes:1

say "--rm leaves nothing: no record, no mount, no snapshot"
before=$(grep -c "$work" /proc/self/mountinfo || true)
$B run --rm demo/busybox:1 true
$B ps -aq | wc -l | sed 's/^/containers left: /'
echo "mounts under the demo's directories: $before before and $(grep -c "$work" /proc/self/mountinfo || true) after"

# ---- registries: serve, push, pull, copy ------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$B registry serve --addr "127.0.0.1:$port" --no-access-log 2>"$work/registry.log" &
regpid=$!
trap 'kill $regpid 2>/dev/null || true; cleanup_containers; cleanup_images; cleanup' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done

say "a registry of our own (berth registry serve), and a push to it"
$B tag demo/notes:1 "127.0.0.1:$port/demo/notes:1"
$B push "127.0.0.1:$port/demo/notes:1"

say "pulled into an empty store, it runs there"
B3="$BIN/berth --root $work/store3 --runroot $work/run3"
$B3 pull "127.0.0.1:$port/demo/notes:1"
$B3 run --rm "127.0.0.1:$port/demo/notes:1"

say "copied to an OCI layout: the same manifest digest"
$B image copy -q "docker://127.0.0.1:$port/demo/notes:1" "oci:$work/layout:1"
echo "pulled:       $($B3 images --digests --format '{{.Digest}}' 127.0.0.1:$port/demo/notes)"
echo "layout index: $(python3 -c "import json; print(json.load(open('$work/layout/index.json'))['manifests'][0]['digest'])")"
say "chain of custody: three teams, three keys"
export BERTH_PASSWORD=demo-password
keys="$work/keys"; mkdir -p "$keys"
for t in platform middleware app; do $B key generate "$keys/$t" | tail -1 | sed "s/^/$t: /"; done
accept="$work/accept.json"; echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$accept"
R="127.0.0.1:$port"
team() { local t=$1; shift; $BIN/berth --root "$work/team-$t" --runroot "$work/team-$t-run" --signature-policy "$accept" --custody-policy "$work/team-$t.json" "$@"; }

say "platform: a busybox base, its custody record, signed on push"
team platform load -i "$work/base.tar" >/dev/null
team platform tag demo/busybox:1 "$R/platform/base:1"
team platform custody sign --key "$keys/platform.key" --team platform "$R/platform/base:1"
team platform push -q --sign-by "$keys/platform.key" "$R/platform/base:1"

say "middleware: berth build FROM the platform base (pulled and verified first), a custody record for its layer"
team middleware trust set "$R/platform" --team "platform=$keys/platform.pub"
mkdir -p "$work/mw"
cat > "$work/mw/Dockerfile" <<EOF
FROM $R/platform/base:1
RUN echo "runtime 1.0" > /runtime.txt
EOF
team middleware build -t "$R/middleware/rt:1" --team middleware --sign-key "$keys/middleware.key" "$work/mw"
team middleware push -q --sign-by "$keys/middleware.key" "$R/middleware/rt:1"

say "app: a multi-stage build on top of middleware; a rebuild runs nothing"
team app trust set "$R/middleware" --team "platform=$keys/platform.pub" --team "middleware=$keys/middleware.pub"
mkdir -p "$work/app"
echo "hello from the app team" > "$work/app/greeting.txt"
cat > "$work/app/Dockerfile" <<EOF
FROM $R/middleware/rt:1 AS build
COPY greeting.txt /src/
RUN tr a-z A-Z < /src/greeting.txt > /shout.txt
FROM $R/middleware/rt:1
COPY greeting.txt /app.txt
COPY --from=build /shout.txt /shout.txt
CMD ["cat", "/runtime.txt", "/app.txt", "/shout.txt"]
EOF
team app build -t "$R/app/web:1" --team app --sign-key "$keys/app.key" "$work/app"
team app build --progress plain -t "$R/app/web:1" "$work/app" 2>&1 | tail -2
team app push -q --sign-by "$keys/app.key" "$R/app/web:1"

say "the user requires platform → middleware → app for $R/app, and runs it"
team user trust set "$R/app" --team "platform=$keys/platform.pub" --team "middleware=$keys/middleware.pub" --team "app=$keys/app.pub"
team user pull -q "$R/app/web:1"
team user run --rm "$R/app/web:1"
team user verify --custody "$R/app/web:1"

say "an unsigned layer on top is refused at pull: nothing is stored"
team app run --name extra "$R/app/web:1" sh -c 'echo sneaky > /extra.txt'
team app commit extra "$R/app/web:2" >/dev/null
team app push -q "$R/app/web:2"
team user pull -q "$R/app/web:2" || true
# The teams' containers and mounts go with the demo.
for t in platform middleware app user; do
	team "$t" rm -f $(team "$t" ps -aq) >/dev/null 2>&1 || true
	team "$t" image unmount --all >/dev/null 2>&1 || true
done
kill -INT $regpid; wait $regpid 2>/dev/null || true

say "system check: every blob re-hashed, every layer chain walked"
$B system check
say "done"
