"""Compressed responses: Brotli or gzip for text bodies (JSON, HTML, CSS, JS, SVG), never for
the event stream.

What is compressed: a body of at least ``MIN_LENGTH`` bytes (or a streaming one) of a text
type (``COMPRESSIBLE``), without a ``Content-Encoding`` already. ``text/event-stream`` never
is: each event must reach the client the moment it is sent, and a compressor holds bytes back
until it has a block (``/api/events``, docs/api.md). Everything else (images, spreadsheets,
archives, uploads being downloaded) goes out as it is.

Which coding: the client's ``Accept-Encoding`` (q-values honoured; ``q=0`` refuses).
``br`` when the client takes it, the `brotli` package is installed, and the request carries
no credentials (no session cookie, no ``Authorization``); otherwise ``gzip`` when the client
takes it, with Django's random padding (``GZipMiddleware.max_random_bytes``); otherwise
none. Every response that could have been compressed says ``Vary: Accept-Encoding``.

Why not Brotli for a signed-in user (BREACH, docs/security.md): a compressed body that
holds a secret and text an attacker chooses leaks the secret through its length. Django's
gzip pads each response with 0 to 100 random bytes (a filename in the gzip header), which
drowns that signal; Brotli has no place for such padding. A request without credentials
gets nothing secret back (the CSRF token in a form is masked afresh for every response), so
Brotli's smaller bodies go to the anonymous public API and storefront, where the traffic is.

A strong ``ETag`` becomes weak on a compressed response (RFC 9110 8.8.1), as Django's own
middleware does; the APIs compare ``If-None-Match`` weakly, so a 304 still comes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from gzip import GzipFile
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.text import StreamingBuffer, compress_sequence, compress_string

try:
    import brotli
except ImportError:  # not installed: gzip only
    brotli = None

MIN_LENGTH = 200  # bytes: below this, the headers cost more than compression saves
BROTLI_QUALITY = 5  # 0-11: 11 is for static files; 4-6 is the usual choice on the fly
COMPRESSIBLE = re.compile(
    r"(?:text/(?!event-stream\b)[\w.+-]+"
    r"|application/(?:json|javascript|xml|[\w.+-]+\+(?:json|xml))"
    r"|image/svg\+xml)\s*(?:;|$)",
    re.IGNORECASE,
)
_CODING = re.compile(r"^\s*([\w*.+-]+)\s*(?:;\s*q\s*=\s*([^\s;,]*))?")


def accepted(header: str) -> dict[str, float]:
    """``Accept-Encoding`` as coding → q (1 when not given; 0 for a malformed q)."""
    found: dict[str, float] = {}
    for item in header.split(","):
        match = _CODING.match(item)
        if match:
            try:
                q = float(match[2]) if match[2] is not None else 1.0
            except ValueError:
                q = 0.0
            found[match[1].lower()] = q
    return found


def credentials(request: HttpRequest) -> bool:
    """Whether the request could get a per-user secret back (signed in, or a token)."""
    return settings.SESSION_COOKIE_NAME in request.COOKIES or "Authorization" in request.headers


def choose(request: HttpRequest) -> str | None:
    """The coding for this request's response: "br", "gzip" or None."""
    given = accepted(request.headers.get("Accept-Encoding", ""))

    def q(coding: str) -> float:
        return given.get(coding, given.get("*", 0.0))

    if brotli is not None and q("br") > 0 and not credentials(request):
        return "br"
    if q("gzip") > 0:
        return "gzip"
    return None


def _brotli_sequence(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = brotli.Compressor(quality=BROTLI_QUALITY)
    for chunk in chunks:
        # flush(): what was produced reaches the client now, not when a block is full
        if out := compressor.process(chunk) + compressor.flush():
            yield out
    yield compressor.finish()


async def _brotli_async(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    compressor = brotli.Compressor(quality=BROTLI_QUALITY)
    async for chunk in chunks:
        if out := compressor.process(chunk) + compressor.flush():
            yield out
    yield compressor.finish()


async def _gzip_async(chunks: AsyncIterator[bytes], max_random_bytes: int) -> AsyncIterator[bytes]:
    """``compress_sequence`` for an async body: one gzip stream (its header padded with a
    random-length file name, as Django's), flushed after every chunk."""
    buffer = StreamingBuffer()
    name = b"a" * secrets.randbelow(max_random_bytes)
    with GzipFile(filename=name, mode="wb", compresslevel=6, fileobj=buffer, mtime=0) as zfile:
        async for chunk in chunks:
            zfile.write(chunk)
            zfile.flush()
            yield buffer.read()
    yield buffer.read()


class CompressionMiddleware(GZipMiddleware):
    """Django's ``GZipMiddleware`` (its random padding included) plus Brotli, content-type
    negotiation and the event stream left alone; see the module's docstring."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        if (
            not COMPRESSIBLE.match(response.get("Content-Type", ""))
            or response.has_header("Content-Encoding")
            or (not response.streaming and len(response.content) < MIN_LENGTH)
        ):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        coding = choose(request)
        if coding is None:
            return response
        if coding == "gzip":
            return self._gzip(response)
        return self._brotli(response)

    def _gzip(self, response: Any) -> Any:
        if response.streaming and not response.is_async:
            response.streaming_content = compress_sequence(
                response.streaming_content, max_random_bytes=self.max_random_bytes
            )
            del response.headers["Content-Length"]
            return self._encoded(response, "gzip")
        if response.streaming:
            response.streaming_content = _gzip_async(
                response.streaming_content, self.max_random_bytes
            )
            del response.headers["Content-Length"]
            return self._encoded(response, "gzip")
        compressed = compress_string(response.content, max_random_bytes=self.max_random_bytes)
        if len(compressed) >= len(response.content):
            return response
        response.content = compressed
        response.headers["Content-Length"] = str(len(compressed))
        return self._encoded(response, "gzip")

    def _brotli(self, response: Any) -> Any:
        if response.streaming:
            response.streaming_content = (
                _brotli_async(response.streaming_content)
                if response.is_async
                else _brotli_sequence(response.streaming_content)
            )
            del response.headers["Content-Length"]
            return self._encoded(response, "br")
        compressed = brotli.compress(response.content, quality=BROTLI_QUALITY)
        if len(compressed) >= len(response.content):
            return response
        response.content = compressed
        response.headers["Content-Length"] = str(len(compressed))
        return self._encoded(response, "br")

    @staticmethod
    def _encoded(response: Any, coding: str) -> Any:
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = coding
        return response
