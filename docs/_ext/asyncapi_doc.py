"""Render the WebSocket API's AsyncAPI 3 document (``docs/asyncapi.yaml``) as pages of the site.

``.. asyncapi:: asyncapi.yaml`` reads the document when the documentation is built and writes,
for each channel, its handshake (headers, query, close codes), one section per operation (what
the client sends, what the server may answer) and one per message (its payload as a table of
fields, and its examples), then the shared schemas. It is rendered here, offline, rather than by
AsyncAPI's JavaScript tools, so that the reference is searchable and linked with the rest of the
site, and every cross-link it makes is checked by the build.

Descriptions in the document are CommonMark kept to the part that reads the same in reStructured
Text (paragraphs, ``-`` lists, ``**bold**``); a single-backtick `code span` becomes a literal and
a ``## heading`` a rubric.
"""

import json
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from platform_tables import list_table
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

REF_PREFIX = "#/components/"


def _literal_spans(text: str) -> str:
    """CommonMark's `code` as reST's ``code``, leaving ``code`` as it is."""
    return re.sub(r"(?<![`\\])`([^`\n]+)`(?!`)", r"``\1``", text or "")


def _label(kind: str, name: str) -> str:
    return f"asyncapi-{kind}-{name}".lower().replace(".", "-").replace("_", "-")


def _ref_name(ref: str) -> tuple[str, str]:
    """``#/components/schemas/Pickup`` -> ("schemas", "Pickup")."""
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"asyncapi: only local component references are rendered, not {ref!r}")
    kind, name = ref[len(REF_PREFIX) :].split("/", 1)
    return kind, name


class Document:
    """The parsed document, with its references resolved on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = yaml.safe_load(path.read_text())
        self.components = self.data.get("components", {})

    def resolve(self, node: dict) -> dict:
        """Follow ``$ref`` (``#/components/schemas/Pickup``, say) to what it names."""
        while isinstance(node, dict) and "$ref" in node:
            kind, name = _ref_name(node["$ref"])
            node = self.components[kind][name]
        return node

    def message_name(self, reference: dict) -> str:
        """The component name of a message, referenced from an operation (through its channel,
        ``#/channels/<channel>/messages/<key>``) or from a channel."""
        ref = reference["$ref"]
        if ref.startswith("#/channels/"):
            _, channel, _, key = ref[2:].split("/")
            ref = self.data["channels"][channel]["messages"][key]["$ref"]
        return _ref_name(ref)[1]


def describe_type(schema: dict) -> str:
    """A schema's type in a few words of reST: ``string`` or null, :ref:`Pickup <...>`, ..."""
    if "$ref" in schema:
        _, name = _ref_name(schema["$ref"])
        return f":ref:`{name} <{_label('schema', name)}>`"
    if "const" in schema:
        return f"``{json.dumps(schema['const'])}``"
    for combinator, word in (("oneOf", "one of"), ("anyOf", "any of"), ("allOf", "all of")):
        if combinator in schema:
            return f"{word}: " + ", ".join(describe_type(s) for s in schema[combinator])
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "array":
            items = schema.get("items", {})
            words.append(f"array of {describe_type(items)}" if items else "array")
        elif kind == "null":
            continue
        else:
            words.append(f"{kind} ({schema['format']})" if "format" in schema else kind)
    text = " or ".join(words) or "null"
    if "null" in kinds:
        text += " or null"
    return text


def describe_rules(schema: dict) -> str:
    """The constraints a value must meet, in words."""
    rules = []
    if "enum" in schema:
        rules.append("one of " + ", ".join(f"``{json.dumps(v)}``" for v in schema["enum"]))
    for key, word in (
        ("minimum", "at least"),
        ("exclusiveMinimum", "more than"),
        ("maximum", "at most"),
        ("exclusiveMaximum", "less than"),
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if key in schema:
            rules.append(word.format(schema[key]) if "{}" in word else f"{word} {schema[key]}")
    if "pattern" in schema:
        rules.append(f"matches ``{schema['pattern']}``")
    if "default" in schema:
        rules.append(f"default ``{json.dumps(schema['default'])}``")
    return "; ".join(rules)


def field_rows(schema: dict, prefix: str = "") -> list[list[str]]:
    """One row per field of an object schema, nested objects and object lists flattened with
    dotted names (``data.items[].material``); a referenced schema is linked, not expanded."""
    rows = []
    required = set(schema.get("required", []))
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        description = _literal_spans(field.get("description", "")).strip()
        rules = describe_rules(field)
        if rules:
            description = f"{description} ({rules})" if description else rules.capitalize()
        rows.append(
            [f"``{path}``", describe_type(field), "yes" if name in required else "no", description]
        )
        if field.get("properties"):
            rows.extend(field_rows(field, f"{path}."))
        items = field.get("items", {})
        if isinstance(items, dict) and items.get("properties"):
            rows.extend(field_rows(items, f"{path}[]."))
    return rows


def _field_table(rows: list[list[str]]) -> list[str]:
    """The table of a payload's or a schema's fields (rows from :func:`field_rows`)."""
    return list_table([["Field", "Type", "Required", "Meaning"], *rows], [22, 20, 10, 48])


def _heading(text: str, underline: str) -> list[str]:
    return [text, underline * max(len(text), 4), ""]


def _paragraphs(text: str | None) -> list[str]:
    """A description as reST lines: code spans made literal, and a Markdown heading
    (``## Frame rate``) made a rubric, which does not disturb the page's own sections."""
    lines = []
    for line in _literal_spans(text or "").strip().splitlines():
        heading = re.match(r"^#{1,6} +(.+)$", line)
        lines.append(f".. rubric:: {heading[1]}" if heading else line)
    return [*lines, ""] if lines else []


def _json_block(payload) -> list[str]:
    body = json.dumps(payload, indent=2, ensure_ascii=False)
    return [".. code-block:: json", "", *(f"   {line}" for line in body.splitlines()), ""]


class AsyncApiDirective(SphinxDirective):
    """``.. asyncapi:: <path relative to this page>``, with ``:section: <underline chars>`` to
    choose the heading levels the rendered part uses (default ``-~^``)."""

    required_arguments = 1
    option_spec = {"section": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        _, path = self.env.relfn2path(self.arguments[0], self.env.current_document.docname)
        self.env.note_dependency(path)
        if not Path(path).is_file():
            message = f"asyncapi: no such document: {self.arguments[0]}"
            return [self.state.document.reporter.warning(message, line=self.lineno)]
        document = Document(Path(path))
        self.levels = self.options.get("section", "-~^")
        lines = self.render(document)
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=str(path)), container)
        return container.children

    def render(self, doc: Document) -> list[str]:
        top, middle, low = self.levels
        info = doc.data.get("info", {})
        lines = [
            *_heading(
                f"{info.get('title', 'The API')}, version {info.get('version', '')}", self.levels[0]
            ),
            *_paragraphs(info.get("description")),
            *self.servers(doc),
        ]
        rendered: set[str] = set()  # a message shared by both channels is described once
        operations = doc.data.get("operations", {})
        for channel_name, channel in doc.data.get("channels", {}).items():
            lines += [f".. _{_label('channel', channel_name)}:", ""]
            lines += _heading(f"Channel {channel['address']}", top)
            lines += _paragraphs(channel.get("description"))
            lines += self.handshake(channel)
            received = {k: o for k, o in operations.items() if self._on(o, channel_name)}
            lines += _heading("Operations", middle)
            for key, operation in received.items():
                lines += self.operation(doc, key, operation, low)
            lines += _heading("Messages", middle)
            names = [doc.message_name(r) for r in channel.get("messages", {}).values()]
            shared = [name for name in names if name in rendered]
            if shared:
                links = ", ".join(f":ref:`{n} <{_label('message', n)}>`" for n in shared)
                lines += [f"Also on this channel, as described above: {links}.", ""]
            for name in names:
                if name not in rendered:
                    rendered.add(name)
                    lines += self.message(doc, name, low)
        lines += _heading("Schemas", top)
        for name, schema in doc.components.get("schemas", {}).items():
            lines += self.schema(name, schema, middle)
        return lines

    @staticmethod
    def _on(operation: dict, channel_name: str) -> bool:
        return operation.get("channel", {}).get("$ref") == f"#/channels/{channel_name}"

    def servers(self, doc: Document) -> list[str]:
        rows = [
            [
                f"``{name}``",
                f"``{server['protocol']}://{server['host']}``",
                _literal_spans(server.get("description", "")).strip(),
            ]
            for name, server in doc.data.get("servers", {}).items()
        ]
        return [
            *_heading("Servers", self.levels[1]),
            *list_table([["Server", "URL", "Description"], *rows], [15, 35, 50]),
        ]

    def handshake(self, channel: dict) -> list[str]:
        lines = []
        binding = channel.get("bindings", {}).get("ws", {})
        for part, title in (("headers", "Handshake headers"), ("query", "Query parameters")):
            if binding.get(part):
                lines += [f"**{title}**", ""]
                header = ["Name", "Type", "Required", "Meaning"]
                lines += list_table([header, *field_rows(binding[part])], [18, 17, 10, 55])
        codes = channel.get("x-close-codes", [])
        if codes:
            lines += ["**Close codes**", ""]
            rows = [
                [f"``{c['code']}``", c.get("name", ""), _literal_spans(c.get("description", ""))]
                for c in codes
            ]
            lines += list_table([["Code", "Name", "When"], *rows], [10, 20, 70])
        return lines

    def operation(self, doc: Document, key: str, operation: dict, level: str) -> list[str]:
        lines = [f".. _{_label('operation', key)}:", ""]
        name = key.split(".", 1)[-1]
        lines += _heading(f"{operation.get('title') or name} (``{name}``)", level)
        if operation.get("summary"):
            lines += _paragraphs(operation["summary"])
        lines += _paragraphs(operation.get("description"))
        word = "The client sends" if operation["action"] == "receive" else "The server sends"
        lines += [f"{word}: " + self._message_links(doc, operation.get("messages", [])), ""]
        reply = operation.get("reply")
        if reply:
            lines += ["The server answers: " + self._message_links(doc, reply["messages"]), ""]
        return lines

    def _message_links(self, doc: Document, references: list[dict]) -> str:
        names = [doc.message_name(reference) for reference in references]
        return ", ".join(f":ref:`{name} <{_label('message', name)}>`" for name in names)

    def message(self, doc: Document, name: str, level: str) -> list[str]:
        label = _label("message", name)
        message = doc.components["messages"][name]
        lines = [f".. _{label}:", "", *_heading(message.get("title") or name, level)]
        if message.get("summary"):
            lines += _paragraphs(message["summary"])
        lines += _paragraphs(message.get("description"))
        payload = doc.resolve(message.get("payload", {}))
        rows = field_rows(payload)
        if rows:
            lines += _field_table(rows)
        for example in message.get("examples", []):
            caption = example.get("summary") or example.get("name") or "Example"
            lines += [f"{_literal_spans(caption).strip()}:", "", *_json_block(example["payload"])]
        return lines

    def schema(self, name: str, schema: dict, level: str) -> list[str]:
        lines = [f".. _{_label('schema', name)}:", "", *_heading(name, level)]
        lines += _paragraphs(schema.get("description"))
        rows = field_rows(schema)
        if rows:
            lines += _field_table(rows)
        else:
            rules = describe_rules(schema)
            lines += [f"Type: {describe_type(schema)}" + (f"; {rules}." if rules else "."), ""]
        return lines


def setup(app):
    app.add_directive("asyncapi", AsyncApiDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
