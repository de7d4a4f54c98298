"""nbgrader's configuration for the course's assignments (run nbgrader from this folder).

The assignments live in ``source/<assignment>/<assignment>.ipynb``; ``nbgrader
generate_assignment`` writes the students' version to ``release/``, and autograding reads
``submitted/`` and writes ``autograded/`` and the gradebook (``gradebook.db``), all beside this
file and ignored by git.
"""
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "dlcourse"

# Seconds a cell may run while a submission is autograded before it is interrupted and counts
# as failed. The slowest cell of the reference solutions, assignment 2's training, takes well
# under a minute on one core; 300 s leaves room for a busy server and slow honest code.
c.Execute.timeout = 300
