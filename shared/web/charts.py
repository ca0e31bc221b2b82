"""Charts for the admin's pages: SVG drawn on the server by pygal, put into the page as
it is, with the same figures in a table beside it for screen readers and for copying.

The SVG carries no script (pygal adds one for its tooltips, which the pages' Content
Security Policy would refuse anyway) and is hidden from assistive technology: the table
says the same, better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import pygal
from lxml import etree
from markupsafe import Markup
from pygal.style import Style

#: The charts' colours: the site's accent, then colours that stay apart for the common
#: kinds of colour blindness and keep 3:1 against white (WCAG 1.4.11).
COLOURS = ("#00598a", "#b35806", "#542788", "#b00020", "#1b7837")

#: One style for every chart: transparent, so it sits on light and dark pages alike.
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#555",
    foreground_strong="#333",
    foreground_subtle="#8888",
    colors=COLOURS,
    font_family="system-ui, sans-serif",
    label_font_size=12,
    legend_font_size=13,
    title_font_size=15,
)

_SVG = "{http://www.w3.org/2000/svg}"


def _whole_steps(largest: int) -> list[int]:
    """Marks for an axis of counts: whole numbers only, about five to ten of them."""
    step, factor = 1, 1
    while largest / (step * factor) > 10:  # 1, 2, 5, 10, 20, 50, ...
        step, factor = (step, {1: 2, 2: 5}[factor]) if factor < 5 else (step * 10, 1)
    step *= factor
    return list(range(0, largest + step, step))


def _inline(chart: pygal.graph.graph.Graph) -> Markup:
    """The chart as an inline ``<svg>``: no script, no comments, hidden from screen
    readers (the table beside it carries the figures)."""
    root = etree.fromstring(chart.render(is_unicode=True).encode())
    for element in list(root.iter(f"{_SVG}script", etree.Comment)):
        element.getparent().remove(element)
    root.set("aria-hidden", "true")
    root.set("focusable", "false")
    # Escaped by lxml, which built it from the figures and labels: safe to put in a page.
    return Markup(etree.tostring(root, encoding="unicode"))


def _chart(kind: type[pygal.graph.graph.Graph], labels: Sequence[str]) -> pygal.graph.graph.Graph:
    chart = kind(
        js=[],
        disable_xml_declaration=True,
        style=STYLE,
        width=720,
        height=280,
        legend_at_bottom=True,
        legend_at_bottom_columns=4,
        x_label_rotation=0 if len(labels) <= 8 else 45,
        show_minor_x_labels=True,
        print_values=False,
        include_x_axis=True,
        truncate_legend=-1,
    )
    chart.x_labels = list(labels)
    return chart


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[int]]) -> Markup:
    """Bars per label, one colour per series (counts per week, say)."""
    chart = _chart(pygal.Bar, labels)
    for name, values in series.items():
        chart.add(name, list(values))
    chart.y_labels = _whole_steps(max((max(v, default=0) for v in series.values()), default=0))
    return _inline(chart)


def line_chart(labels: Sequence[str], series: dict[str, Sequence[int]]) -> Markup:
    """A line per series over the labels (a total over time, say)."""
    chart = _chart(pygal.Line, labels)
    for name, values in series.items():
        chart.add(name, list(values), show_dots=len(values) <= 30)
    chart.y_labels = _whole_steps(max((max(v, default=0) for v in series.values()), default=0))
    return _inline(chart)


@dataclass(frozen=True)
class Chart:
    """A chart with its figures, as ``templates/_chart.html`` shows it: the SVG, and the
    same figures as a table (one row per label, one column per series)."""

    #: The id of its caption (unique on the page).
    id: str
    caption: str
    #: The heading of the label column (``Week``, ``Issue``).
    label_heading: str
    labels: Sequence[str]
    series: dict[str, Sequence[int]]
    #: ``bar`` or ``line``.
    kind: str = "bar"

    @cached_property
    def svg(self) -> Markup:
        """The chart drawn (once)."""
        draw = line_chart if self.kind == "line" else bar_chart
        return draw(self.labels, self.series)

    def rows(self) -> list[tuple[str, list[int]]]:
        """The table's rows: each label with its value in every series."""
        return [
            (label, [values[n] for values in self.series.values()])
            for n, label in enumerate(self.labels)
        ]
