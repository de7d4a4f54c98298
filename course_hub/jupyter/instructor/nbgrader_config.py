"""nbgrader in an instructor's server, terminal and formgrader (the hub sets JUPYTER_CONFIG_PATH to
this folder): the shared course directory and gradebook, the exchange, autograding in the
grading sandbox. See course_hub.grading."""
from course_hub import grading

grading.configure_nbgrader(get_config(), grading.INSTRUCTOR)  # noqa: F821 (nbgrader provides get_config)
