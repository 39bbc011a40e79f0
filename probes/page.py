"""The `page` probe kind: an HTML page and its same-origin assets, timed like a first visit.

Why not the `http` kind: users wait for the stylesheets, scripts and images too, and the
PrimeTrade target is "page load time < 2 s". This kind fetches the HTML, finds what a
browser loads before its `load` event, and fetches the same-origin assets concurrently,
`concurrency` (6, a browser's per-host limit) at a time. It runs no JavaScript; the
`browser` kind does. Cross-origin assets (CDNs, analytics) are skipped: they are someone
else's SLO and would make this one flaky. Lazy images are not fetched and a failed icon or
preload does not fail the page, because browsers do not wait for them or show the failure.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
from pydantic import Field

from monitor.units import ByteSize, Duration
from probes.base import (
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.http import TlsOptions
from probes.http_client import HttpClientPool
from probes.http_fetch import FetchFailed, classify_transport_error, fetch
from probes.urls import HttpUrlStr, origin, redact_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_DETAIL_CHARS = 300
_THREAD_PARSE_CHARS = 64 * 1024  # bigger pages parse in a thread: 2 MiB takes ~0.7 s of CPU
_OPTIONAL_RELS = frozenset({"preload", "modulepreload", "icon", "apple-touch-icon"})
_HTML_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
_INERT_TAGS = frozenset({"noscript", "template"})  # their content is never loaded


class PageExpect(StrictModel):
    """What a good page load looks like; every condition must hold."""

    status: list[int] | None = Field(default=None, description="accepted HTML codes; default 2xx")
    assets_must_load: bool = True
    max_load_time: Duration | None = None

    def status_ok(self, code: int) -> bool:
        return code in self.status if self.status else 200 <= code < 300


class PageTarget(TargetConfig):
    """A web page probed with its HTML and the same-origin assets it references."""

    type: Literal["page"] = "page"
    timeout: Duration = 15.0
    url: HttpUrlStr
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsOptions = Field(default_factory=TlsOptions)
    expect: PageExpect = Field(default_factory=PageExpect)
    max_assets: int = Field(default=50, ge=0, le=500)
    max_asset_bytes: ByteSize = Field(default=5 * 1024 * 1024, gt=0)
    max_body: ByteSize = Field(default=2 * 1024 * 1024, gt=0)
    concurrency: int = Field(default=6, ge=1, le=64)
    keepalive: bool = False

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        return Signals(values=frozenset({
            "html_seconds", "page_load_seconds", "assets", "assets_skipped",
            "slowest_asset_seconds", "page_bytes"}))


@dataclass(frozen=True, slots=True)
class Asset:
    """A sub-resource to fetch; optional ones (preloads, icons) may fail without harm."""

    url: str
    required: bool = True


class _AssetFinder(HTMLParser):
    """Collects asset references in document order; tolerant of broken markup by design."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.found: list[tuple[str, bool]] = []
        self._inert = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INERT_TAGS:
            self._inert += 1
            return
        if self._inert:
            return
        attr: dict[str, str] = {}
        for name, value in attrs:  # browsers keep the first of duplicated attributes
            if value is not None:
                attr.setdefault(name, value.strip())
        if tag == "base":
            if self.base is None and attr.get("href"):
                self.base = attr["href"]
        elif tag == "link":
            rels = set(attr.get("rel", "").lower().split())
            if "stylesheet" in rels and "alternate" not in rels:
                self._add(attr.get("href"), required=True)
            elif rels & _OPTIONAL_RELS:
                self._add(attr.get("href"), required=False)
        elif tag == "script":
            self._add(attr.get("src"), required=True)
        elif tag == "img" and attr.get("loading", "").lower() != "lazy":
            self._add(attr.get("src"), required=True)
            candidates = attr.get("srcset", "").split(",")[0].split()
            if candidates:
                self._add(candidates[0], required=True)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INERT_TAGS and self._inert:
            self._inert -= 1

    def _add(self, ref: str | None, *, required: bool) -> None:
        if ref:
            self.found.append((ref, required))


def find_assets(html: str, document_url: str, limit: int) -> tuple[list[Asset], int]:
    """Same-origin assets of a page, deduplicated, in document order and capped at `limit`;
    also returns how many references were skipped (other origin, invalid, over the cap)."""
    finder = _AssetFinder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # html.parser may still choke on some markup: keep what was found
        log.debug("HTML parsing stopped early for %s", redact_url(document_url))
    base = urljoin(document_url, finder.base) if finder.base else document_url
    home = origin(document_url)
    wanted: dict[str, bool] = {}
    skipped = 0
    for ref, required in finder.found:
        url = urldefrag(urljoin(base, ref)).url
        if home is None or origin(url) != home or not _valid(url):
            skipped += 1
        else:  # preloaded, then used as a stylesheet: it is required
            wanted[url] = wanted.get(url, False) or required
    assets = [Asset(url, required) for url, required in wanted.items()]
    return assets[:limit], skipped + max(0, len(assets) - limit)


def _valid(url: str) -> bool:
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return True


def _path(url: str) -> str:
    """The path of a URL, without the query string, which may carry tokens or cache busters."""
    return urlsplit(url).path or "/"


def join_capped(items: list[str], limit: int = _DETAIL_CHARS) -> str:
    """Comma-joined items within `limit` characters, saying how many were left out."""
    text = ", ".join(items)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for item in items:
        more = f" (+{len(items) - len(kept) - 1} more)"
        if len(", ".join([*kept, item])) + len(more) > limit:
            break
        kept.append(item)
    if not kept:
        return text[: limit - 3] + "..."
    return ", ".join(kept) + f" (+{len(items) - len(kept)} more)"


@dataclass(slots=True)
class _Fetched:
    """One URL fetched (redirects followed): what it answered and how long it took."""

    url: str
    required: bool = True
    final_url: str = ""
    status: int | None = None
    size: int = 0
    seconds: float = 0.0
    body: bytes = b""
    charset: str = "utf-8"
    cert_days_left: float | None = None
    error_class: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_class is not None


@dataclass(slots=True)
class _Progress:
    """What a run has done so far, so a timeout can say what it was waiting for."""

    html_done: bool = False
    loading: set[str] = field(default_factory=set)

    def timeout_message(self, timeout: float) -> str:
        if not self.html_done:
            return f"no complete HTML within {timeout:g}s"
        paths = sorted(_path(url) for url in self.loading)
        return f"page not loaded within {timeout:g}s; still loading {join_capped(paths, 200)}"


class PageProbe:
    """Runs one PageTarget with a shared client from the pool."""

    def __init__(self, config: PageTarget, *, clients: HttpClientPool, region: str) -> None:
        self.config = config
        self.region = region
        self._client = clients.get(
            verify=config.tls.verify, ca_file=config.tls.ca_file, keepalive=config.keepalive)
        self._timeout = httpx.Timeout(config.timeout)
        self._html_headers = dict(config.headers)
        if not any(name.lower() == "accept" for name in config.headers):
            self._html_headers["Accept"] = _HTML_ACCEPT  # servers may negotiate on it

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        progress = _Progress()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self._measure(started_at, t0, progress)
        except (TimeoutError, httpx.TimeoutException):
            result = self._fail(started_at, t0, ErrorClass.TIMEOUT,
                                progress.timeout_message(self.config.timeout))
            if progress.loading:
                result.details["pending_assets"] = join_capped(sorted(map(_path, progress.loading)))
            return result
        except Exception as exc:  # boundary: a probe never raises into the scheduler
            log.exception("page probe %s failed unexpectedly", self.config.name)
            return self._fail(started_at, t0, ErrorClass.INTERNAL,
                              f"internal error: {type(exc).__name__}")

    async def _measure(self, started_at: float, t0: float, progress: _Progress) -> ProbeResult:
        config = self.config
        page = await self._fetch(config.url, config.max_body, "max_body", keep_body=True,
                                 headers=self._html_headers)
        progress.html_done = True
        html_seconds = time.perf_counter() - t0
        if page.failed or page.status is None:
            return self._fail(started_at, t0, page.error_class or ErrorClass.INTERNAL,
                              page.error or "no response", page)
        if not config.expect.status_ok(page.status):
            wanted = ", ".join(map(str, config.expect.status or [])) or "2xx"
            return self._fail(started_at, t0, ErrorClass.HTTP_STATUS,
                              f"status {page.status}, expected {wanted}", page)

        text = page.body.decode(page.charset, errors="replace")
        if len(text) > _THREAD_PARSE_CHARS:
            assets, skipped = await asyncio.to_thread(
                find_assets, text, page.final_url, config.max_assets)
        else:
            assets, skipped = find_assets(text, page.final_url, config.max_assets)
        fetched = await self._fetch_assets(assets, progress)
        latency = time.perf_counter() - t0

        result = ProbeResult(
            target=config.name, started_at=started_at, ok=True, latency=latency,
            region=self.region, status_code=page.status, cert_days_left=page.cert_days_left,
            response_bytes=page.size + sum(f.size for f in fetched),
        )
        slowest = max(fetched, key=lambda f: f.seconds, default=None)
        result.values = {
            "html_seconds": html_seconds,
            "page_load_seconds": latency,
            "assets": float(len(fetched)),
            "assets_skipped": float(skipped),
            "slowest_asset_seconds": slowest.seconds if slowest else 0.0,
            "page_bytes": float(result.response_bytes or 0),
        }
        if slowest is not None:
            result.details["slowest_asset"] = _path(slowest.url)
        failed = [f for f in fetched if f.failed]
        if failed:
            result.details["failed_assets"] = join_capped([_path(f.url) for f in failed])
        failure = self._check(failed, latency)
        if failure is not None:
            result.ok = False
            result.error_class, result.error = failure
        return result

    async def _fetch_assets(self, assets: list[Asset], progress: _Progress) -> list[_Fetched]:
        """Fetch every asset, at most `concurrency` at once, like a browser per host."""
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(asset: Asset) -> _Fetched:
            async with gate:
                progress.loading.add(asset.url)
                fetched = await self._fetch(asset.url, self.config.max_asset_bytes,
                                            "max_asset_bytes", keep_body=False)
                progress.loading.discard(asset.url)
            fetched.required = asset.required
            if fetched.status is not None and not fetched.failed \
                    and not 200 <= fetched.status < 300:
                fetched.error_class = ErrorClass.HTTP_STATUS
                fetched.error = f"status {fetched.status}"
            return fetched

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(asset)) for asset in assets]
        return [task.result() for task in tasks]

    async def _fetch(self, url: str, limit: int, limit_name: str, *, keep_body: bool,
                     headers: dict[str, str] | None = None) -> _Fetched:
        """GET `url` (redirects followed), reading at most `limit` bytes. A failure becomes a
        failed `_Fetched`, so one broken asset does not stop the others; timeouts propagate."""
        fetched = _Fetched(url=url, final_url=url)
        start = time.perf_counter()
        try:
            # Configured headers belong to the configured URL's origin: an asset of a page
            # that redirected elsewhere (a login host, a CDN) gets them without credentials
            got = await fetch(self._client, "GET", url, headers=headers or self.config.headers,
                              timeout=self._timeout, max_body=limit,
                              max_redirects=MAX_REDIRECTS,
                              credentials_origin=origin(self.config.url))
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as exc:
            fetched.error_class, fetched.error = classify_transport_error(exc)
        except FetchFailed as exc:
            fetched.status, fetched.error_class = exc.status_code, exc.error_class
            fetched.cert_days_left = exc.cert_days_left
            fetched.error = (f"body over {limit_name} {limit} bytes"
                             if exc.error_class == ErrorClass.TOO_LARGE else str(exc))
        else:
            fetched.status, fetched.final_url = got.status_code, got.url
            fetched.size, fetched.cert_days_left = len(got.body), got.cert_days_left
            if keep_body:
                fetched.body = got.body
                fetched.charset = _charset(got.headers.get("content-type", ""))
        fetched.seconds = time.perf_counter() - start
        return fetched

    def _check(self, failed: list[_Fetched], latency: float) -> tuple[str, str] | None:
        expect = self.config.expect
        broken = [f for f in failed if f.required] if expect.assets_must_load else []
        if broken:
            named = join_capped([f"{_path(f.url)} ({f.error})" for f in broken], 250)
            noun = "asset" if len(broken) == 1 else f"{len(broken)} assets"
            return broken[0].error_class or ErrorClass.INTERNAL, f"{noun} failed: {named}"
        if expect.max_load_time is not None and latency > expect.max_load_time:
            return (ErrorClass.SLOW,
                    f"page took {latency * 1000:.0f} ms to load, over max_load_time "
                    f"{expect.max_load_time * 1000:.0f} ms")
        return None

    def _fail(self, started_at: float, t0: float, error_class: str, message: str,
              page: _Fetched | None = None) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region,
            status_code=page.status if page else None,
            cert_days_left=page.cert_days_left if page else None,
            error_class=error_class, error=message[:_DETAIL_CHARS],
        )

    async def aclose(self) -> None:
        """The client belongs to the shared pool, which closes it."""


def _charset(content_type: str) -> str:
    """The declared charset when Python knows it, else UTF-8 (undecodable bytes replaced)."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("\"'")).name
            except LookupError:
                break
    return "utf-8"


def _build(config: PageTarget, ctx: ProbeContext) -> PageProbe:
    return PageProbe(config, clients=ctx.clients, region=ctx.region)


KIND = ProbeKind(PageTarget, _build)
