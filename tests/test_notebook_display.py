"""Tests of course_lib.notebook_display: the forms a widget's output stores beside the widget."""
import base64

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib.notebook_display import widget_bundle  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_figure():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return fig


def test_bundle_holds_the_widget_a_png_of_the_figure_and_the_sentence():
    slider = ipywidgets.IntSlider(value=3)
    figure = small_figure()
    bundle = widget_bundle(slider, figure, "[A slider: run this cell to use it.]")
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == slider.model_id
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)
    assert bundle["text/plain"] == "[A slider: run this cell to use it.]"
    # the figure is closed: the inline backend must not draw it a second time below the cell
    assert not plt.fignum_exists(figure.number)


@pytest.mark.parametrize("widget, figure, text, message", [
    ("not a widget", "figure", "text", "widget must be an ipywidgets widget, got str"),
    ("widget", 42, "text", "figure must be a matplotlib Figure, got int"),
    ("widget", "figure", "  ", "text must be a non-empty string, got '  '"),
    ("widget", "figure", None, "text must be a non-empty string, got None"),
])
def test_bad_arguments_are_named(widget, figure, text, message):
    real = {"widget": ipywidgets.Button(), "figure": small_figure()}
    widget, figure = real.get(widget, widget), real.get(figure, figure)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        widget_bundle(widget, figure, text)
    plt.close("all")
