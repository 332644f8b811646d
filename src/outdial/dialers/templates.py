"""Message templates of `email_send` actions: Jinja2 in its sandbox, with a fixed set of fields.

A template sees only the placeholders below, never Python objects, so a campaign's author can
neither reach the server's internals nor run code. An unknown placeholder is an error (found
when the campaign is saved), not a silent empty string in a customer's email.

Only a small part of the language is taken: text, placeholders, a few filters and tests,
`if`/`elif`/`else`, comparisons, `and`/`or`/`not`, `~`, `+` and `-`; and a template is at most
MAX_TEMPLATE_CHARS long, with at most MAX_PLACEHOLDERS placeholders. So checking one is cheap,
and a message is at most MAX_PLACEHOLDERS times a field's length (rendering stops past
MAX_MESSAGE_CHARS): the sandbox alone would let `{% for %}` loops nest, `'x' * 10**9`
allocate, `lipsum(10**8)` or `center(10**9)` run, on the event loop that serves the API too.
"""

import functools
import html
import re
from html.parser import HTMLParser

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

# name, detail, data: the target's; target_name and destination: the address emailed;
# outdial_data: the outdial's data.
TEMPLATE_FIELDS = ("name", "detail", "data", "target_name", "destination", "outdial_data")

_ENVIRONMENTS = {
    # keep_trailing_newline: the text arrives exactly as written.
    html_mode: SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=html_mode, keep_trailing_newline=True
    )
    for html_mode in (False, True)
}
_HTML_TAG = re.compile(
    r"<\s*(html|body|p|br|div|span|a|b|i|u|em|strong|table|tr|td|ul|ol|li|h[1-6]|img|hr)\b",
    re.IGNORECASE,
)


class MessageTemplateError(Exception):
    """A template that cannot be rendered: bad syntax, unknown placeholder, sandbox refusal."""


MAX_TEMPLATE_CHARS = 65536
MAX_PLACEHOLDERS = 200  # uses of the fields, in all
MAX_MESSAGE_CHARS = 1024 * 1024
# The tags ({{ … }}, {% … %}) and what they hold, measured before the template is parsed: a
# template of many tags, or of long expressions, is refused before it costs a parse.
_MAX_TAGS = 2 * MAX_PLACEHOLDERS
MAX_TAG_CHARS = 8192
_TAG = re.compile(r"\{[{%].*?[}%]\}", re.DOTALL)
ALLOWED_TESTS = ("defined", "undefined", "none", "number", "string", "eq", "ne", "lt", "le",
                 "gt", "ge", "in", "lower", "upper", "odd", "even", "divisibleby")


# The parts of the language a message template may use: each costs at most its operands' size.
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.CondExpr, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And,
    nodes.Or, nodes.Not, nodes.Concat, nodes.Add, nodes.Sub, nodes.Neg, nodes.Pos,
    nodes.Keyword, nodes.Tuple, nodes.List,  # a filter's named argument; `in ('a', 'b')`
)
ALLOWED_FILTERS = ("default", "d", "upper", "lower", "title", "capitalize", "trim", "truncate",
                   "striptags", "escape", "e", "length", "string", "int", "float", "round",
                   "abs")
# What each refused part is called in a template, for the error.
_TAGS = {nodes.For: "{% for %}", nodes.Macro: "{% macro %}", nodes.CallBlock: "{% call %}",
         nodes.Assign: "{% set %}", nodes.AssignBlock: "{% set %}", nodes.Call: "a call ()",
         nodes.Getattr: "an attribute (.)", nodes.Getitem: "an item ([])", nodes.Mul: "*",
         nodes.Div: "/", nodes.FloorDiv: "//", nodes.Mod: "%", nodes.Pow: "**"}


def _unsupported(parsed: nodes.Template) -> str | None:
    """What in a parsed template is outside the part of the language taken, or None."""
    pending: list[nodes.Node] = [parsed]
    while pending:
        node = pending.pop()
        if not isinstance(node, _ALLOWED_NODES):
            what = _TAGS.get(type(node), f"{type(node).__name__.lower()}")
            return (f"{what} is not supported in message templates (they take placeholders, "
                    "if/elif/else, comparisons, and/or/not, ~, + and -, and the filters "
                    f"{', '.join(ALLOWED_FILTERS)})")
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            return (f"the filter {node.name!r} is not supported in message templates "
                    f"(supported: {', '.join(ALLOWED_FILTERS)})")
        if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
            return (f"the test {node.name!r} is not supported in message templates "
                    f"(supported: {', '.join(ALLOWED_TESTS)})")
        pending.extend(node.iter_child_nodes())
    if (uses := sum(1 for _ in parsed.find_all(nodes.Name))) > MAX_PLACEHOLDERS:
        return f"uses its placeholders {uses} times; at most {MAX_PLACEHOLDERS}"
    return None


def looks_like_html(text: str) -> bool:
    """Whether content should go out as HTML (with a plain-text part beside it)."""
    return _HTML_TAG.search(text) is not None


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable template, or None: checked when a campaign is saved."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return f"is {len(source)} characters long; at most {MAX_TEMPLATE_CHARS}"
    if (tags := source.count("{{") + source.count("{%")) > _MAX_TAGS:
        return f"has {tags} {{{{ }}}} and {{% %}} tags; at most {_MAX_TAGS}"
    if (held := sum(len(tag) for tag in _TAG.findall(source))) > MAX_TAG_CHARS:
        return f"its {{{{ }}}} and {{% %}} tags hold {held} characters; at most {MAX_TAG_CHARS}"
    environment = _ENVIRONMENTS[False]
    try:
        parsed = environment.parse(source)
    except TemplateSyntaxError as error:
        return f"template syntax error on line {error.lineno}: {error.message}"
    if problem := _unsupported(parsed):
        return problem
    try:
        declared = meta.find_undeclared_variables(parsed)
    except TemplateError as error:  # what only compiling finds
        return f"the template cannot be compiled: {error}"
    unknown = sorted(declared - set(TEMPLATE_FIELDS))
    if unknown:
        return (f"unknown placeholder {unknown[0]!r} "
                f"(known: {', '.join(TEMPLATE_FIELDS)})")
    return None


@functools.lru_cache(maxsize=256)
def _compiled(source: str, html_mode: bool):  # type: ignore[no-untyped-def]
    # A template stored before a rule of template_problem existed is held to it here.
    if problem := template_problem(source):
        raise MessageTemplateError(f"the message template cannot be used: {problem}")
    return _ENVIRONMENTS[html_mode].from_string(source)


def render(source: str, fields: dict[str, str], *, html_mode: bool = False) -> str:
    """The template filled in; in HTML mode every placeholder's value is escaped."""
    parts: list[str] = []
    length = 0
    try:
        for part in _compiled(source, html_mode).generate(fields):
            length += len(part)
            if length > MAX_MESSAGE_CHARS:
                raise MessageTemplateError(
                    f"the message would be longer than {MAX_MESSAGE_CHARS} characters")
            parts.append(part)
    except MessageTemplateError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a field's value made of it: said
        # E.g. `{{ data|int + 'x' }}`: a template that saved fine fails on one target's data.
        raise MessageTemplateError(f"the message template failed: {error}") from None
    return "".join(parts)


class _TextOfHtml(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """A readable plain-text rendering of HTML, for the text part beside it."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in html.unescape("".join(parser.parts)).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
