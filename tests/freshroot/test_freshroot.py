"""A fresh Debian 12 machine installs with the README's first command, and a student gets in.

Real everything: a minimal ``debootstrap`` root (no python3, no Node) given Debian's own Node 18
first, as a Debian 12 machine that has it; the committed tree; the README's command read from
the README; the hub it starts (real configurable-http-proxy, PAM against the root's own accounts), a student made by the
roster tool inside the root, the login form, a server spawned through the hub API. The hub listens
on free ports of this machine (the root shares its network), never on the machine's own hub's.
"""
import json
import os
import pathlib
import secrets
import shlex
import time

import pytest

from tests.freshroot import freshroot
from tests.hub import hubkit  # the login form, the hub API

APT_INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
#: Run by a Node with the proxy's node_modules as argument: every installed package whose declared
#: engines.node that Node does not satisfy, judged by npm's own semver (the wheel's npm carries it).
UNMET_ENGINES_JS = """
const fs = require("fs"), path = require("path");
const semver = require(path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm",
                                 "node_modules", "semver"));
const unmet = [];
(function walk(dir) {
  for (const name of fs.readdirSync(dir)) {
    const folder = path.join(dir, name);
    if (name.startsWith(".")) continue;
    if (name.startsWith("@")) { walk(folder); continue; }
    const pkg = JSON.parse(fs.readFileSync(path.join(folder, "package.json")));
    const wanted = (pkg.engines || {}).node;
    if (wanted && !semver.satisfies(process.version, wanted)) unmet.push(`${pkg.name}@${pkg.version}: ${wanted}`);
    if (fs.existsSync(path.join(folder, "node_modules"))) walk(path.join(folder, "node_modules"));
  }
})(process.argv[1]);
console.log(JSON.stringify(unmet));
"""
INSTALL_TIMEOUT = 1500  # about 3 minutes here; generous for a busy machine and a slow mirror
HUB_TIMEOUT = 180
SPAWN_TIMEOUT = 300  # the hub's own spawn timeout


def explain(root, install_log):
    """What a failure report needs: the end of the install log and of the hub's log."""
    return (f"\n---- install log ({install_log}), last lines ----\n{freshroot.tail(install_log)}"
            f"\n---- hub log ({freshroot.HUB_LOG} in the root), last lines ----\n"
            f"{freshroot.tail(root.path(freshroot.HUB_LOG))}")


# A bound for a slow mirror on a busy machine, above the install's own (pyproject's 900 s would
# stop the test first); the test takes about five minutes here with a cached base.
@pytest.mark.timeout(INSTALL_TIMEOUT + HUB_TIMEOUT + SPAWN_TIMEOUT + 600)
def test_readme_install_on_a_fresh_machine_serves_a_student(fresh_root):
    root = fresh_root
    whole = time.monotonic()
    ports = freshroot.HubPorts()
    install_log = root.run_dir / "install.log"
    command = root.readme_command("install-command")
    assert command == "bash deploy/install.sh", f"the README's first command changed: {command!r}"
    assert not (root.path("/usr/bin/python3").exists() or root.path("/usr/bin/node").exists()), (
        "the base root is not a fresh minimal Debian: it has python3 or node already")
    try:
        # A Debian 12 machine that brings its own Node: Debian's 18, older than the proxy supports.
        started = time.monotonic()
        root.run(f"apt-get update -qq && {APT_INSTALL} nodejs", root.run_dir / "machine-node.log", timeout=900)
        root.timings["machine's own Node s"] = round(time.monotonic() - started, 1)
        machine_node = root.output("node --version").strip()
        assert machine_node.startswith("v18."), f"Debian 12's Node is {machine_node}, not 18: update this test"

        started = time.monotonic()
        freshroot.write_site_settings(root, ports)
        root.run(command, install_log, timeout=INSTALL_TIMEOUT)
        root.timings["install s"] = round(time.monotonic() - started, 1)
        install_output = install_log.read_text(errors="replace")
        # The install names the port the hub really listens on, not a default it does not use.
        assert f"port {ports.hub}" in install_output, f"the install did not name port {ports.hub}"

        url, verify = freshroot.hub_url(root, ports)
        started = time.monotonic()
        hubkit.wait_for(lambda: hubkit.answers_health(url, verify, timeout=5), HUB_TIMEOUT,
                        what=f"{url}/hub/health to answer 200")
        root.timings["hub healthy s"] = round(time.monotonic() - started, 1)
        hub_pids = [pid for pid in freshroot.processes_in(root.root) if "jupyterhub" in hubkit._cmdline(pid)]
        assert hub_pids, "something answers the hub's port, but no hub runs inside the fresh root"
        # The proxy runs on the Node the install brought, not on the machine's 18, and that Node
        # satisfies what every installed package of the proxy declares (engines.node).
        proxies = [pid for pid in freshroot.processes_in(root.root) if "configurable-http-proxy" in hubkit._cmdline(pid)]
        assert proxies, "no configurable-http-proxy runs inside the fresh root"
        proxy_node = "/" + str(pathlib.Path(os.readlink(f"/proc/{proxies[0]}/exe")).relative_to(root.root))
        assert proxy_node == root.output(f"readlink -f {freshroot.COURSE_NODE}").strip(), (
            f"the proxy runs on {proxy_node}, not on the course's Node {freshroot.COURSE_NODE}")
        unmet = json.loads(root.output(
            f"{freshroot.COURSE_NODE} -e {shlex.quote(UNMET_ENGINES_JS)} {freshroot.PROXY_MODULES}"))
        assert unmet == [], f"the proxy's packages that do not support {freshroot.COURSE_NODE}: {unmet}"
        assert root.output("node --version").strip() == machine_node, "the install replaced the machine's Node"

        username = "fresh" + secrets.token_hex(3)
        password = root.add_student(username)
        started = time.monotonic()
        session = hubkit.HubSession(hubkit.HubAddress(url, verify), username, password)  # the login form
        session.start_server(timeout=SPAWN_TIMEOUT)
        # Land as a browser does: nbgitpuller's git-pull page clones the course, then opens it.
        landed = session.open_server(timeout=SPAWN_TIMEOUT)
        assert landed.status_code == 200 and landed.url.startswith(f"{url}/user/{username}/tree/course"), (
            f"{username}'s landing: HTTP {landed.status_code} at {landed.url}")
        contents = session.server_api("GET", "/contents/course")
        root.timings["login to running server s"] = round(time.monotonic() - started, 1)
        assert contents.status_code == 200, f"{username}'s ~/course: HTTP {contents.status_code} {contents.text}"
        shipped = sorted(p.name for p in root.path(f"{freshroot.CHECKOUT}/notebooks").glob("*.ipynb"))
        synced = sorted(item["name"] for item in contents.json()["content"] if item["name"].endswith(".ipynb"))
        assert shipped and synced == shipped, f"~/course holds {synced}, the course ships {shipped}"

        uid = int(root.output(f"id -u {username}").strip())
        servers = [pid for pid in freshroot.processes_in(root.root)
                   if _uid(pid) == uid and "jupyterhub-singleuser" in hubkit._cmdline(pid)]
        assert servers, f"no jupyterhub-singleuser of {username} (uid {uid}) runs inside the fresh root"
    except BaseException as error:
        error.add_note(explain(root, install_log))
        raise
    finally:
        root.timings["test s"] = round(time.monotonic() - whole, 1)


def _uid(pid):
    try:
        return pathlib.Path(f"/proc/{pid}").stat().st_uid
    except OSError:
        return None
