#!/usr/bin/env bash
# Check the README's two commands on a bare Debian 12, without Docker (run as root on a Debian
# or Ubuntu host with network access to a Debian mirror, PyPI and npm):
#
#   1. debootstrap --variant=minbase bookworm into ROOT (the smallest Debian there is: no python3,
#      no node, no CA certificates);
#   2. git clone this checkout's HEAD into ROOT/comet_py;
#   3. in a chroot: `bash scripts/demo.sh` in the background, then check that the demo serves
#      /, /demo/chat/ and /vendor/pyodide/pyodide.mjs;
#   4. stop the demo and run `bash scripts/test.sh tests/unit` (TESTS=... to run more).
#
# Mounts (/proc, /sys, /dev, /dev/pts, /dev/shm) are made in a private mount namespace
# (unshare -m), so they disappear when the script ends, even if it fails half-way; they are
# also unmounted explicitly. Every step prints how long it took.
#
#   usage: bash scripts/bare-debian-check.sh [ROOT]     (default /var/tmp/comet-bare-bookworm)
#   env:   MIRROR (default: the first Debian mirror in /etc/apt/sources.list*),
#          FRESH=1 (delete ROOT and debootstrap again), PORT / QL_PORT (default: free random ports;
#          the chroot shares the host's network, so a port in use would answer for the demo),
#          TESTS (default tests/unit), CA_DIR (extra CA certificates to trust inside ROOT;
#          default /usr/local/share/ca-certificates, for networks that intercept TLS).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-/var/tmp/comet-bare-bookworm}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {  # a random port nothing on this host listens on
  local p
  while :; do p=$(( 20000 + RANDOM % 40000 )); port_busy "$p" || { echo "$p"; return; }; done
}
PORT=${PORT:-$(free_port)}
QL_PORT=${QL_PORT:-$(free_port)}
TESTS=${TESTS:-tests/unit}
CA_DIR=${CA_DIR:-/usr/local/share/ca-certificates}
if [ -z "${MIRROR:-}" ]; then
  # one-line (deb URL ...) and deb822 (URIs: URL) formats; comments skipped
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
           | grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -oE 'https?://[^ ]+/debian/?( |$)' \
           | head -n1 | tr -d ' ' || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
for p in "$PORT" "$QL_PORT"; do
  if port_busy "$p"; then echo "port $p is already in use on this host" >&2; exit 2; fi
done
case "$ROOT" in "$REPO"|"$REPO"/*) echo "ROOT must be outside the repository" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and chroot need it)" >&2; exit 2; }

t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

command -v debootstrap >/dev/null || { step "apt-get install debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }
[ "${FRESH:-0}" = 1 ] && rm -rf "$ROOT"
if [ ! -x "$ROOT/bin/bash" ]; then
  step "debootstrap --variant=minbase bookworm $ROOT $MIRROR"
  debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
    || { tail -n 20 "$ROOT.debootstrap.log"; exit 1; }
fi
step "bare root ready: $(du -sh "$ROOT" | cut -f1); python3: $(chroot "$ROOT" sh -c 'command -v python3 || echo none'), npm: $(chroot "$ROOT" sh -c 'command -v npm || echo none')"

step "git clone $REPO (HEAD $(git -C "$REPO" rev-parse --short HEAD)) into $ROOT/comet_py"
rm -rf "$ROOT/comet_py"
git clone -q --no-hardlinks "$REPO" "$ROOT/comet_py"
git -C "$ROOT/comet_py" checkout -q "$(git -C "$REPO" rev-parse HEAD)"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if compgen -G "$CA_DIR/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp "$CA_DIR"/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi

# Everything below runs in its own mount namespace; the mounts never reach the host's tree.
export ROOT PORT QL_PORT TESTS t0
unshare --mount --propagation private bash -euo pipefail -c '
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"
in_root() { chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
              PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "cd /comet_py && $1"; }
cleanup() {
  if [ -n "${demo_pid:-}" ]; then kill -TERM -- "-$demo_pid" 2>/dev/null; wait "$demo_pid" 2>/dev/null; fi
  umount "$ROOT/dev/shm" "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2>/dev/null || true
}
trap cleanup EXIT

step "chroot: bash scripts/demo.sh --port $PORT --cometql-port $QL_PORT (log: $ROOT/demo.log)"
# its own process group (setsid), so that stopping it also stops a set-up still running
setsid chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c "cd /comet_py && exec bash scripts/demo.sh --port $PORT --cometql-port $QL_PORT" >"$ROOT/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 1800); do   # set-up downloads a few hundred MB: allow up to 30 minutes
  kill -0 "$demo_pid" 2>/dev/null || { tail -n 40 "$ROOT/demo.log"; echo "demo.sh exited" >&2; exit 1; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 1
done
step "demo serving on 127.0.0.1:$PORT (the port was free before, and the demo is still running)"
for path in / /demo/chat/ /vendor/pyodide/pyodide.mjs; do
  inside=$(in_root "curl -s -o /dev/null -w %{http_code} http://127.0.0.1:$PORT$path")
  host=$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$PORT$path" 2>/dev/null || echo "no curl")
  echo "   GET $path -> $inside (curl in the chroot), $host (curl on the host)"
  [ "$inside" = 200 ] || { echo "expected 200" >&2; exit 1; }
done
kill -TERM -- "-$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=

step "chroot: bash scripts/test.sh $TESTS -q"
in_root "bash scripts/test.sh $TESTS -q"
step "done"
'
step "all checks passed; mounts are gone: $(grep -c " $ROOT/" /proc/mounts || true) left"
