"""Mastodon: one public status per account at the embargo instant.

POST /api/v1/statuses with an Idempotency-Key, so that a retried request cannot post twice. The length limit is
read from the instance (GET /api/v2/instance) once it answers, falling back to 500; text is counted as Mastodon counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Connection

from distributor import deliveries
from distributor.channels.base import Channel, Job, idempotency_key
from distributor.channels.social import accounts, count_mastodon, fit, links, render_post, unique_names
from distributor.config import Office, Table, secret, secure_url
from distributor.outcomes import Claimed, Kind, Outcome, Report, Result, Variant
from distributor.store import reading
from distributor.transports import http
from distributor.transports.file import JsonFolder

DEFAULT_LIMIT = 500
DEFAULT_URL_LENGTH = 23


@dataclass(frozen=True)
class MastodonAccount:
    name: str
    base_url: str
    token_env: str | None
    transport: str
    directory: Path
    visibility: str


class MastodonChannel(Channel):
    name = "mastodon"
    public = True
    ahead = True  # renders from the job alone: claimed a moment early, sent at the instant
    faults_per_target = True  # each account is reached on its own: its transport faults are alerted per account

    @classmethod
    def configure(cls, channels: Table, office: Office) -> tuple[MastodonAccount, ...] | None:
        tables = accounts(channels, "mastodon")
        unique_names(tables, "social account")
        found = []
        for t in tables:
            transport = t.get("transport", str, "http", choices=tuple(TRANSPORTS))
            online = transport == "http"
            found.append(MastodonAccount(
                name=t.get("name"),
                base_url=(t.get("base_url", check=secure_url) if online else t.get("base_url", str, "")).rstrip("/"),
                token_env=t.get("token_env") if online else t.get("token_env", str, None),
                transport=transport,
                directory=t.path("directory", "../outbox/mastodon"),
                visibility=t.get("visibility", str, "public", choices=("public", "unlisted")),
            ))
            t.done()
        return tuple(found) or None

    def __init__(self, settings: tuple[MastodonAccount, ...], context):
        super().__init__(settings, context)
        self.accounts = {a.name: a for a in settings}
        self.transports = {a.name: TRANSPORTS[a.transport](a, self.clock) for a in settings}

    def open(self) -> None:
        http.open_all(self.transports.values())

    def close(self) -> None:
        http.close_all(self.transports.values())

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        return list(self.accounts)

    def render(self, job: Job, variant: Variant):
        return render_post(self.context.renderer, "mastodon", job)

    @staticmethod
    def text(job: Job, render, limit: int, url_length: int) -> str:
        return fit(render, job.statement.title, job.statement.first_sentence(), limit,
                   partial(count_mastodon, url_length=url_length))

    def preview(self, job: Job, variant: Variant) -> str:
        text = self.text(job, self.render(job, variant), DEFAULT_LIMIT, DEFAULT_URL_LENGTH)
        length = count_mastodon(text, DEFAULT_URL_LENGTH)
        return f"{text}\n\n[{length} of {DEFAULT_LIMIT} characters as Mastodon counts them, a link as {DEFAULT_URL_LENGTH}]\n"

    def deliver(self, job: Job, render, rows: list[Claimed], report: Report) -> None:
        statement = job.statement
        posted = self.first_posts(job, rows)

        def handle(row: Claimed) -> Outcome:
            account = self.accounts.get(row.target)
            if account is None:
                return Outcome(row.id, Result.FAILED, f"account {row.target!r} is no longer configured")
            transport = self.transports[account.name]
            status = posted.get(row.target)
            if job.kind is not Kind.STATEMENT and status is None:
                return Outcome(row.id, Result.FAILED, f"no status of {job.statement_id} on {account.name} to "
                                                      f"{'delete' if job.kind is Kind.RETRACTION else 'edit'}")
            if job.kind is Kind.RETRACTION:
                return transport.post(row, {"action": "delete", "id": status})
            limit, url_length = transport.limits()
            try:
                text = self.text(job, render, limit, url_length)
            except ValueError as exc:
                return Outcome(row.id, Result.FAILED, str(exc))
            language = (statement.language or self.context.config.office.language)[:2]
            if job.kind is Kind.CORRECTION:  # Mastodon edits a status in place (PUT /api/v1/statuses/:id)
                return transport.post(row, {"action": "edit", "id": status, "status": text, "language": language})
            body = {"status": text, "visibility": account.visibility, "language": language}
            return transport.post(row, body)

        self.each_target(rows, report, handle)


    def first_posts(self, job: Job, rows: list[Claimed]) -> dict[str, str]:
        """Account → id of the status a correction edits or a retraction deletes."""
        if job.kind is Kind.STATEMENT:
            return {}
        with reading(self.context.engine) as conn:
            found = deliveries.first_copies(conn, job.statement_id, self.name, [r.target for r in rows],
                                            job.generation)
        return {target: remote.split()[0] for target, remote in found.items()}


IDEMPOTENCY_SECONDS = 3600  # how long Mastodon remembers an Idempotency-Key


class MastodonHttp(http.HttpTransport):
    """POST /api/v1/statuses with the account's bearer token and an Idempotency-Key; PUT to edit, DELETE to
    retract. A retry of a post later than Mastodon remembers the key first looks for the status it may have made."""

    def __init__(self, account: MastodonAccount, clock):
        super().__init__(clock)
        self.account = account
        self.token: str | None = None
        self._limits: tuple[int, int] | None = None

    def read_secrets(self) -> None:
        assert self.account.token_env is not None  # required for the http transport
        self.token = secret(self.account.token_env, f"channels.social ({self.account.name}).token_env")

    def forget_secrets(self) -> None:
        self.token = None

    def limits(self) -> tuple[int, int]:
        """(max characters, characters per URL) from the instance; kept for the run once the instance answered."""
        if self._limits is not None:
            return self._limits
        reply = self.client.send("GET", f"{self.account.base_url}/api/v2/instance", timeout=(3.0, 5.0))
        statuses = reply.json().get("configuration", {}).get("statuses", {}) if reply.result is Result.SENT else {}
        found = (_positive_int(statuses.get("max_characters"), DEFAULT_LIMIT),
                 _positive_int(statuses.get("characters_reserved_per_url"), DEFAULT_URL_LENGTH))
        if reply.result not in (Result.RETRY, Result.TRANSPORT):  # a network fault is asked again next time
            self._limits = found
        return found

    def send(self, row: Claimed, payload: dict) -> Outcome:
        auth = {"Authorization": f"Bearer {self.token}"}
        action = payload.get("action")
        if action is not None:
            url = f"{self.account.base_url}/api/v1/statuses/{payload['id']}"
            if action == "delete":
                reply = self.client.send("DELETE", url, headers=auth)
                if reply.response is not None and reply.response.status_code == 404:
                    return Outcome(row.id, Result.SENT, "already deleted", remote_id=payload["id"])
            else:
                reply = self.client.send("PUT", url, headers=auth,
                                         json={"status": payload["status"], "language": payload["language"]})
            return Outcome(row.id, reply.result, reply.detail, remote_id=payload["id"] if reply.result is
                           Result.SENT else None, retry_after=reply.retry_after)
        if row.attempts and (self.client.clock.now() - row.due_at).total_seconds() > IDEMPOTENCY_SECONDS:
            found = self.find(payload["status"])
            if found:
                return Outcome(row.id, Result.SENT, "already posted by an earlier attempt", remote_id=found)
        reply = self.client.send("POST", f"{self.account.base_url}/api/v1/statuses", json=payload, headers={
            **auth, "Idempotency-Key": idempotency_key(row, self.account.name)})
        remote = None
        if reply.result is Result.SENT:
            data = reply.json()
            remote = " ".join(str(data[k]) for k in ("id", "url") if data.get(k)) or None
        return Outcome(row.id, reply.result, reply.detail, remote_id=remote, retry_after=reply.retry_after)


    def find(self, text: str) -> str | None:
        """The account's recent status carrying this post's link, as "id url"; None if there is none."""
        urls = [url for _, _, url in links(text)]
        if not urls:
            return None
        auth = {"Authorization": f"Bearer {self.token}"}
        me = self.client.send("GET", f"{self.account.base_url}/api/v1/accounts/verify_credentials", headers=auth)
        if me.result is not Result.SENT or not me.json().get("id"):
            return None
        reply = self.client.send("GET", f"{self.account.base_url}/api/v1/accounts/{me.json()['id']}/statuses",
                                 headers=auth, params={"limit": 40})
        statuses = reply.response.json() if reply.result is Result.SENT and reply.response is not None else []
        for status in statuses if isinstance(statuses, list) else []:
            if isinstance(status, dict) and urls[-1] in str(status.get("content", "")):
                return " ".join(str(status[k]) for k in ("id", "url") if status.get(k))
        return None


class MastodonFile(JsonFolder):
    """The status as it would have been posted, fitted to Mastodon's default limit."""

    def __init__(self, account: MastodonAccount, clock):
        super().__init__(account.directory)

    def limits(self) -> tuple[int, int]:
        return DEFAULT_LIMIT, DEFAULT_URL_LENGTH


TRANSPORTS: dict[str, type[MastodonHttp | MastodonFile]] = {"http": MastodonHttp, "file": MastodonFile}


def _positive_int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
