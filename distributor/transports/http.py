"""HTTP with requests: one session per channel, sane timeouts, and one reading of what a response means.

    2xx                              sent
    408, 429, 5xx, timeout, refused  retry (Retry-After honoured, in seconds or as an HTTP date)
    any other 4xx                    failed, with the response body kept
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

from distributor import __version__
from distributor.outcomes import Result

TIMEOUT = (5.0, 20.0)  # connect, read
USER_AGENT = f"distributor/{__version__}"
BODY_KEPT = 500


@dataclass(frozen=True)
class Reply:
    result: Result
    detail: str | None
    retry_after: float | None = None
    response: requests.Response | None = None

    def json(self) -> dict:
        try:
            data = self.response.json() if self.response is not None else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def classify(response: requests.Response) -> Reply:
    status = response.status_code
    body = " ".join(response.text.split())[:BODY_KEPT]
    detail = f"HTTP {status}: {body}" if body else f"HTTP {status}"
    if 200 <= status < 300:
        return Reply(Result.SENT, None, response=response)
    if status in (408, 429) or status >= 500:
        return Reply(Result.RETRY, detail, retry_after(response.headers.get("Retry-After")), response)
    return Reply(Result.FAILED, detail, response=response)


def send(s: requests.Session, method: str, url: str, **kwargs) -> Reply:
    """One request, never raising for network trouble: a timeout or refused connection is a retry."""
    try:
        response = s.request(method, url, timeout=kwargs.pop("timeout", TIMEOUT), allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        return Reply(Result.RETRY, f"timeout: {exc.__class__.__name__}")
    except requests.ConnectionError as exc:
        return Reply(Result.RETRY, f"connection failed: {_reason(exc)}")
    except requests.RequestException as exc:
        return Reply(Result.FAILED, f"request failed: {exc}")
    return classify(response)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker
    return text[:200]
