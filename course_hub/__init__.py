"""The course hub's code: one installed package, beside ``course_lib``.

``jupyterhub_config.py`` imports it like any package, the instructors' and the operator's
commands are its console scripts (``[project.scripts]`` of ``pyproject.toml``), and
``deploy/`` keeps only what deploys it (install script, systemd unit, ``rc.local``, the shared
settings, Kubernetes).

Modules
-------
``paths``
    every path of the server, named once (standard library only: ``install.sh`` reads it).
``settings``
    the shared settings merged with this server's site file; the one byte-size parser.
``accounts``
    Unix groups and users: the one membership test, the one place that stops a user's processes.
``gitutil``
    the one git helper: running git and reading trees, with errors worded for people.
``repository``
    the one owner of the course repository: create, publish, secure, trust (``course-repo``);
    an instructor's working copy.
``spawner``, ``hooks``, ``auth``, ``lab_redirect``
    what the hub's configuration wires in: the memory-limited local spawner, the course sync at
    every landing, the course groups, the instructors' working copy and token scopes, PAM
    logins whose refusals all take the same time, and the students' servers' ``/lab``.
``launcher``
    ``course-hub``: runs the hub with sane signals, supervised or in the background.
``roster``, ``term``, ``roster_command``
    accounts from a roster, the term workflow, and their command line ``course-roster``.
``gate``, ``hook``, ``publish``, ``take_back``, ``status``
    the publish gate, the repository's pre-receive hook, ``course-publish``,
    ``course-take-back`` and ``course-status``.
``grading``
    nbgrader on the server: its folders and their permissions, each role's configuration
    (``jupyter/<role>``), the hub's grading pieces, ``course-grade`` (setup, check).
``sandbox``, ``sandbox_enter``
    the grading sandbox: a root service of the hub that runs each graded notebook as the
    sandbox account, limited, in a scratch copy; the kernel's step from root to that account.
``nbgrader_plugins``, ``assignment_list``
    what nbgrader loads from the course (the sandboxed Execute step, a private exchange), and
    the students' Assignments list, loaded at its first use.

Importing the package imports nothing else: ``python3 -m course_hub.paths`` runs with the
system Python before the course's packages are installed.
"""
