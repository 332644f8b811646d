"""Message templates of `email_send` actions: Jinja2 in its sandbox, with a fixed set of fields.

A template sees only the placeholders below, never Python objects, so a campaign's author can
neither reach the server's internals nor run code. An unknown placeholder is an error (found
when the campaign is saved), not a silent empty string in a customer's email.
"""

import functools
import html
import re
from html.parser import HTMLParser

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
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


def looks_like_html(text: str) -> bool:
    """Whether content should go out as HTML (with a plain-text part beside it)."""
    return _HTML_TAG.search(text) is not None


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable template, or None: checked when a campaign is saved."""
    environment = _ENVIRONMENTS[False]
    try:
        parsed = environment.parse(source)
    except TemplateSyntaxError as error:
        return f"template syntax error on line {error.lineno}: {error.message}"
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(TEMPLATE_FIELDS))
    if unknown:
        return (f"unknown placeholder {unknown[0]!r} "
                f"(known: {', '.join(TEMPLATE_FIELDS)})")
    return None


@functools.lru_cache(maxsize=256)
def _compiled(source: str, html_mode: bool):  # type: ignore[no-untyped-def]
    return _ENVIRONMENTS[html_mode].from_string(source)


def render(source: str, fields: dict[str, str], *, html_mode: bool = False) -> str:
    """The template filled in; in HTML mode every placeholder's value is escaped."""
    try:
        return _compiled(source, html_mode).render(fields)
    except TemplateError as error:
        raise MessageTemplateError(f"the message template failed: {error}") from None


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
