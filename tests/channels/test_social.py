"""Social posts: the fitted text, Mastodon and Bluesky against real HTTP servers on loopback."""

import json
import re
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from werkzeug import Response

from distributor.channels.bluesky import TID_ALPHABET, link_facets, tid
from distributor.channels.mastodon import MastodonAccount, MastodonHttp
from distributor.channels.social import count_graphemes, count_mastodon, fit, shorten
from distributor.clock import FixedClock, utcnow
from tests.channels.conftest import bluesky, by_channel, mastodon
from tests.loopback import Refusing

LINK = "https://office.example.org/press/tro-01-001-2026"


def render(title, summary):
    return "\n\n".join(p for p in (title, summary, LINK) if p)


@pytest.mark.parametrize("title, summary", [
    ("Short", "Short."),
    ("Flood maps 🌊🏳️‍🌈 must be published", "Résidents d’Åsgård ont dit que « personne n’a écouté » " * 8),
    ("Combining: e\u0301e\u0301e\u0301 " * 10, "Ze\u0301ro " * 80),
    ("洪水地図を公開せよ", "住民は誰も耳を傾けなかったと述べた。" * 30),
    ("👨‍👩‍👧‍👦" * 200, "👍🏽" * 200),
])
@pytest.mark.parametrize("limit, count", [(300, count_graphemes), (500, count_mastodon), (100, count_mastodon)])
def test_fit_never_exceeds_and_never_cuts_the_link(title, summary, limit, count):
    text = fit(render, title, summary, limit, count)
    assert count(text) <= limit
    assert text.endswith(LINK)
    if count(render(title, summary)) <= limit:
        assert text == render(title, summary)
    else:
        assert "…" in text
    for unit in ("\u0301", "\u200d", "\U0001F3FD"):  # never a lone combining mark, joiner or skin tone at a cut
        assert not re.search(f"(^|\\s){unit}", text)


def test_shorten_prefers_word_boundaries_and_falls_back_to_graphemes():
    assert shorten("one two three four", 12) == "one two…"
    assert shorten("住民は誰も耳を傾けなかった", 5) == "住民は誰…"
    assert shorten("e\u0301e\u0301e\u0301e\u0301", 3) == "e\u0301e\u0301…"
    assert shorten("short", 10) == "short"


def test_mastodon_counts_every_url_as_23():
    assert count_mastodon("see https://example.org/" + "x" * 200) == 4 + 23


def test_tid_is_deterministic_and_well_formed():
    from datetime import datetime
    at = datetime(2026, 10, 15, 0, 1, tzinfo=UTC)
    first = tid(at, "s/r1/account")
    assert first == tid(at, "s/r1/account") and first != tid(at, "s/r2/account")
    assert len(first) == 13 and set(first) <= set(TID_ALPHABET) and first[0] in "234567abcdefghij"
    value = 0
    for ch in first:
        value = value * 32 + TID_ALPHABET.index(ch)
    assert value >> 10 == int(at.timestamp() * 1_000_000)


def test_link_facets_are_utf8_byte_offsets():
    text = f"Zoë 🌊 释放\n\n{LINK}"
    [facet] = link_facets(text)
    data = text.encode("utf-8")
    assert data[facet["index"]["byteStart"]:facet["index"]["byteEnd"]].decode() == LINK
    assert facet["features"][0] == {"$type": "app.bsky.richtext.facet#link", "uri": LINK}


# -- Mastodon ----------------------------------------------------------------------------------------------------

class MastodonServer:
    def __init__(self, limit=120):
        self.limit = limit
        self.posts = []
        self.keys = []
        self.responses = []
        self.statuses_by_id = {}
        self.edits = []
        self.deleted = []

    def instance(self, request):
        return Response(json.dumps({"configuration": {"statuses": {
            "max_characters": self.limit, "characters_reserved_per_url": 23}}}), content_type="application/json")

    def statuses(self, request):
        assert request.headers["Content-Type"].startswith("application/json")
        if request.headers.get("Authorization") != "Bearer mastodon-token-123":
            return Response('{"error": "The access token is invalid"}', status=401, content_type="application/json")
        if not request.headers.get("Idempotency-Key"):
            return Response('{"error": "no key"}', status=400)
        body = request.get_json()
        if not isinstance(body.get("status"), str) or count_mastodon(body["status"]) > self.limit:
            return Response('{"error": "Validation failed: Text character limit exceeded"}', status=422,
                            content_type="application/json")
        self.keys.append(request.headers["Idempotency-Key"])
        if self.responses:
            return self.responses.pop(0)
        self.posts.append(body)
        n = len(self.posts)
        self.statuses_by_id[f"1100{n}"] = body
        return Response(json.dumps({"id": f"1100{n}", "url": f"https://social.example/@press/1100{n}"}),
                        content_type="application/json")

    def authorised(self, request):
        return request.headers.get("Authorization") == "Bearer mastodon-token-123"

    def status(self, request):
        """PUT (edit) or DELETE one status, as /api/v1/statuses/:id does: 404 for an unknown id."""
        if not self.authorised(request):
            return Response('{"error": "The access token is invalid"}', status=401, content_type="application/json")
        status_id = request.path.rsplit("/", 1)[-1]
        if status_id not in self.statuses_by_id:
            return Response('{"error": "Record not found"}', status=404, content_type="application/json")
        if request.method == "DELETE":
            self.deleted.append(status_id)
            del self.statuses_by_id[status_id]
        else:
            body = request.get_json()
            assert isinstance(body.get("status"), str) and count_mastodon(body["status"]) <= self.limit
            self.edits.append((status_id, body))
            self.statuses_by_id[status_id] = {**self.statuses_by_id[status_id], **body}
        return Response(json.dumps({"id": status_id}), content_type="application/json")

    def me(self, request):
        if not self.authorised(request):
            return Response('{"error": "The access token is invalid"}', status=401, content_type="application/json")
        return Response('{"id": "42", "username": "press"}', content_type="application/json")

    def account_statuses(self, request):
        assert request.path == "/api/v1/accounts/42/statuses"
        return Response(json.dumps([{"id": i, "url": f"https://social.example/@press/{i}",
                                     "content": f"<p>{b['status']}</p>"} for i, b in reversed(
                                         self.statuses_by_id.items())]), content_type="application/json")


@pytest.fixture
def mastodon_server(httpserver):
    server = MastodonServer()
    httpserver.expect_request("/api/v2/instance", method="GET").respond_with_handler(server.instance)
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_handler(server.statuses)
    for method in ("PUT", "DELETE"):
        httpserver.expect_request(re.compile(r"/api/v1/statuses/\w+"), method=method).respond_with_handler(
            server.status)
    httpserver.expect_request("/api/v1/accounts/verify_credentials", method="GET").respond_with_handler(server.me)
    httpserver.expect_request(re.compile(r"/api/v1/accounts/\w+/statuses"), method="GET").respond_with_handler(
        server.account_statuses)
    return server


def lift(make_system, scheduled, extra, channels, **statement):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=extra)
    embargo = scheduled(system, channels=channels, **statement)
    clock.set(embargo)
    system.dispatcher.advance()
    return system, clock


def test_mastodon_post(make_system, scheduled, httpserver, mastodon_server):
    system, _ = lift(make_system, scheduled, mastodon(httpserver.url_for("").rstrip("/")), "social",
                     title="Riverland: “Flood maps” must be published 🌊 — now, say residents of Åsgård")
    system.dispatcher.deliver("mastodon")
    [post] = mastodon_server.posts
    assert count_mastodon(post["status"]) <= 120
    assert post["status"].startswith("Riverland: “Flood maps”") and post["status"].endswith(LINK)
    assert post["visibility"] == "public"
    row = by_channel(system)["mastodon:masto"]
    assert row["status"] == "sent" and row["remote_id"] == "11001 https://social.example/@press/11001"


def test_mastodon_falls_back_to_500_and_retries_with_the_same_key(make_system, scheduled, httpserver):
    server = MastodonServer(limit=500)
    httpserver.expect_request("/api/v2/instance").respond_with_data("not found", status=404)
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_handler(server.statuses)
    server.responses.append(Response("unavailable", status=503, headers={"Retry-After": "5"}))
    system, clock = lift(make_system, scheduled, mastodon(httpserver.url_for("").rstrip("/")), "mastodon",
                         body_extra="A long paragraph. " * 40)
    system.dispatcher.deliver("mastodon")
    assert by_channel(system)["mastodon:masto"]["status"] == "retrying"
    clock.advance(31)
    system.dispatcher.deliver("mastodon")
    assert by_channel(system)["mastodon:masto"]["status"] == "sent"
    assert len(server.keys) == 2 and len(set(server.keys)) == 1
    assert system.channels["mastodon"].transports["masto"].limits() == (500, 23)
    assert [r.path for r, _ in httpserver.log].count("/api/v2/instance") == 1  # a 404 is an answer: asked once


def test_mastodon_asks_an_unreachable_instance_for_its_limits_again():
    endpoint = Refusing()
    try:
        account = MastodonAccount("masto", endpoint.url(), "TEST_MASTODON_TOKEN", "http", Path("out"), "public")
        transport = MastodonHttp(account, FixedClock(utcnow()))
        assert transport.limits() == (500, 23)  # refused: the defaults for now, not for the run
        endpoint.answer({"configuration": {"statuses": {"max_characters": 1000, "characters_reserved_per_url": 30}}})
        assert transport.limits() == (1000, 30)
        assert transport.limits() == (1000, 30) and endpoint.requests == [("GET", "/api/v2/instance")]
    finally:
        endpoint.close()


def test_mastodon_bad_token_fails(make_system, scheduled, httpserver, mastodon_server, monkeypatch):
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "wrong")
    system, _ = lift(make_system, scheduled, mastodon(httpserver.url_for("").rstrip("/")), "mastodon")
    system.dispatcher.deliver("mastodon")
    row = by_channel(system)["mastodon:masto"]
    assert row["status"] == "failed" and "HTTP 401" in row["error"]
    assert "wrong" not in row["error"]


# -- Bluesky -----------------------------------------------------------------------------------------------------

class PDS:
    """A PDS as far as posting goes: sessions with access and refresh tokens that expire, rotating refresh tokens,
    and the error names a real PDS answers with (400 ExpiredToken, 400 InvalidToken, 401 AuthenticationRequired)."""

    DID = "did:plc:testpress123"

    def __init__(self):
        self.logins = 0
        self.refreshes = 0
        self.refused_refreshes = 0
        self.issued = 0
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.expired: set[str] = set()
        self.records = {}
        self.creates = 0
        self.fail_after_store = False
        self.deletes = []

    def json(self, data, status=200):
        return Response(json.dumps(data), status=status, content_type="application/json")

    def expire(self, refresh: bool = False):
        """Every access token issued so far expires; with ``refresh``, every refresh token too."""
        self.expired |= self.access
        self.access.clear()
        if refresh:
            self.expired |= self.refresh
            self.refresh.clear()

    def issue(self):
        self.issued += 1
        access, refresh = f"access-{self.issued}", f"refresh-{self.issued}"
        self.access.add(access)
        self.refresh.add(refresh)
        return self.json({"accessJwt": access, "refreshJwt": refresh, "did": self.DID, "handle": "press.example.org"})

    @staticmethod
    def bearer(request):
        header = request.headers.get("Authorization", "")
        return header[len("Bearer "):] if header.startswith("Bearer ") else None

    def create_session(self, request):
        assert request.headers["Content-Type"].startswith("application/json")
        body = request.get_json()
        if body != {"identifier": "press.example.org", "password": "app-password-456"}:
            return self.json({"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, 401)
        self.logins += 1
        return self.issue()

    def refresh_session(self, request):
        token = self.bearer(request)
        if token in self.expired:
            self.refused_refreshes += 1
            return self.json({"error": "ExpiredToken", "message": "Token has expired"}, 400)
        if token not in self.refresh:
            self.refused_refreshes += 1
            return self.json({"error": "InvalidToken", "message": "Token could not be verified"}, 400)
        self.refresh.discard(token)  # refresh tokens are single use
        self.refreshes += 1
        return self.issue()

    def refusal(self, request):
        """None when the request carries a live access token, else the PDS's answer."""
        token = self.bearer(request)
        if token in self.expired:
            return self.json({"error": "ExpiredToken", "message": "Token has expired"}, 400)
        if token not in self.access:
            return self.json({"error": "AuthenticationRequired", "message": "Authentication Required"}, 401)
        return None

    def create_record(self, request):
        refused = self.refusal(request)
        if refused is not None:
            return refused
        body = request.get_json()
        record = body["record"]
        assert body["repo"] == self.DID and body["collection"] == "app.bsky.feed.post"
        assert re.fullmatch(r"[234567a-j][234567a-z]{12}", body["rkey"])
        assert record["$type"] == "app.bsky.feed.post" and record["createdAt"].endswith("Z")
        if count_graphemes(record["text"]) > 300:
            return self.json({"error": "InvalidRequest", "message": "Record/text must not be longer than 300 graphemes"}, 400)
        for facet in record.get("facets", []):
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            assert record["text"].encode()[start:end].decode() == facet["features"][0]["uri"]
        if "reply" in record:  # strong references to posts that exist
            for ref in (record["reply"]["root"], record["reply"]["parent"]):
                rkey = ref["uri"].rsplit("/", 1)[-1]
                if rkey not in self.records or self.records[rkey]["cid"] != ref["cid"]:
                    return self.json({"error": "InvalidRequest", "message": "reply to an unknown post"}, 400)
        self.creates += 1
        if body["rkey"] in self.records:
            return self.json({"error": "InternalServerError", "message": "Internal Server Error"}, 500)
        uri = f"at://{self.DID}/app.bsky.feed.post/{body['rkey']}"
        self.records[body["rkey"]] = {"uri": uri, "cid": f"bafyrei{body['rkey']}", "value": record}
        if self.fail_after_store:  # stored, but the reply is lost
            self.fail_after_store = False
            return self.json({"error": "InternalServerError"}, 502)
        return self.json({"uri": uri, "cid": f"bafyrei{body['rkey']}"})

    def delete_record(self, request):
        refused = self.refusal(request)
        if refused is not None:
            return refused
        body = request.get_json()
        assert body["repo"] == self.DID and body["collection"] == "app.bsky.feed.post"
        self.records.pop(body["rkey"], None)  # deleting a record that is gone succeeds, as on a real PDS
        self.deletes.append(body["rkey"])
        return self.json({})

    def get_record(self, request):
        refused = self.refusal(request)
        if refused is not None:
            return refused
        found = self.records.get(request.args.get("rkey"))
        if found is None:
            return self.json({"error": "RecordNotFound"}, 400)
        return self.json(found)


@pytest.fixture
def pds(httpserver):
    server = PDS()
    for nsid, method, handler in [
        ("com.atproto.server.createSession", "POST", server.create_session),
        ("com.atproto.server.refreshSession", "POST", server.refresh_session),
        ("com.atproto.repo.createRecord", "POST", server.create_record),
        ("com.atproto.repo.getRecord", "GET", server.get_record),
        ("com.atproto.repo.deleteRecord", "POST", server.delete_record),
    ]:
        httpserver.expect_request(f"/xrpc/{nsid}", method=method).respond_with_handler(handler)
    return server


def test_bluesky_post_with_link_facet(make_system, scheduled, httpserver, pds):
    system, _ = lift(make_system, scheduled, bluesky(httpserver.url_for("").rstrip("/")), "bluesky",
                     title="洪水地図を公開せよ — Flood maps must be published 🌊 " * 6)
    system.dispatcher.deliver("bluesky")
    [record] = pds.records.values()
    text = record["value"]["text"]
    assert count_graphemes(text) <= 300 and text.endswith(LINK) and "…" in text
    row = by_channel(system)["bluesky:sky"]
    assert row["status"] == "sent"
    assert row["remote_id"] == f"{record['uri']} {record['cid']}"
    assert pds.logins == 1


def two_lifts(make_system, scheduled, httpserver):
    """Two statements a few minutes apart on Bluesky; returns the system and a function lifting the n-th."""
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=bluesky(httpserver.url_for("").rstrip("/")))
    first = scheduled(system, channels="bluesky")
    second = scheduled(system, channels="bluesky", statement_name="second.txt", embargo=first + timedelta(minutes=5),
                       title="Second statement", reference="Index: TRO 01/002/2026")

    def lift_and_deliver(n):
        clock.set((first, second)[n])
        system.dispatcher.advance()
        system.dispatcher.deliver("bluesky")
    return system, lift_and_deliver


def test_bluesky_session_is_reused_and_refreshed(make_system, scheduled, httpserver, pds):
    system, lift_and_deliver = two_lifts(make_system, scheduled, httpserver)
    lift_and_deliver(0)
    pds.expire()
    lift_and_deliver(1)
    assert (pds.logins, pds.refreshes, pds.refused_refreshes) == (1, 1, 0)
    assert len(pds.records) == 2
    assert by_channel(system, "tro-01-002-2026")["bluesky:sky"]["status"] == "sent"


def test_bluesky_logs_in_again_when_the_refresh_token_has_expired_too(make_system, scheduled, httpserver, pds):
    system, lift_and_deliver = two_lifts(make_system, scheduled, httpserver)
    lift_and_deliver(0)
    pds.expire(refresh=True)
    lift_and_deliver(1)
    assert (pds.logins, pds.refreshes, pds.refused_refreshes) == (2, 0, 1)
    assert len(pds.records) == 2
    row = by_channel(system, "tro-01-002-2026")["bluesky:sky"]
    assert row["status"] == "sent" and row["attempts"] == 1


def test_bluesky_retry_after_lost_reply_does_not_post_twice(make_system, scheduled, httpserver, pds):
    pds.fail_after_store = True
    system, clock = lift(make_system, scheduled, bluesky(httpserver.url_for("").rstrip("/")), "bluesky")
    system.dispatcher.deliver("bluesky")
    assert by_channel(system)["bluesky:sky"]["status"] == "retrying"
    clock.advance(31)
    system.dispatcher.deliver("bluesky")
    row = by_channel(system)["bluesky:sky"]
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len(pds.records) == 1 and pds.creates == 1
    [record] = pds.records.values()
    assert row["remote_id"] == f"{record['uri']} {record['cid']}"


def test_bluesky_wrong_password_fails_without_showing_it(make_system, scheduled, httpserver, pds, monkeypatch):
    monkeypatch.setenv("TEST_BLUESKY_PASSWORD", "not-the-password")
    system, _ = lift(make_system, scheduled, bluesky(httpserver.url_for("").rstrip("/")), "bluesky")
    system.dispatcher.deliver("bluesky")
    row = by_channel(system)["bluesky:sky"]
    assert row["status"] == "failed" and "HTTP 401" in row["error"]
    assert "not-the-password" not in json.dumps(by_channel(system))


def test_unknown_network_is_a_config_error(write_config, run):
    extra = '\n[[channels.social]]\nnetwork = "myspace"\nname = "x"\n'
    result = run(write_config(extra=extra), "list")
    assert result.code == 2 and "channels.social[0].network: expected one of mastodon, bluesky" in result.err


@pytest.mark.parametrize("text, uri", [
    ("See (https://example.org/x).", "https://example.org/x"),
    ("See https://example.org/x, and more", "https://example.org/x"),
    ("Ends https://example.org/x?", "https://example.org/x"),
    ("Quoted “https://example.org/x”.", "https://example.org/x"),
    ("Wiki https://en.wikipedia.org/wiki/Foo_(bar).", "https://en.wikipedia.org/wiki/Foo_(bar)"),
    ("Query https://example.org/?a=1&b=2", "https://example.org/?a=1&b=2"),
])
def test_a_link_facet_leaves_out_the_punctuation_around_it(text, uri):
    [facet] = link_facets(text)
    assert facet["features"][0]["uri"] == uri
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert text.encode("utf-8")[start:end].decode("utf-8") == uri
