"""The graded kernel's first step (course_hub.sandbox): from root to the sandbox account.

Run as root, with ``python -I`` (the interpreter imports nothing from the folder it runs in,
which is the submission's), by the sandbox's worker as the prefix of the kernel's command::

    python -I sandbox_enter.py --user NAME --memory BYTES --cpu SECONDS [--chown FILE] -- COMMAND...

It gives ``FILE`` (the kernel's connection file) to the account, leaves the network (a network
namespace of its own: the kernel talks to the worker over Unix sockets), sets the limits
(address space, CPU seconds, processes of the account, size of a written file, no core
files), drops every group and root itself, and execs ``COMMAND``. The standard library only:
the step imports nothing that a submission could stand in for.
"""
import argparse
import ctypes
import os
import pwd
import resource
import sys

#: Linux's CLONE_NEWNET for unshare(2) (os.unshare arrives with Python 3.12).
CLONE_NEWNET = 0x40000000
#: Processes (threads included) the sandbox account may have, and the largest file it may write.
MAX_PROCESSES = 256
MAX_FILE_WRITE_BYTES = 128 * 2**20


def sandbox_account(user):
    """The passwd entry of the sandbox account ``user``; ValueError if it is missing or root."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"sandbox user {user!r} does not exist") from None
    if entry.pw_uid == 0:
        raise ValueError(f"sandbox user {user!r} is root")
    return entry


def enter(user, memory, cpu, chown=None):
    """Become ``user`` with the limits; raise OSError or ValueError if any step fails."""
    entry = sandbox_account(user)
    if chown:
        os.chown(chown, entry.pw_uid, entry.pw_gid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"unshare(CLONE_NEWNET): {os.strerror(number)}")
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_NPROC, MAX_PROCESSES), (resource.RLIMIT_FSIZE, MAX_FILE_WRITE_BYTES),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) or os.getgroups():
        raise OSError("still privileged after dropping root")
    os.umask(0o077)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sandbox_enter.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", required=True)
    parser.add_argument("--memory", type=int, required=True, help="bytes of address space per process")
    parser.add_argument("--cpu", type=int, required=True, help="CPU seconds per process")
    parser.add_argument("--chown", default=None, help="a file to give to the account first")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run after --")
    if os.geteuid() != 0:
        parser.error("run as root: it switches to the sandbox account")
    try:
        enter(args.user, args.memory, args.cpu, args.chown)
    except (OSError, ValueError) as exc:
        print(f"sandbox_enter.py: {exc}", file=sys.stderr)
        return 1
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
