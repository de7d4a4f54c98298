"""Unix accounts and groups: the one membership test, group creation, stopping a user's processes.

The hub (who is an instructor, which groups a login carries), the roster and term tools, and
the tests all ask these questions; each is answered here only.
"""
import grp
import os
import pwd
import subprocess

import psutil


def is_member(username, group):
    """Whether Unix user ``username`` is in Unix group ``group`` (False if either is unknown).

    Both the primary group and supplementary groups count (``os.getgrouplist``).
    """
    try:
        gid = grp.getgrnam(group).gr_gid
        account = pwd.getpwnam(username)
    except KeyError:
        return False
    return gid in os.getgrouplist(username, account.pw_gid)


def full_name(account):
    """The person's name in a ``pwd`` entry: the comment field up to its first comma ('' if none)."""
    return account.pw_gecos.split(",")[0].strip()


def member_groups(username, groups):
    """Return which of ``groups`` the Unix user ``username`` belongs to, in the given order.

    Group names that do not exist on the machine are skipped.
    """
    return [group for group in groups if is_member(username, group)]


def group_exists(name):
    """Whether a Unix group called ``name`` exists."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def ensure_groups(names):
    """Create the Unix groups among ``names`` that do not exist yet; return the ones created."""
    created = []
    for name in dict.fromkeys(names):
        if not group_exists(name):
            subprocess.run(["groupadd", name], check=True, capture_output=True)
            created.append(name)
    return created


def stop_processes_of(user, grace=5.0):
    """Stop every process of a Unix user, by pid: SIGTERM, then SIGKILL after ``grace`` seconds.

    The one place that ends a user's processes: before an account is deleted (``userdel``
    refuses while they run) and when tests clean up after themselves.

    Parameters
    ----------
    user : str or int
        The username or the uid. A username with no account stops nothing.
    grace : float
        Seconds the processes get to exit after SIGTERM.

    Returns
    -------
    list of int
        The pids that were running.
    """
    if isinstance(user, str):
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            return []
    else:
        uid = int(user)
    if uid == 0:
        raise ValueError("user: expected a user's account, got root (uid 0); refused")
    processes = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return [process.pid for process in processes]
