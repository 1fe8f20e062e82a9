"""appc meta discovery (``spec/discovery.md``): the pure parts, and the walk over a ``get`` callable.

For ``example.com/a/b`` nspod asks ``https://example.com/a/b?ac-discovery=1``, then the parent
paths, until a page has ``<meta name="ac-discovery" content="PREFIX TEMPLATE">`` for a prefix of
the name. Templates are filled from the name and labels; ones left with a ``{…}`` are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser

from stage0.errors import Error, ErrorKind

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class DiscoveryError(Error):
    kind = ErrorKind.UNAVAILABLE
    hint = "check the name, or fetch by URL; with --debug every address tried is logged"


@dataclass(slots=True)
class Endpoints:
    acis: list[tuple[str, str]] = field(default_factory=list)  # (ACI URL, signature URL)
    keys: list[str] = field(default_factory=list)
    key_prefix: str | None = None  # the prefix the page announced its keys for


class _MetaParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        values = dict(attrs)
        name, content = values.get("name") or "", values.get("content") or ""
        prefix, _, url = content.strip().partition(" ")
        if name.startswith("ac-") and prefix and url.strip():
            self.tags.append((name, prefix, url.strip()))


def parse_meta(html: str) -> list[tuple[str, str, str]]:
    """(meta name, prefix, URL or template) for every ``ac-…`` meta tag."""
    parser = _MetaParser()
    parser.feed(html)
    parser.close()
    return parser.tags


def render_template(template: str, name: str, labels: Mapping[str, str], ext: str) -> str | None:
    values = {**labels, "name": name, "ext": ext}
    url = _PLACEHOLDER.sub(lambda m: values.get(m.group(0)[1:-1], m.group(0)), template)
    return None if _PLACEHOLDER.search(url) else url


def walk(name: str) -> list[str]:
    """``example.com/a/b`` → the name, then each parent path, down to the host."""
    parts = name.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def endpoints_from(html: str, name: str, labels: Mapping[str, str]) -> Endpoints:
    found = Endpoints()
    for meta, prefix, template in parse_meta(html):
        if not name.startswith(prefix):
            continue
        if meta == "ac-discovery":
            aci = render_template(template, name, labels, "aci")
            asc = render_template(template, name, labels, "aci.asc")
            if aci and asc:
                found.acis.append((aci, asc))
        elif meta == "ac-discovery-pubkeys":
            found.keys.append(template)
            if found.key_prefix is None:
                found.key_prefix = prefix
    return found


def discover(
    name: str, labels: Mapping[str, str], get: Callable[[str], str], *, want_keys: bool = False
) -> Endpoints:
    """Walk up ``name`` until a page yields ACI endpoints (or key URLs, with ``want_keys``).

    ``get(url)`` returns the page body, or raises an :class:`Error` saying why there is none (TLS,
    connection refused, HTTP 404 …); the walk goes on, and the error names every step's reason.
    """
    labels = {"version": "latest", **labels}
    reasons: dict[str, None] = {}  # in order, each once (a host that is down fails every step alike)
    failures: list[Error] = []
    steps = walk(name)
    for path in steps:
        url = f"https://{path}?ac-discovery=1"
        try:
            page = get(url)
        except Error as error:
            reasons[error.message] = None
            failures.append(error)
            continue
        found = endpoints_from(page, name, labels)
        if found.keys if want_keys else found.acis:
            return found
        reasons[f"no ac-discovery entry for {name} at {url}"] = None
    what = "public keys" if want_keys else "image"
    # no page answered at all: what to do is what the (first) failure says, e.g. the TLS hint
    hint = failures[0].hint if len(failures) == len(steps) else None
    raise DiscoveryError(f"discovery found no {what} for {name}: {'; '.join(reasons)}", hint=hint)
