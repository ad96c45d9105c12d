"""A browser-like client of the web portal for HTTP-level tests: its own cookie jar,
forms posted with the page's CSRF token, and a small HTML tree to query by id and
attribute (the standard library's parser: pages are ours and well formed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    parts: list[str | Element] = field(default_factory=list)

    @property
    def text(self) -> str:
        out: list[str] = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else part.text)
        return "".join(out)

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str | None) -> list[Element]:
        """Descendants (and self) of `tag` whose attributes equal `attrs` (None: present);
        `class_` matches one of the classes."""
        found = []
        for element in self.walk():
            if tag is not None and element.tag != tag:
                continue
            ok = True
            for key, value in attrs.items():
                name = "class" if key == "class_" else key.replace("_", "-")
                have = element.attrs.get(name)
                if name == "class" and value is not None:
                    ok = ok and have is not None and value in have.split()
                elif value is None:
                    ok = ok and have is not None
                else:
                    ok = ok and have == value
            if ok:
                found.append(element)
        return found

    def by_id(self, id_: str) -> Element | None:
        found = self.find_all(id=id_)
        return found[0] if found else None

    def get(self, id_: str) -> Element:
        found = self.by_id(id_)
        assert found is not None, f"no element id={id_}"
        return found


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v if v is not None else "" for k, v in attrs})
        parent = self.stack[-1]
        parent.children.append(element)
        parent.parts.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v if v is not None else "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.stack[-1].parts.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse_html(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


@dataclass
class Page:
    status: int
    url: str
    headers: Mapping[str, str]
    text: str
    cookies: list[SimpleCookie]

    @property
    def html(self) -> Element:
        return parse_html(self.text)

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def csrf(self, form_id: str | None = None) -> str:
        """The csrf_token of the form `form_id` (any form when None)."""
        root = self.html
        scope = root.get(form_id) if form_id else root
        inputs = scope.find_all("input", name="csrf_token")
        assert inputs, f"no csrf_token in {form_id or 'the page'}"
        return inputs[0].attrs["value"]


class PortalClient:
    """One browser: cookies kept across requests (loopback addresses included)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> PortalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Page:
        kwargs.setdefault("allow_redirects", False)
        async with self.http.request(method, self.url + path, **kwargs) as r:
            cookies = [SimpleCookie(v) for v in r.headers.getall("Set-Cookie", [])]
            return Page(r.status, str(r.url), r.headers, await r.text(), cookies)

    async def get(self, path: str, **kwargs: Any) -> Page:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, data: Mapping[str, str], **kwargs: Any) -> Page:
        return await self.request("POST", path, data=dict(data), **kwargs)

    async def submit(
        self, page_path: str, form_id: str, data: Mapping[str, str], action: str | None = None
    ) -> Page:
        """Open `page_path`, then post `data` to its form `form_id` with the form's CSRF
        token (and its hidden fields), as a browser would."""
        page = await self.get(page_path)
        assert page.status == 200, (page.status, page.text[:2000])
        form = page.html.get(form_id)
        fields = {
            i.attrs["name"]: i.attrs.get("value", "")
            for i in form.find_all("input", type="hidden")
            if "name" in i.attrs
        }
        return await self.post(action or form.attrs["action"], {**fields, **data})

    async def sign_in(
        self, tenant: str, username: str, password: str, kind: str = "sp", next_path: str = ""
    ) -> Page:
        path = "/portal/sign-in" + (f"?next={next_path}" if next_path else "")
        return await self.submit(
            path,
            "sign-in",
            {"kind": kind, "tenant": tenant, "username": username, "password": password},
        )
