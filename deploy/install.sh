#!/usr/bin/env bash
# Set up the course server on a fresh Debian/Ubuntu machine, as root, and start the hub.
# Idempotent: running it again updates the packages and leaves data alone (the course
# repository, the state folder and the site settings).
#
#   deploy/install.sh                 set up everything, then start the hub
#   deploy/install.sh --no-start      set up everything, start nothing
#   deploy/install.sh --test-tools    also install what the test suite needs
#
# Every path comes from course_hub/paths.py (read below); the hub's code, configuration and
# commands are the project's package, installed into the virtualenv with pip.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROXY_VERSION=5.3.0

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
# Node for configurable-http-proxy: only when the machine has none (this one has Node 20).
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
if [ "$test_tools" -eq 1 ]; then
    # systemd: systemd-analyze, to verify the unit even where systemd does not run.
    apt_packages+=(chromium chromium-driver shellcheck octave systemd)
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

# ---- where everything goes: PREFIX, VENV, PROXY_DIR, SYSTEMD_RUNTIME, SYSTEMD_UNIT, RC_LOCAL, PROFILE_SCRIPT
# course_hub/paths.py names every path once; the system Python reads it from this checkout,
# since on a fresh machine no virtualenv exists yet.
path_assignments=$(cd "$REPO_DIR" && /usr/bin/python3 -m course_hub.paths)
eval "$path_assignments"

# The system interpreter, not whatever python3 is first on PATH: spawned students
# must be able to execute the virtualenv's interpreter.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating the virtualenv $VENV"
    install -d -m 0755 "$PREFIX"
    /usr/bin/python3 -m venv "$VENV"
fi
log "installing the course's Python packages, course_lib and course_hub (the hub, its commands)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO_DIR/requirements.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$REPO_DIR"
if [ "$test_tools" -eq 1 ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO_DIR/requirements-dev.txt"
fi
chmod -R a+rX "$PREFIX"
# Earlier versions copied the hub's modules and configuration into $PREFIX/etc and a launcher
# into $PREFIX/bin; the installed package (course-hub and its siblings) replaces both.
rm -rf "${PREFIX:?}/etc" "${PREFIX:?}/bin"

# ---- configurable-http-proxy, pinned, in a local prefix (not a global npm install) -----------
proxy_package="$PROXY_DIR/node_modules/configurable-http-proxy/package.json"
installed_proxy=""
# Under pipefail a missing file must not end the script: test for it first.
if [ -r "$proxy_package" ]; then
    installed_proxy=$(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$proxy_package" | head -n 1)
fi
if [ "$installed_proxy" != "$PROXY_VERSION" ]; then
    log "installing configurable-http-proxy@$PROXY_VERSION into $PROXY_DIR"
    install -d -m 0755 "$PROXY_DIR"
    npm install --prefix "$PROXY_DIR" --no-audit --no-fund --loglevel=error \
        "configurable-http-proxy@$PROXY_VERSION"
fi

# ---- the course's groups, the course repository (seeded once), its publish gate, git's trust ------
# Seeded from the checkout only while it has no commit: afterwards the instructors publish
# into it, and a re-install must not put the checkout's notebooks back over their fixes.
log "setting up the course's groups and repository, and the publish gate"
"$VENV/bin/course-repo" setup --seed "$REPO_DIR/notebooks"

# ---- users' terminals: the course virtualenv first on PATH in login shells -----------------------
# Jupyter's terminals run `bash -l`, whose /etc/profile resets PATH and then reads profile.d.
install -m 0644 "$REPO_DIR/deploy/profile.d/dlcourse.sh" "$PROFILE_SCRIPT"

# ---- start at boot: systemd where it runs, rc.local otherwise ----------------------------------
# Both start the virtualenv's course-hub, which knows the rest (course_hub/paths.py).
install -m 0644 "$REPO_DIR/deploy/systemd/jupyterhub.service" "$SYSTEMD_UNIT" 2>/dev/null || true
systemd_runs=0
[ -d "$SYSTEMD_RUNTIME" ] && systemd_runs=1
if [ "$systemd_runs" -eq 1 ]; then
    systemctl daemon-reload
    systemctl enable jupyterhub.service
else
    if [ ! -e "$RC_LOCAL" ] || grep -q "start the course hub in the background" "$RC_LOCAL"; then
        install -m 0755 "$REPO_DIR/deploy/rc.local" "$RC_LOCAL"
    else
        log "$RC_LOCAL exists and is not ours: add the lines of deploy/rc.local to it to start the hub at boot"
    fi
fi

if [ "$start_hub" -eq 0 ]; then
    log "set up; nothing started (--no-start)"
    exit 0
fi
if [ "$systemd_runs" -eq 1 ]; then
    log "starting the hub (systemd unit jupyterhub.service) on port 8788"
    systemctl restart jupyterhub.service
else
    log "starting the hub in the background (deploy/rc.local) on port 8788"
    sh "$RC_LOCAL"
fi
