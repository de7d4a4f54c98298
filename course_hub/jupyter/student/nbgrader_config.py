"""nbgrader in a student's server and terminal (the hub sets JUPYTER_CONFIG_PATH to this folder):
the course, the exchange, private submissions. See course_hub.grading."""
from course_hub import grading

grading.configure_nbgrader(get_config(), grading.STUDENT)  # noqa: F821 (nbgrader provides get_config)
