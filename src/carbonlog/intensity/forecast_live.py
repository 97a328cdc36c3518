"""Live forecast sources, asked only when the user asks (`carbonlog when --source ...`).

Each asks over the live source's rules (carbonlog.intensity.live.HttpsGet): https only, one
total deadline for all of a call's requests (a login included), credentials only to the
source's own origin, bodies parsed by carbonlog.intensity.forecast (figures checked as
plausible). Every failure is a LiveError. The endpoints, cited in docs/planning.md:

- UK Carbon Intensity API (NESO), free and without a key:
  GET /intensity/{from}/fw48h, half-hours for Great Britain.
- Electricity Maps, with the user's token: GET /v3/carbon-intensity/forecast?zone=Z.
- WattTime v3, with the user's account: GET /login (HTTP basic) for a bearer token, then
  GET /v3/forecast?region=R&signal_type=co2_moer (a marginal signal, in lbs CO2/MWh).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import time
import urllib.parse
from datetime import datetime, timezone

from carbonlog.errors import ConfigurationError
from carbonlog.intensity.forecast import Forecast, ForecastError
from carbonlog.intensity.forecast_shapes import parse_forecasts
from carbonlog.intensity.live import (
    TOKEN_ENV,
    HttpsGet,
    LiveError,
    Resolver,
    _https_url,
    _origin,
    system_resolver,
)

MAX_FORECAST_BYTES = 1 << 20
"""A 72 h WattTime forecast at 5-minute points is about 70 kB: 1 MiB leaves room, no more."""
TIMEOUT_S = 10.0
"""One call's total deadline: a planning tool may wait this long, a training loop never does."""
REGIONS_TIMEOUT_S = 60.0
"""All the calls of one comparison of regions (a provider has up to about 40 grids)."""
UK_BASE_URL = "https://api.carbonintensity.org.uk"
EM_BASE_URL = "https://api.electricitymap.org/v3"
WATTTIME_BASE_URL = "https://api.watttime.org"
WATTTIME_ENV = ("WATTTIME_USERNAME", "WATTTIME_PASSWORD")
GB_LOCATIONS = ("GB", "UK")


class _Source:
    """What every live forecast source holds: its base URL, deadline and connection options."""

    name = "?"

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None,
        resolver: Resolver,
    ):
        if isinstance(timeout_s, bool) or not 1e-3 <= timeout_s < float("inf"):
            raise ConfigurationError(
                f"timeout_s must be a finite number >= 0.001, got {timeout_s!r}"
            )
        self.base_url = _https_url(base_url)
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self._resolver = resolver

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _http(self, credentials: dict[str, str]) -> HttpsGet:
        return HttpsGet(
            self.base_url,
            credentials,
            self.name,
            self.timeout_s,
            self._ssl_context,
            self._resolver,
            MAX_FORECAST_BYTES,
        )

    def _json(self, getter: HttpsGet, path: str, deadline_s: float) -> object:
        """The decoded JSON body of a GET of base_url + path; a LiveError for anything else."""
        try:
            status, body, url = getter.get(self.base_url + path, deadline_s)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise LiveError(f"{self.name} unreachable ({type(exc).__name__}: {exc})") from None
        if not 200 <= status < 300:
            moved = _origin(url) != _origin(self.base_url)
            where = (
                f" at {_origin(url)[1]} (redirected there; sent no credentials)" if moved else ""
            )
            raise LiveError(f"HTTP {status} from {self.name}{where}")
        try:
            return json.loads(body)
        except ValueError:
            raise LiveError(f"malformed answer from {self.name} (not JSON)") from None

    def _deadline(self, deadline_s: float | None) -> float:
        """This call's deadline (time.monotonic): timeout_s from now, or `deadline_s` if sooner;
        a LiveError, asking nothing, once that has passed."""
        own_s = time.monotonic() + self.timeout_s
        chosen_s = own_s if deadline_s is None else min(own_s, deadline_s)
        if chosen_s <= time.monotonic():
            raise LiveError(f"not asked: the time for asking {self.name} ran out")
        return chosen_s

    def _parsed(self, data: object, location: str | None) -> Forecast:
        """The one forecast in a live body; a LiveError when it is not one."""
        try:
            found = parse_forecasts(data, self.name, location)
        except ForecastError as exc:
            raise LiveError(f"malformed answer from {self.name}: {exc}") from None
        return found[0]


class CarbonIntensityUK(_Source):
    """The UK Carbon Intensity API's 48 h forecast for Great Britain (no key)."""

    name = "carbonintensity.org.uk"

    def __init__(
        self,
        *,
        base_url: str = UK_BASE_URL,
        timeout_s: float = TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
    ):
        super().__init__(base_url, timeout_s, ssl_context, resolver)

    def forecast(
        self, zone: str | None = None, now: datetime | None = None, deadline_s: float | None = None
    ) -> Forecast:
        """The half-hours from the one holding `now` (default: the current time) for 48 h;
        `deadline_s` (time.monotonic) bounds the call when sooner than timeout_s."""
        if zone is not None and zone.upper() not in GB_LOCATIONS:
            raise ConfigurationError(
                f"the UK Carbon Intensity API covers Great Britain only, not {zone!r}"
            )
        start = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        path = f"/intensity/{start:%Y-%m-%dT%H:%MZ}/fw48h"
        deadline_s = self._deadline(deadline_s)
        return self._parsed(self._json(self._http({}), path, deadline_s), "GB")


class ElectricityMapsForecast(_Source):
    """Electricity Maps' carbon-intensity forecast of a zone, with the user's token (the
    `ELECTRICITYMAPS_TOKEN` environment variable when not given)."""

    name = "Electricity Maps"

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str = EM_BASE_URL,
        timeout_s: float = TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
    ):
        super().__init__(base_url, timeout_s, ssl_context, resolver)
        token = token or next((os.environ[k] for k in TOKEN_ENV if os.environ.get(k)), None)
        if not token:
            raise ConfigurationError(
                "Electricity Maps needs an API token: pass token= or set ELECTRICITYMAPS_TOKEN"
            )
        self._credentials = {"auth-token": token}

    def forecast(
        self, zone: str | None, now: datetime | None = None, deadline_s: float | None = None
    ) -> Forecast:
        """The zone's forecast as Electricity Maps publishes it (hourly, from the current hour;
        `now` is not an option of the API)."""
        if not zone:
            raise ConfigurationError("Electricity Maps needs a zone (DE, FR, US-CAL-CISO ...)")
        path = "/carbon-intensity/forecast?" + urllib.parse.urlencode({"zone": zone})
        deadline_s = self._deadline(deadline_s)
        return self._parsed(self._json(self._http(self._credentials), path, deadline_s), zone)


class WattTimeForecast(_Source):
    """WattTime v3's CO2 forecast of a region (CAISO_NORTH ...), with the user's account
    (`WATTTIME_USERNAME` and `WATTTIME_PASSWORD` when not given). `signal_type` "co2_moer" is
    the marginal rate; "co2_aoer" the average, where the plan has it."""

    name = "WattTime"

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        signal_type: str = "co2_moer",
        base_url: str = WATTTIME_BASE_URL,
        timeout_s: float = TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
    ):
        super().__init__(base_url, timeout_s, ssl_context, resolver)
        username = username or os.environ.get(WATTTIME_ENV[0])
        password = password or os.environ.get(WATTTIME_ENV[1])
        if not username or not password:
            raise ConfigurationError(
                "WattTime needs an account: pass username= and password=, or set "
                "WATTTIME_USERNAME and WATTTIME_PASSWORD"
            )
        basic = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._login = {"Authorization": f"Basic {basic}"}
        self.signal_type = signal_type

    def forecast(
        self, zone: str | None, now: datetime | None = None, deadline_s: float | None = None
    ) -> Forecast:
        """The region's current forecast (`now` is not an option of the API): a login, then
        the forecast, within one deadline."""
        if not zone:
            raise ConfigurationError("WattTime needs a region (CAISO_NORTH, PJM_DC ...)")
        deadline_s = self._deadline(deadline_s)
        login = self._json(self._http(self._login), "/login", deadline_s)
        token = login.get("token") if isinstance(login, dict) else None
        if not isinstance(token, str) or not token:
            raise LiveError("malformed answer from WattTime's login (no token)")
        query = urllib.parse.urlencode({"region": zone, "signal_type": self.signal_type})
        bearer = self._http({"Authorization": f"Bearer {token}"})
        return self._parsed(self._json(bearer, f"/v3/forecast?{query}", deadline_s), zone)


SOURCES = {
    "carbonintensity": CarbonIntensityUK,
    "electricitymaps": ElectricityMapsForecast,
    "watttime": WattTimeForecast,
}
"""The live forecast sources by the name `carbonlog when --source` takes."""
