"""Instructor tools for the course hub: publish, the repository's gate, take-back, status, terms.

Modules
-------
``gitutil``
    running git and reading trees, with errors worded for people.
``gate``
    what a change to the course repository must pass before it is published: every
    changed notebook runs (nbval, lax), and ``course_lib``'s tests when it changed;
    plus the list of already-published cells whose source changed.
``hook``
    the course repository's ``pre-receive`` hook: runs the gate on every push.
``repository``
    creates and secures the course repository and an instructor's working copy.
``publish``
    the instructor's one command: commit, check, warn, publish.
``take_back``
    the student's command: take the published version of one notebook back, keeping theirs.
``status``
    who is logged in, when each was last active, memory per student.
``term``
    accounts for a term: add a section, archive and remove last term, reset a password.

Everything here uses only the standard library plus what the course's virtualenv has
(``requests`` is not needed; ``psutil`` is used by ``status`` when present).
"""
