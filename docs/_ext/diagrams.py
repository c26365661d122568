"""Diagrams drawn from the code when the documentation is built, rendered by Graphviz.

``.. pickup-state-diagram::`` draws the pickup state machine from ``TRANSITIONS`` in
``pickups/transitions.py``, the table every change of status is looked up in, so the picture
cannot disagree with the code. Graphviz (``dot``) renders it locally as SVG, like every
``.. graphviz::`` block of these pages: the build needs no network.
"""

from docutils import nodes
from sphinx.ext.graphviz import graphviz
from sphinx.util.docutils import SphinxDirective

# Colours by the part a status plays; the legend under the diagram says the same in words.
FILL_WAITING = "#e8f0fe"  # no vendor holds the pickup yet
FILL_HELD = "#fff4d6"  # a vendor holds it (offered to it, or its job)
FILL_DONE = "#e6f4ea"  # completed
FILL_ENDED = "#eeeeee"  # cancelled or expired
# Events that can happen in several statuses are drawn as dashed grey edges, so that the path a
# pickup normally takes stands out.
SIDE_EVENTS = {"cancel", "expire"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def state_machine_dot() -> str:
    """The DOT source of the state diagram: one node per status, one edge per transition."""
    from pickups.transitions import TERMINAL, TRANSITIONS, VENDOR_HELD, Status

    lines = [
        "digraph pickup_states {",
        '  graph [rankdir=TB, bgcolor="white", pad="0.3", nodesep="0.5", ranksep="0.45",'
        ' fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=12,'
        " penwidth=1.2];",
        '  edge [fontname="Helvetica", fontsize=10];',
        '  create [shape=point, width=0.12, label=""];',
    ]
    for status in Status:
        if status == Status.COMPLETED:
            fill = FILL_DONE
        elif status in TERMINAL:
            fill = FILL_ENDED
        elif status in VENDOR_HELD:
            fill = FILL_HELD
        else:
            fill = FILL_WAITING
        shape = ", peripheries=2" if status in TERMINAL else ""
        lines.append(f'  {status.value} [fillcolor="{fill}"{shape}];')
    lines.append(f'  create -> {Status.PENDING.value} [label=" create"];')
    for (source, event), target in TRANSITIONS.items():
        style = (
            ' style=dashed, color="#777777", fontcolor="#555555",' if event in SIDE_EVENTS else ""
        )
        lines.append(f"  {source.value} -> {target.value} [{style} label={_quote(' ' + event)}];")
    # The terminal statuses of the side events sit on one row at the bottom.
    ended = " ".join(status.value for status in Status if status in TERMINAL)
    lines.append(f"  {{ rank=sink; {ended}; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


class PickupStateDiagram(SphinxDirective):
    """The state diagram, drawn from ``TRANSITIONS`` (see the module docstring)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from pickups import transitions

        self.env.note_dependency(transitions.__file__)
        node = graphviz()
        node["code"] = state_machine_dot()
        node["options"] = {"docname": self.env.current_document.docname}
        node["alt"] = "The pickup state machine: every status and the events between them."
        node["align"] = "center"
        return [node]


def setup(app):
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("pickup-state-diagram", PickupStateDiagram)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
