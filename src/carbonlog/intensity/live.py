"""Live grid carbon intensity from Electricity Maps, asked sparingly and never trusted blindly.

One GET of /carbon-intensity/latest (zone or lat/lon) over HTTPS, within one total deadline:
`timeout_s` covers name resolution, connecting, the TLS handshake, every read of the answer
and any redirect, so a slow resolver or a server that trickles its body cannot stretch it.
A good answer is cached for `min_interval_s`; a failure starts a back-off that doubles up to
`max_backoff_s`, during which no request is made. Every failure is a LiveError.

The token goes in the `auth-token` header, only over https (an http:// base URL is refused at
construction), and only to the base URL's own origin (scheme, host, port): a redirect elsewhere
is followed without it, as requests does with credentials. It is kept out of every repr,
message and log line. The Site asks from a background thread (carbonlog.intensity.feed), so
the training loop never waits on any of this. The transport, HttpsGet, serves the forecast
sources too (carbonlog.intensity.forecast_live), with the same rules.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence

from carbonlog.errors import CarbonlogError, ConfigurationError
from carbonlog.intensity.feed import PLAUSIBLE_G_PER_KWH, plausible

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
TOKEN_ENV = ("ELECTRICITYMAPS_TOKEN", "CARBONLOG_ELECTRICITYMAPS_TOKEN")
MAX_BODY_BYTES = 65536
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], Sequence[tuple]]
"""(host, port) -> socket.getaddrinfo's tuples for a TCP connection."""


def system_resolver(host: str, port: int) -> Sequence[tuple]:
    """The system's TCP addresses for (host, port)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class LiveError(CarbonlogError, RuntimeError):
    """The live source gave no usable figure this time (network, HTTP, body, back-off)."""


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an https URL: where a credential may go."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or 443


def _left_s(deadline_s: float) -> float:
    """Seconds left before `deadline_s` (time.monotonic); a TimeoutError once it has passed."""
    left_s = deadline_s - time.monotonic()
    if left_s <= 0:
        raise TimeoutError("no answer within the request's deadline")
    return left_s


class _DeadlineReader(io.RawIOBase):
    """A socket's receiving side, each read given only what is left of one deadline: per-read
    timeouts alone let a server that trickles its answer hold a request for ever."""

    def __init__(self, sock: socket.socket, deadline_s: float):
        super().__init__()
        self._sock, self._deadline_s = sock, deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(_left_s(self._deadline_s))
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """The socket http.client is handed: sends and reads within the deadline. Closing it is
    left to the caller, who holds the real socket until the answer is read."""

    def __init__(self, sock: socket.socket, deadline_s: float):
        self._sock, self._deadline_s = sock, deadline_s

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_left_s(self._deadline_s))
        self._sock.sendall(data)

    def makefile(self, *args, **kwargs) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline_s))

    def close(self) -> None:
        """Nothing to do: http.client calls this before the body is read."""


class ElectricityMaps:
    """Client for Electricity Maps' latest carbon intensity of one zone or coordinate.

    `zone` or (`lat`, `lon`) pin the place; left out, the Site passes the zone of its
    location. `latest()` returns (g CO2e/kWh, source) or raises LiveError. `ssl_context`
    (a corporate CA, say) and `resolver` (how host names become addresses) default to the
    system's.
    """

    name = "electricitymaps"

    def __init__(
        self,
        token: str | None = None,
        zone: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 2.0,
        min_interval_s: float = 900.0,
        backoff_s: float = 60.0,
        max_backoff_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
    ):
        token = token or next((os.environ[k] for k in TOKEN_ENV if os.environ.get(k)), None)
        if not token:
            raise ConfigurationError(
                "Electricity Maps needs an API token: pass token= or set ELECTRICITYMAPS_TOKEN"
            )
        if (lat is None) != (lon is None):
            raise ConfigurationError("pass both lat and lon, or neither")
        if lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigurationError(f"lat/lon out of range: {lat}, {lon}")
        for label, value, low in (
            ("timeout_s", timeout_s, 1e-3),
            ("min_interval_s", min_interval_s, 0.0),
            ("backoff_s", backoff_s, 0.0),
            ("max_backoff_s", max_backoff_s, 0.0),
        ):
            if isinstance(value, bool) or not (low <= value < float("inf")):
                raise ConfigurationError(
                    f"{label} must be a finite number >= {low:g}, got {value!r}"
                )
        self.zone = zone
        self.lat, self.lon = lat, lon
        self.base_url = _https_url(base_url)
        self._origin = _origin(self.base_url)
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        credentials = {"auth-token": token}
        self._http = HttpsGet(
            self.base_url, credentials, "Electricity Maps", timeout_s, ssl_context, resolver
        )
        self._cached: tuple[float, tuple[float, str]] | None = None  # (asked at, answer)
        self._retry_at_s = 0.0
        self._failures = 0
        self.requests = 0  # how many HTTP requests were made (tests and diagnostics)

    def __repr__(self) -> str:
        return f"ElectricityMaps(place={self.place()!r}, base_url={self.base_url!r})"

    def place(self, zone: str | None = None) -> str:
        """The zone or coordinates asked for, as shown in sources and descriptions."""
        if self.lat is not None:
            return f"lat={self.lat},lon={self.lon}"
        return self.zone or zone or "?"

    def describe(self, zone: str | None = None) -> dict:
        """Plain facts for the ledger and reports; never the token."""
        return {
            "provider": self.name,
            "place": self.place(zone),
            "base_url": self.base_url,
            "min_interval_s": self.min_interval_s,
            "timeout_s": self.timeout_s,
        }

    def latest(self, zone: str | None = None) -> tuple[float, str]:
        """(g CO2e/kWh, source) now; the cached answer when it is younger than min_interval_s."""
        now_s = self._clock()
        if self._cached and now_s - self._cached[0] < self.min_interval_s:
            return self._cached[1]
        if now_s < self._retry_at_s:
            raise LiveError(f"backing off for {self._retry_at_s - now_s:.0f} s after failures")
        try:
            answer = self._ask(zone)
        except LiveError:
            self._failures += 1
            delay_s = min(self.backoff_s * 2 ** (self._failures - 1), self.max_backoff_s)
            self._retry_at_s = now_s + delay_s
            raise
        self._failures = 0
        self._cached = (now_s, answer)
        return answer

    def _url(self, zone: str | None) -> str:
        if self.lat is not None:
            query = {"lat": self.lat, "lon": self.lon}
        elif self.zone or zone:
            query = {"zone": self.zone or zone}
        else:
            raise LiveError("no zone or coordinates to ask Electricity Maps about")
        return f"{self.base_url}/carbon-intensity/latest?{urllib.parse.urlencode(query)}"

    def _ask(self, zone: str | None) -> tuple[float, str]:
        """One request, redirects included, within `timeout_s`; its parsed answer."""
        deadline_s = time.monotonic() + self.timeout_s
        self.requests += 1
        try:
            status, body, url = self._http.get(self._url(zone), deadline_s)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise LiveError(f"Electricity Maps unreachable ({type(exc).__name__}: {exc})") from None
        if not 200 <= status < 300:
            moved = _origin(url) != self._origin
            where = f" at {_origin(url)[1]} (redirected there; not sent the token)" if moved else ""
            raise LiveError(f"HTTP {status} from Electricity Maps{where}")
        return _parse(body, self.place(zone))


class HttpsGet:
    """GETs over https within one total deadline, redirects followed; `credentials` (headers)
    go only to `base_url`'s origin. Shared by every live source (here and intensity.forecast)."""

    def __init__(
        self,
        base_url: str,
        credentials: dict[str, str],
        name: str,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self._origin = _origin(base_url)
        self._credentials = credentials
        self.name = name
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._context = ssl_context or ssl.create_default_context()
        self._resolver = resolver

    def get(self, url: str, deadline_s: float) -> tuple[int, bytes, str]:
        """(status, body, the URL that answered) of a GET of `url`, following redirects; the
        credentials go only to the base URL's origin, and never to a plain-http URL."""
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = self._fetch(url, _origin(url) == self._origin, deadline_s)
            if status not in REDIRECT_STATUSES or not location:
                return status, body, url
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).scheme != "https":
                raise LiveError(f"refused a redirect to a non-https URL at {_origin(url)[1]}")
        raise LiveError(f"more than {MAX_REDIRECTS} redirects from {self.name}")

    def _fetch(
        self, url: str, with_token: bool, deadline_s: float
    ) -> tuple[int, str | None, bytes]:
        """(status, Location, body) of one GET over a fresh TLS connection, before the deadline."""
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        headers = {"Accept": "application/json", "Connection": "close"}
        if with_token:
            headers.update(self._credentials)
        connection = http.client.HTTPSConnection(host, port, context=self._context)
        sock = self._connect(host, port, deadline_s)
        connection.sock = _DeadlineSocket(sock, deadline_s)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers=headers)
            with connection.getresponse() as response:
                location = response.getheader("Location")
                redirect = response.status in REDIRECT_STATUSES
                body = b"" if redirect else response.read(self.max_body_bytes)
                return response.status, location, body
        finally:
            connection.close()
            sock.close()

    def _connect(self, host: str, port: int, deadline_s: float) -> ssl.SSLSocket:
        """A TLS connection to (host, port), each step given what is left of the deadline."""
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in self._lookup(host, port, deadline_s):
            raw = socket.socket(family, kind, proto)
            try:
                raw.settimeout(_left_s(deadline_s))
                raw.connect(address)
                raw.settimeout(_left_s(deadline_s))  # the handshake's whole budget
                return self._context.wrap_socket(raw, server_hostname=host)
            except OSError as exc:
                raw.close()
                error = exc
        raise error

    def _lookup(self, host: str, port: int, deadline_s: float) -> list[tuple]:
        """The resolver's addresses, waited for until the deadline only: getaddrinfo has no
        timeout of its own, so a slow answer is left to finish in its daemon thread."""
        answer: list = []

        def resolve() -> None:
            try:
                answer.append(list(self._resolver(host, port)))
            except Exception as exc:  # handed to the asking thread below
                answer.append(exc)

        thread = threading.Thread(target=resolve, name="carbonlog-resolve", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline_s - time.monotonic()))
        if not answer:
            raise TimeoutError(f"resolving {host} took longer than {self.timeout_s:g} s")
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]


def _https_url(base_url: str) -> str:
    """`base_url` without its trailing slash; a ConfigurationError unless it is https with a
    host (the token must never travel in clear)."""
    try:
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018 (an out-of-range port raises here)
    except (ValueError, AttributeError, TypeError):
        raise ConfigurationError(f"base_url is not a URL: {base_url!r}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            f"base_url must be an https:// URL, got {base_url!r}: the API token is never "
            "sent over plain http"
        )
    return base_url.rstrip("/")


def _parse(body: bytes, place: str) -> tuple[float, str]:
    """Electricity Maps' JSON -> (g/kWh, source); LiveError on anything unexpected or a figure
    outside PLAUSIBLE_G_PER_KWH."""
    try:
        data = json.loads(body)
        value = float(data["carbonIntensity"])
    except (ValueError, TypeError, KeyError) as exc:
        raise LiveError(f"malformed answer from Electricity Maps ({type(exc).__name__})") from None
    if not plausible(value):
        low, high = PLAUSIBLE_G_PER_KWH
        raise LiveError(
            f"implausible carbon intensity from Electricity Maps: {value!r} g/kWh "
            f"(plausible: {low:g} to {high:g})"
        )
    when = data.get("datetime") or "latest"
    zone = data.get("zone") or place
    return value, f"electricitymaps:{zone} {when}"
