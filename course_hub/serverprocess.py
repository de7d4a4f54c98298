"""How a student's server process is set up before it runs, executed or forked alike.

In this order, as root: into the student's memory cgroup (or under an address-space rlimit
where there is none), the students' CPU priority for the process and the session it leads, then
the student's groups and user and their home folder as working folder (JupyterHub's own
``set_user_setuid``). :class:`course_hub.spawner.LocalStudentSpawner` runs it between ``fork``
and ``exec`` of an executed server; the warm starter (:mod:`course_hub.warmstart`) in the copy
it forks.
"""
import os
import resource

from jupyterhub.spawner import set_user_setuid

#: The nice value of students' servers and their kernels, equal for every student. The hub and
#: the proxy serve everyone: with 100 servers starting at once, at the same priority, the hub
#: answered a server start only after 49-60 s and six logins failed (bench/load_test.py -n 100).
SERVER_NICE = 10
#: Linux schedules each session as one group (autogroup); a server starts its own session, so
#: its group's nice value, not only its own, decides its share against the hub's. (Kernels
#: start sessions of their own, jupyter_client's choice: they inherit the nice value only.)
AUTOGROUP = "/proc/self/autogroup"


def lower_priority(nice=SERVER_NICE):
    """Give this process, and the session it leads, the nice value ``nice`` (children inherit it).

    The session's scheduling group is changed only by a session leader (a spawned server), never
    the group of a caller that shares its session with others; a kernel without autogroup
    scheduling has no such file, and then the process's own nice value is all there is.
    """
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if os.getsid(0) == os.getpid() and os.path.exists(AUTOGROUP):
        with open(AUTOGROUP, "w") as group:
            group.write(str(nice))


def set_up(username, cgroup=None, rlimit_as=None, nice=SERVER_NICE):
    """Return the set-up of a server process for ``username``, to run in that process as root.

    Parameters
    ----------
    username : str
        The student (looked up now, not in the child).
    cgroup : course_hub.memory.StudentCgroup or None
        The student's memory cgroup, made already; the process enters it.
    rlimit_as : int or None
        Without a cgroup, the address-space limit of the process (and of its children), bytes.
    nice : int
        The process's and its session's nice value.
    """
    switch_user = set_user_setuid(username)

    def set_up_this_process():
        if cgroup is not None:
            cgroup.add(os.getpid())  # this process, about to become the server
        elif rlimit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
        lower_priority(nice)
        switch_user()

    return set_up_this_process
