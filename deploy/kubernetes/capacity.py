"""The course's capacity plan on Kubernetes: every input stated once, with its source.

Each figure the plan uses is a :class:`Figure` in :data:`INPUTS`: a value, its unit and where
it comes from (a measurement on the course server, a rule from the field's documentation, or a
stated assumption). Everything else is computed from them by :func:`plan`, and
``render_values.py`` writes the results into the Helm values (per-student guarantees, user
placeholders) and the plan's tables into ``README.md``. To update the plan, change an input
here and run ``python deploy/kubernetes/render_values.py``.

Run ``python deploy/kubernetes/capacity.py`` to print the plan as Markdown, and
``python deploy/kubernetes/capacity.py --measure`` to measure one student's kernel again (a
real kernel runs the course cell and a training epoch; its peak memory and CPU time are printed).
"""
import dataclasses
import math
import pathlib
import sys

from course_hub import settings as hub_settings

HERE = pathlib.Path(__file__).resolve().parent
#: The shared settings of this checkout (not an installed copy): the plan is committed.
SETTINGS_PATH = HERE.parent / "hub-settings.yaml"

MIB_PER_GIB = 1024
#: Enrolment sizes the plan is worked out for (the issue's 100, 1,000 and 5,000).
ENROLMENTS = (100, 1000, 5000)
#: Class sizes for which a class start (all log in within the window below) is worked out.
CLASS_STARTS = (100, 300, 1000)


@dataclasses.dataclass(frozen=True)
class Figure:
    """One input of the plan: a value, its unit, and where the value comes from."""

    value: float
    unit: str
    source: str


INPUTS = {
    # ---- measured on the course server (one machine) -----------------------------------
    "server_mib": Figure(
        135, "MiB", "measured: one student's jupyterhub-singleuser + Notebook 7 server, "
        "132 MiB resident (bench/hub_login_to_kernel.py, 2026-11-28; PLATFORM-NOTES.md: "
        "~150 MB); the load test (bench/load_test.py, N=10/25/50) measured 232-237 MB per "
        "student for server and kernel together after the course cell"),
    "kernel_mib": Figure(
        190, "MiB", "measured with `capacity.py --measure` (2026-11-28): peak resident memory "
        "(VmHWM) of a kernel running the course cell (MNIST loaded, SimpleCNN forward on 64 "
        "digits) and one training epoch on 1,000 digits: 188 MiB (PLATFORM-NOTES.md: ~150 MB "
        "after imports)"),
    "kernel_cpu_seconds": Figure(
        2.0, "CPU s", "measured with `capacity.py --measure` (2026-11-28): the course cell "
        "plus one training epoch on 1,000 digits took 1.7 and 2.0 CPU s in two runs on the "
        "shared 2-core course server; the larger is used"),
    "hub_mib": Figure(
        180, "MiB", "measured: peak resident memory of the hub with 50 students logging in at "
        "once (bench/load_test.py -n 50, 2026-11-28: 170-181 MB)"),
    "proxy_mib": Figure(
        67, "MiB", "measured: peak resident memory of configurable-http-proxy with 50 students "
        "(bench/load_test.py -n 50, 2026-11-28)"),
    "spawn_seconds_one_machine": Figure(
        4, "s", "measured: API start to ready server, upper end of 2-4 s (PLATFORM-NOTES.md)"),
    # ---- rules from the field's documentation -------------------------------------------
    "memory_headroom": Figure(
        0.40, "fraction", "The Littlest JupyterHub's resource estimation: add 20-40 % to the "
        "most memory measured in a typical session; the top end, because notebook 03 trains"),
    "concurrency_low": Figure(
        0.40, "fraction", "The Littlest JupyterHub's resource estimation: plan for 40-60 % of "
        "enrolled students active at once"),
    "concurrency_high": Figure(0.60, "fraction", "same rule, upper end"),
    "disk_per_student_gib": Figure(
        1, "GiB", "assumption: the course folder with outputs is a few MB; 1 GiB leaves room for "
        "saved models, plots and data a student adds (TLJH: disk scales with enrolment)"),
    # ---- assumptions about the cluster (replace with your provider's figures) ----------
    "cpu_guarantee": Figure(
        0.1, "cores", "JupyterHub's capacity-planning notes: learners are mostly idle, and on "
        "mybinder.org over 90 % of users use under 10 % of a core; the limit (settings) lets "
        "a running cell burst to a full core"),
    "hub_cores": Figure(
        0.25, "cores", "JupyterHub's capacity-planning notes: ~25 % of a core is generous for "
        "hub + proxy at 100-150 users"),
    "hub_request_mib": Figure(
        512, "MiB", "same notes: ~500 MB generous for hub + proxy (measured here: hub 140 MiB "
        "+ proxy 65 MiB)"),
    "node_cores": Figure(8, "cores", "assumption: user nodes of 8 vCPU / 32 GiB, a common "
                         "general-purpose size"),
    "node_memory_gib": Figure(32, "GiB", "same assumption"),
    "node_allocatable_fraction": Figure(
        0.88, "fraction", "assumption: memory Kubernetes leaves to pods after kubelet/system "
        "reservations on a 32 GiB node (~3.8 GiB reserved; read yours from "
        "`kubectl describe node`, Allocatable)"),
    "node_daemonset_mib": Figure(
        512, "MiB", "assumption: per-node pods (image puller, logging, CNI, kube-proxy)"),
    "node_daemonset_cores": Figure(0.3, "cores", "same assumption"),
    "node_max_pods": Figure(
        110, "pods", "Kubernetes' default kubelet maxPods (some providers set fewer: check "
        "yours, e.g. AWS EKS derives it from the node's network interfaces)"),
    "node_daemonset_pods": Figure(8, "pods", "assumption: per-node pods, as above"),
    "node_provisioning_minutes": Figure(
        5, "min", "assumption: a cloud autoscaler adds a node and pulls the image in 3-5 min"),
    "spawn_seconds_cluster": Figure(
        15, "s", "assumption: pod start with the image already on the node (pre-puller) and a "
        "volume to attach; about 4x the one-machine spawn measured above"),
    "concurrent_spawn_limit": Figure(
        64, "spawns", "Zero to JupyterHub's default hub.concurrentSpawnLimit (rendered into the "
        "values; spawns beyond it are refused with 429 and retried by the browser)"),
    "placeholder_headroom_nodes": Figure(
        1, "nodes", "assumption: keep one node's worth of placeholders, so a student arriving "
        "outside a planned class start never waits for a new node (0 saves a node's cost)"),
    "class_start_window_minutes": Figure(
        5, "min", "the issue: everyone logs in within 5 minutes of a class start"),
    # ---- the one machine the course runs on today -------------------------------------
    "one_machine_memory_gib": Figure(24, "GiB", "measured: the course server's memory"),
    "one_machine_reserved_gib": Figure(
        2, "GiB", "assumption: OS, page cache floor and the hub's own growth"),
}


def _mib(quantity):
    """A JupyterHub byte specification (``"2G"``, ``"512M"``) in MiB, read by the hub's one
    parser (:func:`course_hub.settings.parse_byte_size`: JupyterHub's ``ByteSpecification``)."""
    return hub_settings.parse_byte_size(quantity, "limits.memory") / 2**20


def plan(inputs=None, settings=None):
    """Compute the capacity plan from the inputs and the shared hub settings.

    Parameters
    ----------
    inputs : dict of str to Figure, optional
        The plan's inputs (default: :data:`INPUTS`).
    settings : dict, optional
        The shared hub settings (default: ``deploy/hub-settings.yaml``); their per-student
        limits are the pods' limits, the same as on one machine.

    Returns
    -------
    dict
        ``per_student`` (guarantees and limits), ``node`` (students per node and what binds),
        ``enrolments`` (one row per enrolment and concurrency), ``class_starts`` and
        ``one_machine``.
    """
    inputs = INPUTS if inputs is None else inputs
    settings = hub_settings.load_settings(shared=SETTINGS_PATH) if settings is None else settings
    v = {name: figure.value for name, figure in inputs.items()}

    active_mib = v["server_mib"] + v["kernel_mib"]
    # Round the guarantee up to whole 4 MiB so Kubernetes shows a tidy request.
    memory_guarantee_mib = int(4 * math.ceil(active_mib * (1 + v["memory_headroom"]) / 4))
    memory_limit_mib = _mib(settings["limits"]["memory"])
    cpu_limit = float(settings["limits"]["cpu"])
    cpu_guarantee = float(v["cpu_guarantee"])
    if memory_guarantee_mib > memory_limit_mib:
        raise ValueError(
            f"memory guarantee {memory_guarantee_mib} MiB exceeds limits.memory "
            f"{settings['limits']['memory']!r}: raise the limit in deploy/hub-settings.yaml")

    node_mem_mib = (v["node_memory_gib"] * MIB_PER_GIB * v["node_allocatable_fraction"]
                    - v["node_daemonset_mib"])
    node_cores = v["node_cores"] - v["node_daemonset_cores"]
    by_memory = math.floor(node_mem_mib / memory_guarantee_mib)
    by_cpu = math.floor(node_cores / cpu_guarantee)
    by_pods = int(v["node_max_pods"] - v["node_daemonset_pods"])
    limits_per_node = {"memory": by_memory, "CPU": by_cpu, "pods per node": by_pods}
    binding = min(limits_per_node, key=limits_per_node.get)
    per_node = limits_per_node[binding]

    rows = []
    for enrolled in ENROLMENTS:
        for share in (v["concurrency_low"], v["concurrency_high"]):
            active = math.ceil(enrolled * share)
            rows.append({
                "enrolled": enrolled,
                "concurrency": share,
                "active": active,
                "user_nodes": math.ceil(active / per_node),
                "memory_gib": active * memory_guarantee_mib / MIB_PER_GIB,
                "disk_gib": enrolled * v["disk_per_student_gib"],
            })

    window_s = v["class_start_window_minutes"] * 60
    starts = []
    for size in CLASS_STARTS:
        rate = size / window_s
        starts.append({
            "class_size": size,
            "logins_per_second": rate,
            # Little's law: spawns in flight = arrival rate x time each spawn takes.
            "spawns_in_flight": math.ceil(rate * v["spawn_seconds_cluster"]),
            "nodes_ready_before": math.ceil(size / per_node),
            "placeholders": size,
        })

    too_many = [row["class_size"] for row in starts
                if row["spawns_in_flight"] > v["concurrent_spawn_limit"]]

    one_mem_mib = ((v["one_machine_memory_gib"] - v["one_machine_reserved_gib"]) * MIB_PER_GIB
                   - v["hub_mib"] - v["proxy_mib"])
    one_active = math.floor(one_mem_mib / memory_guarantee_mib)
    return {
        "per_student": {
            "active_mib": active_mib,
            "memory_guarantee_mib": memory_guarantee_mib,
            "memory_limit_mib": memory_limit_mib,
            "memory_limit": str(settings["limits"]["memory"]),
            "cpu_guarantee": cpu_guarantee,
            "cpu_limit": cpu_limit,
        },
        "node": {
            "allocatable_mib": node_mem_mib,
            "allocatable_cores": node_cores,
            "students_by_memory": by_memory,
            "students_by_cpu": by_cpu,
            "students_by_pods": by_pods,
            "students_per_node": per_node,
            "binding": binding,
        },
        "enrolments": rows,
        "class_starts": starts,
        "class_starts_over_spawn_limit": too_many,
        "placeholders": int(v["placeholder_headroom_nodes"] * per_node),
        "concurrent_spawn_limit": int(v["concurrent_spawn_limit"]),
        "hub": {"cpu": v["hub_cores"], "memory_mib": int(v["hub_request_mib"])},
        # How often the CPU guarantee alone would let a student run the measured work.
        "seconds_per_measured_work": v["kernel_cpu_seconds"] / cpu_guarantee,
        "one_machine": {
            "active_students": one_active,
            "enrolled_at_high_concurrency": math.floor(one_active / v["concurrency_high"]),
        },
    }


def markdown(result, inputs=None):
    """Return the plan as Markdown: the inputs with their sources, then the computed tables.

    Parameters
    ----------
    result : dict
        What :func:`plan` returned.
    inputs : dict of str to Figure, optional
        The inputs it was computed from (default: :data:`INPUTS`).

    Returns
    -------
    str
        Markdown text (no trailing newline).
    """
    inputs = INPUTS if inputs is None else inputs
    per, node = result["per_student"], result["node"]
    lines = ["Inputs (`deploy/kubernetes/capacity.py`, `INPUTS`):", "",
             "| input | value | source |", "|---|---|---|"]
    for name, fig in inputs.items():
        lines.append(f"| `{name}` | {fig.value:g} {fig.unit} | {fig.source} |")
    lines += [
        "",
        "Per student (the pod's Kubernetes requests and limits):",
        "",
        "| | guarantee (request) | limit | from |",
        "|---|---|---|---|",
        f"| memory | {per['memory_guarantee_mib']} MiB | {per['memory_limit']} "
        f"| guarantee: (`server_mib` + `kernel_mib`) x (1 + `memory_headroom`) = "
        f"{per['active_mib']:g} x {1 + inputs['memory_headroom'].value:g}, rounded up; "
        f"limit: `limits.memory` of `deploy/hub-settings.yaml` |",
        f"| CPU | {per['cpu_guarantee']:g} core | {per['cpu_limit']:g} core "
        f"| guarantee: `cpu_guarantee`; limit: `limits.cpu` of `deploy/hub-settings.yaml` |",
        "",
        f"At its CPU guarantee alone a student can run the measured work "
        f"(`kernel_cpu_seconds`: course cell + a training epoch) every "
        f"{result['seconds_per_measured_work']:.0f} s; the 1-core limit runs it at once when "
        "neighbours are idle.",
        "",
        f"One user node ({inputs['node_cores'].value:g} vCPU / "
        f"{inputs['node_memory_gib'].value:g} GiB) leaves {node['allocatable_mib']:.0f} MiB and "
        f"{node['allocatable_cores']:g} cores to students: {node['students_by_memory']} students "
        f"by memory, {node['students_by_cpu']} by CPU, {node['students_by_pods']} by the pod "
        f"limit, so **{node['students_per_node']} students "
        f"per node** ({node['binding']} binds).",
        "",
        "| enrolled | active at once | user nodes | memory requested | home volumes |",
        "|---|---|---|---|---|",
    ]
    for row in result["enrolments"]:
        lines.append(
            f"| {row['enrolled']:,} | {row['active']:,} ({row['concurrency']:.0%}) "
            f"| {row['user_nodes']} | {row['memory_gib']:,.1f} GiB | {row['disk_gib']:,.0f} GiB |")
    window = inputs["class_start_window_minutes"].value
    lines += [
        "",
        f"Class start: the whole class logs in within {window:g} minutes. Nodes take "
        f"`node_provisioning_minutes` ({inputs['node_provisioning_minutes'].value:g} min) to "
        "appear, as long as the whole window: the nodes must be up before the class, which is "
        "what user placeholders do (scale them to the class size beforehand, see below).",
        "",
        "| class size | logins per second | spawns in flight | nodes up before the start "
        "| placeholders to scale to |",
        "|---|---|---|---|---|",
    ]
    for row in result["class_starts"]:
        lines.append(
            f"| {row['class_size']:,} | {row['logins_per_second']:.2f} "
            f"| {row['spawns_in_flight']} | {row['nodes_ready_before']} "
            f"| {row['placeholders']:,} |")
    if result["class_starts_over_spawn_limit"]:
        lines += ["", "Class sizes whose spawns in flight exceed `concurrent_spawn_limit`: "
                  + ", ".join(f"{n:,}" for n in result["class_starts_over_spawn_limit"])
                  + " (raise hub.concurrentSpawnLimit or stagger the start)."]
    else:
        lines += ["", f"Every class start above stays under `concurrent_spawn_limit` "
                  f"({result['concurrent_spawn_limit']} spawns at once)."]
    lines += ["", f"Between class starts the values keep {result['placeholders']} placeholders "
              f"(`placeholder_headroom_nodes` x students per node)."]
    one = result["one_machine"]
    lines += [
        "",
        f"One machine ({inputs['one_machine_memory_gib'].value:g} GiB, the same per-student "
        f"guarantee): about {one['active_students']} active students, that is about "
        f"{one['enrolled_at_high_concurrency']} enrolled at "
        f"{inputs['concurrency_high'].value:.0%} concurrency. Memory sizes a single machine "
        "(it has no CPU reservations); its CPU is what the class-sized load test measures "
        "(README, *Sizing the server*).",
    ]
    return "\n".join(lines)


#: What a student's kernel runs during :func:`measure`: the load test's course cell, then
#: one short training epoch (notebook 03's work, smaller).
MEASURED_CELLS = (
    "import numpy as np, scipy, matplotlib.pyplot as plt\n"
    "from course_lib import load_mnist, SimpleCNN\n"
    "X, y, X_test, y_test = load_mnist()\n"
    "model = SimpleCNN(seed=0)\n"
    "_ = model.predict_proba(X_test[:64])",
    "_ = model.fit(X[:1000], y[:1000], epochs=1, progress=False)",
)


def measure(timeout=300):
    """Measure one student's kernel: start a real kernel, run :data:`MEASURED_CELLS`.

    The kernel imports this checkout's ``course_lib`` (the repository root goes first on its
    ``PYTHONPATH``). Needs ``psutil`` (requirements-dev.txt) and Linux's ``/proc``.

    Parameters
    ----------
    timeout : float
        Seconds allowed for each cell.

    Returns
    -------
    dict
        ``idle_mib`` (resident memory of the fresh kernel), ``peak_mib`` (its peak resident
        memory, ``VmHWM``, after the cells), ``cpu_seconds`` (user + system time the cells
        took in the kernel).

    Raises
    ------
    RuntimeError
        If a cell fails in the kernel.
    """
    import os

    import psutil
    from jupyter_client.manager import start_new_kernel

    repo_root = str(HERE.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo_root, os.environ.get("PYTHONPATH", "")) if p)
    manager, client = start_new_kernel(kernel_name="python3", env=env)
    try:
        process = psutil.Process(manager.provisioner.process.pid)
        idle_mib = process.memory_info().rss / 2**20
        before = process.cpu_times()
        for cell in MEASURED_CELLS:
            reply = client.execute_interactive(cell, timeout=timeout, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"measured cell failed: {reply['content'].get('evalue')}")
        after = process.cpu_times()
        with open(f"/proc/{process.pid}/status") as status:
            peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {
        "idle_mib": idle_mib,
        "peak_mib": peak_kib / 1024,
        "cpu_seconds": (after.user + after.system) - (before.user + before.system),
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        figures = measure()
        print(f"kernel: idle {figures['idle_mib']:.0f} MiB, peak {figures['peak_mib']:.0f} MiB, "
              f"{figures['cpu_seconds']:.2f} CPU s for the measured cells")
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--measure]")
    else:
        print(markdown(plan()))
