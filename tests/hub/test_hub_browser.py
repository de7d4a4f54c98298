"""A real browser (Debian's Chromium, headless, driven by Playwright) uses the course server:
log in, land in ~/course, open a course notebook, run all its cells, see a plot and a widget;
and an update synced while a notebook is open with unsaved changes never overwrites it silently.

Screenshots go to ``test-artifacts/`` for a person to look at.
"""
import json
import pathlib

import pytest

from tests.hub import hubkit

CHROMIUM = pathlib.Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
UPSTREAM_FIX = "x = 2  # fixed upstream"


def pick_notebook(course_source):
    """The smallest course notebook whose stored outputs show both a plot and a widget."""
    candidates = []
    for path in sorted(course_source.glob("*.ipynb")):
        try:
            text = path.read_text()
            cells = json.loads(text)["cells"]
        except (OSError, ValueError, KeyError):
            continue
        kinds = {key for cell in cells for output in cell.get("outputs", []) for key in output.get("data", {})}
        if "image/png" in kinds and WIDGET_MIME in kinds:
            candidates.append((len(text), path.name))
    return min(candidates)[1] if candidates else None


def wait_for_kernel(page, server_url, path):
    """Wait until the notebook at ``path`` has its kernel, idle, as its server reports it.

    The page's execution indicator says "idle" before any kernel is there, and a notebook
    without its kernel yet drops a Run All (JupyterLab clears the cells instead): the server's
    sessions (``/api/sessions``, with the page's own cookies) are the state to wait on.
    """

    def ready():
        response = page.request.get(f"{server_url}/api/sessions")
        return response.ok and any(
            session["path"] == path and (session.get("kernel") or {}).get("execution_state") == "idle"
            for session in response.json())

    from playwright.sync_api import expect

    hubkit.wait_for(ready, 600, interval=1, what=f"the kernel of {path}, idle")
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached()


def menu_command(page, menu, item):
    """Choose ``menu`` > ``item`` in Notebook 7's menu bar once the item is enabled.

    Waits on states only: the menu open, the item enabled (Lumino marks a command that cannot
    run yet, e.g. before the notebook is the current widget, with ``lm-mod-disabled``), and the
    menu closed again, which shows the click reached the item and the command ran.
    """
    from playwright.sync_api import expect

    page.get_by_role("menuitem", name=menu).first.click()
    entry = page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has_text=item).first
    expect(entry).to_be_visible(timeout=600_000)
    entry.click()
    expect(page.locator(".lm-Menu-item", has_text=item)).to_have_count(0, timeout=600_000)


@pytest.fixture(scope="module")
def browser_notebook(course_source):
    """A course notebook with a plot and a widget (the smallest such)."""
    name = pick_notebook(course_source)
    if name is None:
        pytest.fail("no notebook in notebooks/ has stored outputs with both a plot and a widget")
    return name


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_browser_login_run_notebook_see_plot_and_widget(hub, make_user, course_source, browser_notebook,
                                                        artifacts):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect, sync_playwright

    username, password = make_user("student")
    expect.set_options(timeout=600_000)  # only ends a stuck run: every wait is for a state
    with sync_playwright() as driver:
        # Playwright gives each launch a fresh temporary profile.
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            # The test hub serves HTTPS with a self-signed certificate, as an install does by default.
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, ignore_https_errors=True)
            # Bounds that only end a stuck run; every wait is for a state of the page.
            page.set_default_timeout(600_000)
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", username)
            page.fill("#password_input", password)
            page.click("#login_submit")
            # The hub spawns the server (course sync first), lands on nbgitpuller's page, which
            # syncs the course again and opens Notebook 7's tree.
            page.wait_for_url(f"**/user/{username}/tree/course", timeout=600_000)
            expect(page.get_by_text(browser_notebook).first).to_be_visible()
            page.screenshot(path=str(artifacts / "hub-tree.png"))

            page.goto(f"{hub.url}/user/{username}/notebooks/course/{browser_notebook}")
            expect(page.locator(".jp-Notebook")).to_be_visible()
            # Every wait below is for a state (the kernel idle, a menu item enabled, the prompts),
            # with bounds meant only to end a run that is stuck: a busy machine is slow.
            wait_for_kernel(page, f"{hub.url}/user/{username}", f"course/{browser_notebook}")
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
            texts = lambda: [text.strip() for text in prompts.all_text_contents()]  # noqa: E731
            hubkit.wait_for(texts, 600, what="the notebook's code cells")
            # The notebook comes with stored outputs: clear them, so what shows next is this run's.
            menu_command(page, "Edit", "Clear Outputs of All Cells")
            hubkit.wait_for(lambda: set(texts()) == {"[ ]:"}, 600, what="cleared outputs")
            menu_command(page, "Run", "Run All Cells")
            # Every code cell ran, in order, in this kernel: prompts [1], [2], ... [N].
            try:
                hubkit.wait_for(
                    lambda: texts() == [f"[{number}]:" for number in range(1, len(texts()) + 1)],
                    600, interval=1, what="every cell to run",
                )
            except hubkit.HubError as exc:
                page.screenshot(path=str(artifacts / "hub-notebook-failed.png"))
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                raise AssertionError(
                    f"{exc}; prompts {texts()}; errors {[text[-300:] for text in errors.all_text_contents()]}"
                ) from None
            stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert not [text for text in stderr.all_text_contents() if "Traceback" in text]
            plot = page.locator(".jp-OutputArea-output img").first
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.naturalWidth") > 100
            widget = page.locator(".jp-OutputArea-output .widget-slider, .jp-OutputArea-output .widget-dropdown, "
                                  ".jp-OutputArea-output .jupyter-widgets").first
            try:
                widget.scroll_into_view_if_needed(timeout=300_000)
            except PlaywrightTimeoutError as exc:  # show what is there instead
                page.screenshot(path=str(artifacts / "hub-notebook-failed.png"))
                outputs = page.locator(".jp-OutputArea-output").all_text_contents()
                raise AssertionError(f"no widget rendered ({exc.__class__.__name__}); outputs: "
                                     f"{[text[:200] for text in outputs]}") from None
            expect(widget).to_be_visible()
            page.screenshot(path=str(artifacts / "hub-notebook-widget.png"))
            page.set_viewport_size({"width": 1280, "height": 6000})
            page.screenshot(path=str(artifacts / "hub-notebook-tall.png"))
        finally:
            browser.close()


@pytest.fixture(scope="module")
def update_hub(start_hub, make_course):
    """A hub of this module's own, whose course repository gets a new commit: (hub, source, repo)."""
    source, repo, git_config = make_course("unsaved", notebooks=["hub-check.ipynb"])
    return start_hub(course_repo=repo, git_config_system=git_config), source, repo


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_an_update_never_silently_overwrites_an_open_unsaved_notebook(update_hub, make_user, artifacts):
    from playwright.sync_api import expect, sync_playwright

    hub, source, repo = update_hub
    username, password = make_user("student")
    expect.set_options(timeout=600_000)  # only ends a stuck run: every wait is for a state
    on_disk = hubkit.home_of(username) / "course" / "hub-check.ipynb"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
            context.set_default_timeout(600_000)  # only ends a stuck run; every wait is for a state
            page = context.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", username)
            page.fill("#password_input", password)
            page.click("#login_submit")
            page.wait_for_url(f"**/user/{username}/tree/course")
            page.goto(f"{hub.url}/user/{username}/notebooks/course/hub-check.ipynb")
            wait_for_kernel(page, f"{hub.url}/user/{username}", "course/hub-check.ipynb")
            # The student types into the code cell and does not save. The editor is ready once
            # its language is set (CodeMirror reconfigures then, dropping keys typed before).
            editor = page.locator(".jp-CodeCell .cm-content[data-language='python']").first
            expect(editor).to_be_visible()
            editor.click()
            page.keyboard.press("End")
            page.keyboard.type("  # my unsaved change", delay=50)
            expect(editor).to_contain_text("x = 1  # my unsaved change")

            # The instructors publish a fix of that notebook; the student opens the hub in a second
            # tab (a bookmark of the hub): the landing syncs it to disk, the server kept running.
            hubkit.write_probe_notebook(source / "hub-check.ipynb", UPSTREAM_FIX)
            assert hubkit.publish_course(source, repo, message="Fix x") is not None
            second = context.new_page()
            second.goto(f"{hub.url}/")
            second.wait_for_url(f"**/user/{username}/tree/course")
            assert UPSTREAM_FIX in on_disk.read_text()
            second.close()

            # Back in the first tab, the student saves: Notebook 7 sees the newer file and asks.
            page.bring_to_front()
            editor.click()
            page.keyboard.press("Control+s")
            dialog = page.locator(".jp-Dialog")
            expect(dialog).to_contain_text("File Changed")
            expect(dialog).to_contain_text("has changed on disk since the last time it was opened or saved")
            page.screenshot(path=str(artifacts / "hub-file-changed-dialog.png"))
            assert UPSTREAM_FIX in on_disk.read_text()  # nothing written before the student answers
            # "Overwrite" keeps what the tab shows: the student's version, written to disk.
            dialog.get_by_role("button", name="Overwrite").click()
            hubkit.wait_for(lambda: "my unsaved change" in on_disk.read_text(), 300,
                            what="the tab's version on disk after Overwrite")
        finally:
            browser.close()
