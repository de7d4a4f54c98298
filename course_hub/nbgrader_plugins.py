"""What nbgrader loads from the course: the sandboxed Execute step and a safer exchange.

The course's nbgrader configuration (``course_hub/jupyter/<role>/nbgrader_config.py``, see
:mod:`course_hub.grading`) names these classes; nbgrader imports them in the instructors' and
the students' processes, so this module imports nbgrader and little else.

:class:`SandboxedExecute`
    autograding's ``Execute`` step: the notebook, with its hidden tests, runs in the grading
    sandbox (:mod:`course_hub.sandbox`) as the sandbox account, never as the instructor.
:class:`PrivateSubmit`
    a submission is readable by its student and the instructors' group only (nbgrader's own
    leaves it readable by everyone, and its folder writable by everyone, behind a random name).
:class:`CheckedCollect`
    collects only submissions that belong to the student they name (anyone can write into
    the inbound folder, so a student could file one under a classmate's name), and copies them
    without following links (a submission belongs to its student, who could plant a link to a
    file only the instructor can read).
:class:`PrivateReleaseFeedback`
    a released feedback file is readable by its student alone (and the instructors' group),
    not by anyone who learns its name.
"""
import errno
import glob
import os
import pwd
import stat
import struct

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default import ExchangeCollect, ExchangeReleaseFeedback, ExchangeSubmit
from nbgrader.preprocessors import Execute
from nbgrader.utils import find_owner, ignore_patterns, notebook_hash
from traitlets import Integer, Unicode

from . import accounts, sandbox

#: Modes of a submission in the exchange: the student's, readable by the instructors' group
#: (the inbound folder's group, which nbgrader's release makes set-group-id).
SUBMISSION_FILE_MODE = 0o640
SUBMISSION_DIR_MODE = 0o750
#: A released feedback file: the instructors' group's, and its student's through an ACL entry.
FEEDBACK_FILE_MODE = 0o640


class SandboxedExecute(Execute):
    """nbgrader's ``Execute``, with the kernel in the grading sandbox.

    The notebook and the regular files of its folder go to the sandbox service; the executed
    notebook comes back. ``timeout`` (per cell, ``Execute.timeout``) is passed on; the
    service's own limits (time per notebook, memory) always apply.
    """

    socket = Unicode("", help="The grading sandbox's Unix socket (course_hub.paths.GRADER_SOCKET).").tag(config=True)
    time_limit = Integer(
        None, allow_none=True,
        help="Seconds one notebook may run, all cells together; at most the server's "
             "grading.time_limit_seconds (None: that).").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        if not self.socket:
            raise sandbox.SandboxError("SandboxedExecute.socket is not set: nbgrader's configuration does not "
                                       "name the grading sandbox, and students' code never runs outside it")
        folder = ((resources or {}).get("metadata") or {}).get("path")
        report, executed = sandbox.execute_remotely(
            self.socket, nbformat.writes(nb).encode(), folder, cell_timeout=self.timeout, time_limit=self.time_limit)
        self.log.info("Executed in the grading sandbox as %s in %.1f s (limit %s s)%s", report["account"],
                      report["seconds"], report["time_limit"],
                      f"; stopped: {report['stopped']}" if report.get("stopped") else "")
        return nbformat.reads(executed.decode(), as_version=4), resources


class _CopyWithoutSurprises:
    """nbgrader's ``do_copy`` (its ignore patterns and size limits), done by
    :func:`copy_regular_tree` with the modes and link rule of the subclass."""

    file_mode = dir_mode = None
    follow_links = False

    def do_copy(self, src, dest, log=None):
        ignore = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                 max_file_size=self.coursedir.max_file_size, log=self.log)
        skipped = copy_regular_tree(src, dest, ignore=ignore, limit=1000 * self.coursedir.max_dir_size,
                                    file_mode=self.file_mode, dir_mode=self.dir_mode, follow_links=self.follow_links)
        for name in skipped:
            self.log.warning("Not copied from %s: %s is a link or not a regular file or folder", src, name)


class PrivateSubmit(_CopyWithoutSurprises, ExchangeSubmit):
    """Submit as nbgrader does, then make the submission private to the student and the
    instructors' group.

    The inbound folder is set-group-id: what is created in it belongs to the instructors'
    group. nbgrader's copy (``shutil.copytree``) then copies the student's folder's mode onto the
    new folder, which drops that bit (the student is not in the group), so the files nbgrader
    writes next (the timestamp and the secret that names the feedback) would be the student's
    group's and unreadable for the instructors; this copy keeps the bit. Links in the student's
    folder are followed, as nbgrader's copy does (as the student, it reads only their files).
    """

    file_mode, dir_mode, follow_links = SUBMISSION_FILE_MODE, SUBMISSION_DIR_MODE, True

    def copy_files(self):
        super().copy_files()
        submission = os.path.join(self.inbound_path, self.assignment_filename)
        self.set_perms(submission, fileperms=SUBMISSION_FILE_MODE, dirperms=SUBMISSION_DIR_MODE)


class CheckedCollect(_CopyWithoutSurprises, ExchangeCollect):
    """Collect only each student's own submissions, copied without following links."""

    file_mode, dir_mode = 0o660, 0o2770  # the course directory is the instructors' group's (groupshared)

    def _genuine(self, record):
        path = os.path.join(self.inbound_path, record["filename"])
        return not os.path.islink(path) and os.path.isdir(path) and find_owner(path) == record["username"]

    def _sort_by_timestamp(self, records):
        # nbgrader keeps the first of this order for each student: their latest own submission
        # comes before any filed under their name by someone else, which is never collected.
        newest_first = super()._sort_by_timestamp(records)
        forged = [record for record in newest_first if not self._genuine(record)]
        for record in forged:
            path = os.path.join(self.inbound_path, record["filename"])
            self.log.error("Not collected: %s names student %s but belongs to %s", path, record["username"],
                           find_owner(path) if os.path.lexists(path) else "nobody")
        return [record for record in newest_first if record not in forged] + forged

    def copy_files(self):
        self.src_records = [record for record in self.src_records if self._genuine(record)]
        # nbgrader makes the students' folders in submitted/ with the umask's mode: keep them
        # writable for the other instructors (the course directory is the group's).
        previous = os.umask(0o002)
        try:
            super().copy_files()
        finally:
            os.umask(previous)
        self._name_students()

    def _name_students(self):
        """Give each collected student the name of their account, where the gradebook has none.

        nbgrader files a student under their id only, and the formgrader then lists every
        submission as "None, None". The roster gives each account its full name (the passwd
        comment field): its last word becomes the last name, the rest the first.
        """
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            for record in self.src_records:
                first, last = account_names(record["username"])
                if not (first or last):
                    continue
                try:
                    student = gradebook.find_student(record["username"])
                except MissingEntry:
                    student = None
                if student is None or not (student.first_name or student.last_name):
                    gradebook.update_or_create_student(record["username"], first_name=first, last_name=last)


def account_names(username):
    """``(first name, last name)`` from the full name of ``username``'s account, or ``(None, None)``."""
    try:
        name = accounts.full_name(pwd.getpwnam(username))
    except KeyError:
        return None, None
    if not name:
        return None, None
    first, _, last = name.rpartition(" ")
    return (first or None), last


class PrivateReleaseFeedback(ExchangeReleaseFeedback):
    """Release feedback as nbgrader does, then let each file be read by its student alone.

    nbgrader names a released file by a hash of the notebook and a secret of the submission
    (only the student and the instructors can read the secret) and leaves it readable by
    everyone who knows the name. Here each file also becomes mode 0640, group the instructors',
    with a POSIX ACL entry letting its student read it: the owner (the releasing instructor)
    may set that without any privilege. Where the file system has no ACLs, nbgrader's naming
    is all there is, and a warning says so.
    """

    def copy_files(self):
        super().copy_files()
        for html_file in glob.glob(os.path.join(self.src_path, "*.html")):
            folder = os.path.dirname(html_file)
            student = os.path.basename(os.path.dirname(folder))
            secret_file = os.path.join(folder, "submission_secret.txt")
            if not os.path.exists(secret_file):
                continue
            with open(secret_file) as handle:
                secret = handle.read()
            notebook_id = os.path.splitext(os.path.basename(html_file))[0]
            released = os.path.join(self.dest_path, f"{notebook_hash(secret=secret, notebook_id=notebook_id)}.html")
            try:
                readable_by_one_student(released, student)
            except FileNotFoundError:
                continue  # excluded (student_id_exclude) or not released
            except OSError as exc:
                self.log.warning("Feedback %s stays readable by anyone who knows its name: %s", released, exc)


def readable_by_one_student(path, student):
    """Make ``path`` mode 0640 with an ACL entry that lets ``student`` read it.

    Raises
    ------
    OSError
        If the file is missing, or the file system refuses ACLs (ENOTSUP).
    """
    uid = pwd.getpwnam(student).pw_uid
    os.chmod(path, FEEDBACK_FILE_MODE)
    undefined = 0xFFFFFFFF
    # linux/posix_acl_xattr.h: version 2, then (tag, permissions, id) sorted by tag: the owner
    # rw, the student r, the group r, the mask r, others nothing.
    entries = [(0x01, 6, undefined), (0x02, 4, uid), (0x04, 4, undefined), (0x10, 4, undefined), (0x20, 0, undefined)]
    os.setxattr(path, "system.posix_acl_access",
                struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries))


def copy_regular_tree(source, destination, ignore=None, limit=None, file_mode=0o644, dir_mode=0o755,
                      follow_links=False):
    """Copy the folder ``source`` to the new folder ``destination``: regular files and folders
    only, each opened once and copied from that open file, so what is checked is what is copied.

    Parameters
    ----------
    source, destination : str
    ignore : callable, optional
        ``ignore(folder, names) -> names to skip``, as ``shutil.copytree`` takes it.
    limit : int, optional
        Bytes the files may hold in all; past it, RuntimeError.
    file_mode, dir_mode : int
        Modes of what is written. A folder is changed after it is made only if the umask took
        bits away: a change of mode by someone outside a folder's group drops its
        set-group-id bit, which the folders of the exchange pass on.
    follow_links : bool
        Copy what links point to (each folder once); otherwise links are left out, so that one
        swapped in while the copy runs is not followed either.

    Returns
    -------
    list of str
        What was left out (links, devices, pipes), relative to ``source``.
    """
    skipped = []
    copied = 0
    seen = set()
    no_follow = 0 if follow_links else os.O_NOFOLLOW

    def copy_folder(folder_fd, relative, target):
        nonlocal copied
        os.mkdir(target, dir_mode)
        if os.stat(target).st_mode & 0o777 != dir_mode & 0o777:
            os.chmod(target, dir_mode)
        names = sorted(os.listdir(folder_fd))
        left_out = set(ignore(os.path.join(source, relative), names)) if ignore else set()
        for name in names:
            if name in left_out:
                continue
            path = os.path.join(relative, name)
            try:
                fd = os.open(name, os.O_RDONLY | no_follow | os.O_NONBLOCK, dir_fd=folder_fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOENT):  # a link (or a dangling one)
                    raise
                skipped.append(path)
                continue
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    copy_folder(fd, path, os.path.join(target, name))
                elif stat.S_ISREG(info.st_mode):
                    out = os.open(os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode)
                    with open(out, "wb") as handle:
                        os.fchmod(out, file_mode)
                        while chunk := os.read(fd, 2**20):
                            copied += len(chunk)
                            if limit is not None and copied > limit:
                                raise RuntimeError(f"{source}: more than {limit} bytes to copy")
                            handle.write(chunk)
                else:
                    skipped.append(path)
            finally:
                os.close(fd)

    top = os.open(source, os.O_RDONLY | no_follow | os.O_DIRECTORY)
    try:
        seen.add((os.fstat(top).st_dev, os.fstat(top).st_ino))
        copy_folder(top, "", destination)
    finally:
        os.close(top)
    return skipped
