# shellcheck shell=sh
# The course virtualenv first on PATH in users' login shells (course_hub.paths.PROFILE_SCRIPT).
#
# Jupyter's terminals run `bash -l`, and Debian's /etc/profile sets PATH afresh, dropping the
# PATH the hub gave the user's server; /etc/profile then reads this folder. From here on
# python3, pip and the course's commands (course-publish, course-status, course-take-back) are
# the course virtualenv's, with numpy and course_lib, as in the notebooks. Root keeps the
# system's python3 (apt and other system tools need it); the README names the commands' folder.
# POSIX sh: /etc/profile is also read by sh and dash.
COURSE_VENV_BIN=/opt/dlcourse/venv/bin

if [ "$(id -u)" -ne 0 ] && [ -d "$COURSE_VENV_BIN" ]; then
    case ":$PATH:" in
        ":$COURSE_VENV_BIN:"*) ;;
        *) PATH="$COURSE_VENV_BIN:$PATH" ;;
    esac
    export PATH
fi
unset COURSE_VENV_BIN
