"""Widgets that show something useful before their cell has run.

A notebook draws a widget only from a kernel that holds it: when a student opens a notebook,
its stored widget outputs have no kernel behind them (Notebook 7 ignores the widget state a
file may carry), and an output from a file nobody has trusted may only use the "safe" forms,
a picture or plain text. So a widget's output stores, beside the widget, a picture of its first
setting and a sentence: the notebook shows the picture until the cell runs, then the widget.
"""
import base64
import io

__all__ = ["widget_bundle", "display_widget"]


def widget_bundle(widget, figure, text):
    """The display bundle of ``widget``, with a picture of ``figure`` and ``text`` beside it.

    Parameters
    ----------
    widget : ipywidgets.Widget
        What the notebook shows once the cell has run.
    figure : matplotlib.figure.Figure
        What it shows before: typically the widget's first setting. It is rendered to PNG
        and closed, so it is not drawn a second time below the cell.
    text : str
        The plain-text form, for a front end that shows neither widgets nor pictures; say
        what the widget is and that running the cell brings it.

    Returns
    -------
    dict
        A MIME bundle for ``IPython.display.display(bundle, raw=True)``: the widget's own
        forms, ``"image/png"`` (base64 text) and ``"text/plain"``.

    Raises
    ------
    ValueError
        If ``widget`` is not a widget, ``figure`` not a matplotlib figure, or ``text`` not a
        non-empty string.
    """
    if not hasattr(widget, "_repr_mimebundle_"):
        raise ValueError(f"widget must be an ipywidgets widget, got {type(widget).__name__}")
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise ValueError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    import matplotlib.pyplot as plt

    png = io.BytesIO()
    figure.savefig(png, format="png", bbox_inches="tight")
    plt.close(figure)
    bundle = dict(widget._repr_mimebundle_())
    bundle["image/png"] = base64.b64encode(png.getvalue()).decode("ascii")
    bundle["text/plain"] = text
    return bundle


def display_widget(widget, figure, text):
    """Display ``widget`` below the cell with the picture and text of :func:`widget_bundle`.

    Parameters
    ----------
    widget, figure, text
        As in :func:`widget_bundle`.
    """
    from IPython.display import display

    display(widget_bundle(widget, figure, text), raw=True)
