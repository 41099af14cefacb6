#!/bin/sh
# Idempotent set-up for a fresh Debian/Ubuntu machine (run as root):
# system packages, a virtualenv with pyrunc installed as users get it
# (a regular, byte-compiled install), and the busybox bundle's rootfs.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="busybox-static libcap-dev gcc python3-dev python3-venv iproute2 util-linux time uidmap runc crun
    containerd podman docker.io criu"
missing=""
for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq $missing >/dev/null
fi

# The system interpreter: unlike a per-user one (e.g. pyenv under /root), an
# unprivileged user can run it too, which rootless containers need.
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Regular install (not editable): pip byte-compiles it, so every call is fast.
.venv/bin/python -m pip install -q --no-warn-script-location ".[test]" 2>&1 \
    | grep -v -e "^WARNING: Location" -e "is neither a file nor a directory" >&2 || true
.venv/bin/python -c "import pyrunc, jsonschema, prctl, pyroute2" \
    || { echo "setup: the Python dependencies did not install" >&2; exit 1; }
# Each command's modules in one file (pyrunc.image): ~1 ms off every create.
# And the console script: pip's imports `re` and runs `site`, ~9 ms on every
# pyrunc call; this one starts the interpreter with -I -S, puts the
# virtualenv's site-packages on sys.path itself and runs pyrunc's first
# modules from their image too (pyrunc.image_build.LAUNCHER).
# -I: the installed pyrunc, not this checkout's.
.venv/bin/python -I -m pyrunc.image_build --launcher "$(pwd)/.venv/bin/pyrunc" >/dev/null
bundles/build-rootfs.sh >/dev/null
