"""The students' Assignments list, as a Jupyter server extension that costs nothing until used.

nbgrader's own server extension (``nbgrader.server_extensions.assignment_list``) imports the
whole of nbgrader when the server starts (its package imports every extension, the formgrader
too): 42 MB more in every student's server (81 MB without it, 123 MB with it, measured here).
This extension serves the same addresses (those Notebook 7's Assignments tab calls) with
handlers that import nbgrader's at the first request, so only a student who opens the tab
pays for it, and then gets exactly nbgrader's behaviour.

Enabled for students by ``course_hub/jupyter/student/jupyter_server_config.d``, where nbgrader's
own extensions are disabled; instructors keep nbgrader's (they load the formgrader anyway).
"""
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join

#: The addresses nbgrader's assignment list serves (its ``default_handlers``), checked against
#: nbgrader's own list at the first request.
PATTERNS = (
    r"/assignments",
    r"/assignments/(?P<action>fetch|submit|fetch_feedback)",
    r"/courses",
    r"/nbgrader_version",
)


class LazyHandler(JupyterHandler):
    """Stands for nbgrader's handler of ``pattern``: Tornado makes one per request, and this
    class makes nbgrader's instead (importing it, and its manager, at the first request)."""

    def __new__(cls, application, request, pattern, serverapp):
        handler_class = _nbgrader_handlers(application, serverapp)[pattern]
        return handler_class(application, request)


def _nbgrader_handlers(application, serverapp):
    """nbgrader's handlers by pattern; at the first call, import them and set up their manager
    as nbgrader's own ``load_jupyter_server_extension`` does."""
    handlers = application.settings.get("course_assignment_handlers")
    if handlers is None:
        from nbgrader.server_extensions.assignment_list import handlers as nbgrader_list

        manager = nbgrader_list.AssignmentList(parent=serverapp)
        manager.root_dir = serverapp.root_dir
        application.settings["assignment_list_manager"] = manager
        handlers = dict(nbgrader_list.default_handlers)
        missing = set(PATTERNS) - set(handlers)
        if missing:
            raise RuntimeError(f"nbgrader's assignment list no longer serves {sorted(missing)}")
        application.settings["course_assignment_handlers"] = handlers
    return handlers


def _jupyter_server_extension_points():
    return [{"module": "course_hub.assignment_list"}]


def _load_jupyter_server_extension(serverapp):
    """Register the addresses; nothing of nbgrader is imported here."""
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base_url, pattern), LazyHandler, {"pattern": pattern, "serverapp": serverapp})
        for pattern in PATTERNS
    ])
    serverapp.log.info("course_hub.assignment_list: the Assignments list is served (nbgrader loads at first use)")
