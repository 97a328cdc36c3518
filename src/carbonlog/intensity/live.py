"""Live grid carbon intensity from Electricity Maps, asked sparingly and never trusted blindly.

One GET of /carbon-intensity/latest (zone or lat/lon) with a short timeout, through
urllib. A good answer is cached for `min_interval_s`; a failure starts a back-off that
doubles up to `max_backoff_s`, during which no request is made. Every failure is a
LiveError, which the Site turns into the table figure for that interval. The token is
sent in the `auth-token` header and kept out of every repr, message and log line.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from carbonlog.errors import CarbonlogError, ConfigurationError

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
TOKEN_ENV = ("ELECTRICITYMAPS_TOKEN", "CARBONLOG_ELECTRICITYMAPS_TOKEN")


class LiveError(CarbonlogError, RuntimeError):
    """The live source gave no usable figure this time (network, HTTP, body, back-off)."""


class ElectricityMaps:
    """Client for Electricity Maps' latest carbon intensity of one zone or coordinate.

    `zone` or (`lat`, `lon`) pin the place; left out, the Site passes the zone of its
    location. `latest()` returns (g CO2e/kWh, source) or raises LiveError.
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
        for label, value in (
            ("timeout_s", timeout_s),
            ("min_interval_s", min_interval_s),
            ("backoff_s", backoff_s),
            ("max_backoff_s", max_backoff_s),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{label} must be a finite number >= 0, got {value!r}")
        self._token = token
        self.zone = zone
        self.lat, self.lon = lat, lon
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
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
        request = urllib.request.Request(
            self._url(zone), headers={"auth-token": self._token, "Accept": "application/json"}
        )
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise LiveError(f"HTTP {exc.code} from Electricity Maps") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LiveError(
                f"Electricity Maps unreachable ({type(exc).__name__}: {reason})"
            ) from None
        return _parse(body, self.place(zone))


def _parse(body: bytes, place: str) -> tuple[float, str]:
    """Electricity Maps' JSON -> (g/kWh, source); LiveError on anything unexpected."""
    try:
        data = json.loads(body)
        value = float(data["carbonIntensity"])
    except (ValueError, TypeError, KeyError) as exc:
        raise LiveError(f"malformed answer from Electricity Maps ({type(exc).__name__})") from None
    if not (math.isfinite(value) and value >= 0):
        raise LiveError(f"implausible carbon intensity from Electricity Maps: {value!r}")
    when = data.get("datetime") or "latest"
    zone = data.get("zone") or place
    return value, f"electricitymaps:{zone} {when}"
