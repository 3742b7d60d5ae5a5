"""Read console pages as a user's browser would: parse the markup (Python's html.parser) into
elements, find them by a small CSS-selector subset, and read their attributes and visible text.

Tests assert on what the page says and which controls it has, not on how the template spells it:
attribute order, quoting, whitespace and entity escaping do not matter here.

    page = parse(response)                       # a response, or the markup as a str
    page.select("td.name a")                     # every match, in document order
    page.one('[data-count="PAUSED"]')            # exactly one, or the test fails saying so
    page.first("a[rel=next]")                    # the first, or None
    element.text                                 # its text, entities decoded, whitespace kept
    element.attrs["href"], "disabled" in element.attrs, element.classes

Selectors: tag, #id, .class, [attr], [attr=value] (value quoted or bare), combined in one compound
(`button.danger[disabled]`), with descendant (` `) and child (` > `) combinators.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# An open element of the first kind is closed by a new start tag of any kind in the second.
IMPLIED_END = {
    "p": {"p", "div", "ul", "ol", "dl", "table", "form", "pre", "section", "h1", "h2", "h3", "h4", "h5", "h6"},
    "li": {"li"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
    "option": {"option", "optgroup"},
    "tr": {"tr"},
    "td": {"td", "th", "tr"},
    "th": {"td", "th", "tr"},
}


class Element:
    def __init__(self, tag: str, attrs: list[tuple[str, str | None]], parent: Element | None):
        self.tag = tag
        self.attr_list = attrs  # as written, duplicates kept
        self.attrs: dict[str, str] = {name: "" if value is None else value for name, value in attrs}
        self.parent = parent
        self.children: list[Element | str] = []

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    @property
    def id(self) -> str | None:
        return self.attrs.get("id")

    @property
    def text(self) -> str:
        """Every piece of text inside, in order, entities decoded (no whitespace folding)."""
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    @property
    def own_text(self) -> str:
        """Only the text directly inside (not that of child elements), folded and trimmed."""
        return " ".join("".join(child for child in self.children if isinstance(child, str)).split())

    @property
    def words(self) -> str:
        """The text with runs of whitespace folded to one space and the ends trimmed."""
        return " ".join(self.text.split())

    @property
    def elements(self) -> list[Element]:
        """The child elements (no text nodes)."""
        return [child for child in self.children if isinstance(child, Element)]

    def descendants(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.descendants()

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def select(self, selector: str) -> list[Element]:
        steps = _parse_selector(selector)
        return [element for element in self.descendants() if _matches_path(element, steps, self)]

    def first(self, selector: str) -> Element | None:
        found = self.select(selector)
        return found[0] if found else None

    def one(self, selector: str) -> Element:
        found = self.select(selector)
        assert len(found) == 1, f"expected one {selector!r}, found {len(found)}"
        return found[0]

    def texts(self, selector: str) -> list[str]:
        """The folded text of every match."""
        return [element.words for element in self.select(selector)]

    def closest(self, selector: str) -> Element | None:
        steps = _parse_selector(selector)
        for node in [self, *self.ancestors()]:
            if node.tag != "#document" and _matches_path(node, steps, None):
                return node
        return None

    def __repr__(self) -> str:
        shown = " ".join(f'{name}="{value}"' for name, value in self.attrs.items())
        return f"<{self.tag}{' ' + shown if shown else ''}>"


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", [], None)
        self.open: list[Element] = [self.root]

    def handle_starttag(self, tag, attrs):
        current = self.open[-1]
        if tag in IMPLIED_END.get(current.tag, ()):
            self.open.pop()
        element = Element(tag, attrs, self.open[-1])
        self.open[-1].children.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        element = Element(tag, attrs, self.open[-1])
        self.open[-1].children.append(element)

    def handle_endtag(self, tag):
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return
        # a stray end tag (or one of a void element): ignored, as a browser would

    def handle_data(self, data):
        self.open[-1].children.append(data)


def parse(page) -> Element:
    """The document of a response (its body as text) or of markup given as a str."""
    markup = page if isinstance(page, str) else page.get_data(as_text=True)
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


_TOKEN = re.compile(
    r"""\s*(>)\s*"""                                     # child combinator
    r"""|(\s+)"""                                        # descendant combinator
    r"""|([a-zA-Z][a-zA-Z0-9-]*|\*)"""                   # tag
    r"""|\#([\w-]+)"""                                   # id
    r"""|\.([\w-]+)"""                                   # class
    r"""|\[\s*([\w:-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\]\s]+))\s*)?\]"""  # [attr] or [attr=value]
)


def _parse_selector(selector: str) -> list[tuple[str, dict]]:
    """[(combinator, compound), …], the combinator leading to each compound ('' for the first)."""
    steps: list[tuple[str, dict]] = []
    combinator = ""
    compound: dict | None = None
    position = 0
    selector = selector.strip()
    while position < len(selector):
        match = _TOKEN.match(selector, position)
        if not match or match.end() == position:
            raise ValueError(f"unsupported selector {selector!r} at {position}")
        position = match.end()
        child, space, tag, id_, class_, attr, dq, sq, bare = match.groups()
        if child or space:
            if compound is not None:
                steps.append((combinator, compound))
                compound = None
                combinator = " "
            if child:
                combinator = ">"
            continue
        if compound is None:
            compound = {"tag": None, "id": None, "classes": [], "attrs": []}
        if tag:
            compound["tag"] = None if tag == "*" else tag.lower()
        elif id_:
            compound["id"] = id_
        elif class_:
            compound["classes"].append(class_)
        else:
            value = dq if dq is not None else sq if sq is not None else bare
            compound["attrs"].append((attr.lower(), value))
    if compound is None:
        raise ValueError(f"empty selector {selector!r}")
    steps.append((combinator, compound))
    return steps


def _matches(element: Element, compound: dict) -> bool:
    if compound["tag"] and element.tag != compound["tag"]:
        return False
    if compound["id"] and element.attrs.get("id") != compound["id"]:
        return False
    if any(name not in element.classes for name in compound["classes"]):
        return False
    for name, value in compound["attrs"]:
        if name not in element.attrs or (value is not None and element.attrs[name] != value):
            return False
    return True


def _matches_path(element: Element, steps: list[tuple[str, dict]], scope: Element | None) -> bool:
    """Does element match the last step, with its ancestors (inside scope) matching the ones before?"""
    combinator, compound = steps[-1]
    if not _matches(element, compound):
        return False
    if len(steps) == 1:
        return True
    ancestors = []
    for node in element.ancestors():
        if node is scope or node.tag == "#document":
            break
        ancestors.append(node)
    candidates = ancestors[:1] if combinator == ">" else ancestors
    return any(_matches_path(candidate, steps[:-1], scope) for candidate in candidates)


def csrf_token_of(page) -> str:
    """The CSRF token a console page's forms post (the value of the first csrf_token field)."""
    field = parse(page).first('input[name="csrf_token"]')
    assert field is not None and field.attrs.get("value"), "the page has no csrf_token field"
    return field.attrs["value"]
