#!/usr/bin/env bash
# Set up the course server on a fresh Debian/Ubuntu machine, as root, and start the hub.
# Idempotent: running it again updates the packages and leaves data alone.
#
#   deploy/install.sh                 set up everything, then start the hub
#   deploy/install.sh --no-start      set up everything, start nothing
#   deploy/install.sh --test-tools    also install what the test suite needs
set -euo pipefail

PREFIX=${COURSE_PREFIX:-/opt/dlcourse}
VENV="$PREFIX/venv"
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

start_hub=1
test_tools=0
for arg in "$@"; do
    case "$arg" in
        --no-start) start_hub=0 ;;
        --test-tools) test_tools=1 ;;
        *) echo "install.sh: unknown option '$arg' (known: --no-start, --test-tools)" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (it creates accounts, a system service and /opt, /var/lib folders)" >&2
    exit 1
fi

log() { printf '==> %s\n' "$*"; }

apt_packages=(python3-venv git dataset-fashion-mnist)
if [ "$test_tools" -eq 1 ]; then
    apt_packages+=(chromium chromium-driver shellcheck octave)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The system interpreter, not whatever python3 is first on PATH: spawned students
# must be able to execute the virtualenv's interpreter.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating the virtualenv $VENV"
    install -d -m 0755 "$PREFIX"
    /usr/bin/python3 -m venv "$VENV"
fi
log "installing the course's Python packages"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO_DIR/requirements.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$REPO_DIR"
if [ "$test_tools" -eq 1 ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO_DIR/requirements-dev.txt"
fi
chmod -R a+rX "$PREFIX"

if [ "$start_hub" -eq 1 ]; then
    log "starting the course notebook server on port 8788"
    exec "$VENV/bin/jupyter" notebook --allow-root --no-browser --ip=0.0.0.0 --port=8788 \
        --notebook-dir="$REPO_DIR/notebooks"
fi
log "set up; nothing started (--no-start)"
