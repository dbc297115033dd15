"""``api.deps.query_text`` is ``request.url.query`` for every query string, without building
the URL (the signed and market routes read it on every request)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from perpsim.api.deps import query_text

QUERIES = [b"", b"symbol=BTCUSD_PERP", b"a=1&b=2&signature=ab12", b"a=%20b+c", b"a=1#frag",
           b"#", b"a=1\tb", b"a=\r\n1", b"a=1?b=2", b"a==1&&b", b"x=\xc3\xa9", b"a=%23",
           b"path=/x//y", b"a=1;b=2", b"\x01a=1", b"a=1 ", b" a=1", b"a=\\x"]
HOSTS = [b"127.0.0.1", b"localhost:8000", b"[::1]:80", b"example.com", b"bad host?x=#y",
         None]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("query", QUERIES)
def test_query_text_is_the_urls_query(query: bytes, host: bytes | None) -> None:
    headers = [] if host is None else [(b"host", host)]
    for path in ("/dapi/v1/ping", "/a?b#c", "//x"):
        request = Request({"type": "http", "method": "GET", "path": path, "query_string": query,
                           "headers": headers, "server": ("127.0.0.1", 80), "scheme": "http"})
        assert query_text(request) == request.url.query, (query, host, path)


def test_query_text_fails_as_the_url_does_on_bytes_that_are_not_utf8() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"a=\xff",
                       "headers": [], "scheme": "http"})
    with pytest.raises(UnicodeDecodeError):
        _ = request.url.query
    with pytest.raises(UnicodeDecodeError):
        query_text(request)
