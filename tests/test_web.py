"""The web app through Flask's test client: every route, role and refusal, on a real database."""

import csv
import io
import json
import re
import subprocess
import sys
from datetime import timedelta

import pytest

from distributor import unsubscribe, users
from distributor.clock import FixedClock
from distributor.web import create_app
from tests.webapp import EMBARGO, LIST, PASSWORD, ROOT, SECRET, SID, START, confirmed, csrf, local, login, post


def test_every_page_needs_a_login(web):
    system, clock, app = web()
    client = app.test_client()
    for path in ("/", f"/statements/{SID}", f"/statements/{SID}/deliveries.csv", f"/statements/{SID}/email.html",
                 "/recipients/ana@paper.example.com", "/audit", "/status"):
        reply = client.get(path)
        assert reply.status_code == 302 and reply.headers["Location"].startswith(f"{ROOT}/login"), path
    reply = client.post(f"/statements/{SID}/approve")
    assert reply.status_code in (302, 400)
    assert "approved" not in json.dumps(
        [e["action"] for e in json.loads(system.cli("audit", SID, "--format", "json").out)])


def test_logging_in_and_out_and_the_session_cookie(web):
    system, clock, app = web()
    client = app.test_client()
    token = csrf(client)
    assert client.post("/login", data={"username": "maya", "password": "wrong", "csrf_token": token}).status_code == 401
    reply = client.post("/login?next=/audit", data={"username": "maya", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 302 and reply.headers["Location"] == "/audit"
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert client.get("/").status_code == 200
    # an open redirect is not followed
    other = app.test_client()
    reply = other.post("/login?next=//evil.example/x", data={"username": "maya", "password": PASSWORD,
                                                             "csrf_token": csrf(other)})
    assert reply.headers["Location"] == f"{ROOT}/"
    other = app.test_client()
    reply = other.post("/login?next=/\\evil.example/x", data={"username": "maya", "password": PASSWORD,
                                                              "csrf_token": csrf(other)})
    assert reply.headers["Location"] == f"{ROOT}/"
    # logging out ends the session on the server: the old cookie is worth nothing
    stolen = client.get_cookie("distributor_session", path=ROOT).value
    assert post(client, "/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("distributor_session", stolen, path=ROOT)
    assert thief.get("/").status_code == 302


def test_a_session_ends_after_twelve_hours_idle(web):
    system, clock, app = web()
    client = login(app)
    clock.advance(11 * 3600)
    assert client.get("/").status_code == 200  # used: kept alive
    clock.advance(12 * 3600 + 1)
    assert client.get("/").status_code == 302


def test_a_new_password_ends_every_session_of_the_old_one(web):
    system, clock, app = web()
    client = login(app)
    with system.engine.begin() as conn:
        users.set_password(conn, "maya", "a brand new password", clock.now())
    assert client.get("/").status_code == 302
    login(app, "maya", "a brand new password")


def test_the_cookie_is_not_secure_only_on_plain_http(web):
    system, clock, app = web(base_url="http://localhost:8080")
    client = app.test_client()
    reply = client.post("/login", data={"username": "maya", "password": PASSWORD, "csrf_token": csrf(client)})
    assert "Secure" not in reply.headers["Set-Cookie"]


def test_failed_logins_are_limited_per_user_and_logged(web, caplog):
    system, clock, app = web()
    client = app.test_client()
    token = csrf(client)
    for _ in range(5):
        assert client.post("/login", data={"username": "kim", "password": "nope", "csrf_token": token}).status_code == 401
    reply = client.post("/login", data={"username": "kim", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 401  # the right password too, until the window passes
    assert "failed login for 'kim'" in caplog.text and "too many failed attempts" in caplog.text
    clock.advance(16 * 60)
    assert client.post("/login", data={"username": "kim", "password": PASSWORD, "csrf_token": token}).status_code == 302


def test_every_post_needs_the_csrf_token(web):
    system, clock, app = web()
    client = login(app)
    reply = client.post(f"/statements/{SID}/approve")
    assert reply.status_code == 400
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "draft"
    fresh = app.test_client()
    assert fresh.post("/login", data={"username": "maya", "password": PASSWORD}).status_code == 400


def test_a_manager_reads_but_may_not_act(web):
    system, clock, app = web()
    client = login(app, "kim")
    assert client.get(f"/statements/{SID}").status_code == 200
    for action in ("approve", "schedule", "reschedule", "withdraw", "correct", "retract", "retry", "send-test"):
        assert post(client, f"/statements/{SID}/{action}", reason="r").status_code == 403, action
    assert post(client, "/import").status_code == 403
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "draft"


def test_an_editor_approves_and_schedules_in_their_own_name_and_refusals_show_as_one_line(web):
    system, clock, app = web()
    client = login(app)
    reply = post(client, f"/statements/{SID}/schedule")
    page = client.get(local(reply)).get_data(as_text=True)
    assert "approve it first" in page
    post(client, f"/statements/{SID}/approve")
    reply = confirmed(client, f"/statements/{SID}/schedule", embargo=EMBARGO.isoformat(), channels="email",
                      override_embargo="1")
    assert "scheduled" in client.get(local(reply)).get_data(as_text=True)
    trail = [(e["action"], e["actor"]) for e in json.loads(system.cli("audit", SID, "--format", "json").out)]
    assert ("approved", "maya") in trail and ("scheduled", "maya") in trail


def test_four_eyes_keeps_the_importer_from_approving(web):
    system, clock, app = web(four_eyes=True)
    reply = post(login(app, "sam"), f"/statements/{SID}/approve")
    assert reply.status_code == 302
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "draft"
    post(login(app, "maya"), f"/statements/{SID}/approve")
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "approved"


def delivered(system, clock):
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")


def test_the_statement_page_filters_searches_and_pages_its_recipients(web):
    system, clock, app = web()
    delivered(system, clock)
    client = login(app, "kim")
    page = client.get(f"/statements/{SID}").get_data(as_text=True)
    assert "ana@paper.example.com" in page and "bob@wire.example.net" in page
    assert "tv@tv.example.org" in page  # planned for the lift
    page = client.get(f"/statements/{SID}?q=wire+serv").get_data(as_text=True)
    assert "bob@wire.example.net" in page and "ana@paper.example.com" not in page
    page = client.get(f"/statements/{SID}?status=pending").get_data(as_text=True)
    assert "tv@tv.example.org" in page and "ana@paper.example.com</a>" not in page
    page = client.get(f"/statements/{SID}?page=2").get_data(as_text=True)
    assert "No deliveries" in page
    html = client.get(f"/statements/{SID}/email.html")
    assert "sandbox" in html.headers["Content-Security-Policy"] and b"EMBARGOED" in html.data


def test_the_csv_has_the_columns_of_log_csv(web):
    system, clock, app = web()
    delivered(system, clock)
    client = login(app, "kim")
    reply = client.get(f"/statements/{SID}/deliveries.csv")
    assert reply.mimetype == "text/csv"
    web_rows = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    cli_rows = list(csv.DictReader(io.StringIO(system.cli("log", SID, "--format", "csv").out)))
    assert web_rows == cli_rows and len(web_rows) == 3


def test_the_recipient_audit_and_alerts_pages(web):
    system, clock, app = web()
    delivered(system, clock)
    client = login(app, "kim")
    page = client.get("/recipients/ana@paper.example.com").get_data(as_text=True)
    assert SID in page and "Daily Paper" in page
    assert client.get("/recipients/nobody@example.com").status_code == 404
    assert "approved" in client.get("/audit").get_data(as_text=True)
    assert "Workers running" in client.get("/status").get_data(as_text=True)
    assert client.get("/statements/no-such-thing").status_code == 404


def test_one_click_unsubscribe_needs_no_login_and_no_csrf_but_a_signed_token(web):
    system, clock, app = web()
    delivered(system, clock)
    client = app.test_client()
    assert client.get("/u/forged-token").status_code == 404
    assert client.post("/u/" + unsubscribe.token("another secret entirely, also long", "ana@paper.example.com")
                       ).status_code == 404
    token = unsubscribe.token(SECRET, "ana@paper.example.com")
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert "ana@paper.example.com" in page and "Flood maps" not in page  # nothing of the statement
    reply = client.post(f"/u/{token}", data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded")
    assert reply.status_code == 200 and "Unsubscribed" in reply.get_data(as_text=True)
    listing = json.loads(system.cli("recipients", "list", "--format", "json").out)
    assert [r for r in listing if r["email"] == "ana@paper.example.com"][0]["suppressed"]
    trail = json.loads(system.cli("audit", "--format", "json").out)
    assert any(e["action"] == "unsubscribed" and e["actor"] == "one-click unsubscribe" for e in trail)


def test_an_uploaded_statement_is_imported_in_the_editors_name(web, statement_file):
    system, clock, app = web()
    client = login(app)
    path = statement_file(name="other.txt", title="Another statement", reference="Index: TRO 01/002/2026")
    with open(path, "rb") as handle:
        reply = client.post("/import", data={"file": (handle, "other.txt"), "csrf_token": csrf(client, "/")},
                            content_type="multipart/form-data")
    assert reply.headers["Location"] == f"{ROOT}/statements/tro-01-002-2026"
    trail = json.loads(system.cli("audit", "tro-01-002-2026", "--format", "json").out)
    assert (trail[0]["action"], trail[0]["actor"]) == ("imported", "maya")
    reply = client.post("/import", data={"file": (io.BytesIO(b"not a statement"), "bad.txt"),
                                         "csrf_token": csrf(client, "/")}, content_type="multipart/form-data")
    assert "bad.txt" in client.get(local(reply)).get_data(as_text=True)


def test_serving_needs_the_secret(write_config, run, monkeypatch):
    from distributor.channels import load_config
    from distributor.errors import ConfigError
    from distributor.store import connect
    path = write_config()
    config = load_config(path)
    with pytest.raises(ConfigError, match="web.secret_env is required"):
        create_app(config, connect(config.database_url), FixedClock(START))
    monkeypatch.setenv("SHORT_SECRET", "short")
    path = write_config(extra='\n[web]\nsecret_env = "SHORT_SECRET"\n', name="short.toml")
    config = load_config(path)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        create_app(config, connect(config.database_url), FixedClock(START))


def test_users_from_the_command_line(make_system, run, monkeypatch):
    import sys
    system = make_system()
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    result = system.cli("users", "add", "maya", "--role", "editor", "--password-stdin")
    assert result.code == 0, result.err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    result = system.cli("users", "add", "kim", "--role", "manager", "--password-stdin")
    assert result.code == 2 and "at least 12 characters" in result.err
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert system.cli("users", "add", "maya", "--role", "manager", "--password-stdin").code == 2
    listed = json.loads(system.cli("users", "list", "--format", "json").out)
    assert [(u["name"], u["role"]) for u in listed] == [("maya", "editor")]
    with system.engine.begin() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users").scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long password\n"))
    assert system.cli("users", "passwd", "maya", "--password-stdin").code == 0
    assert system.cli("users", "remove", "maya").code == 0
    assert system.cli("users", "remove", "maya").code == 2
    actions = [e["action"] for e in json.loads(system.cli("audit", "--format", "json").out)]
    assert actions.count("user_added") == 1 and "user_changed" in actions and "user_removed" in actions


def test_the_idle_limit_is_a_config_key(web):
    system, clock, app = web()
    assert system.config.web.session_idle_hours == 12
    assert timedelta(hours=12) == app.config["PERMANENT_SESSION_LIFETIME"]


@pytest.mark.parametrize("base_url, one_click", [("https://press.example.org/distributor", True),
                                                 ("http://localhost:8080", False), (None, None)])
def test_every_email_carries_its_own_unsubscribe_link(make_system, smtp_sink, statement_file, tmp_path, monkeypatch,
                                                      base_url, one_click):
    import email
    import email.policy
    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         office_extra=f'base_url = "{base_url}"' if base_url else "",
                         extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(LIST, encoding="utf-8")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert system.at("import", statement_file()).code == 0
    delivered(system, clock)
    messages = {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=email.policy.default)
                for m in smtp_sink.messages}
    assert sorted(messages) == ["ana@paper.example.com", "bob@wire.example.net"]
    for address, message in messages.items():
        [header] = message.get_all("List-Unsubscribe")
        if base_url is None:
            assert header == "<mailto:desk@office.example.org?subject=unsubscribe>"
            continue
        link, mailto = [part.strip(" <>") for part in header.split(",")]
        assert link.startswith(f"{base_url}/u/") and mailto.startswith("mailto:")
        assert unsubscribe.address_of(SECRET, link.rsplit("/", 1)[1]) == address
        assert (message.get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click") is one_click


def test_log_since_until_and_the_report(web):
    system, clock, app = web()
    delivered(system, clock)  # the file transport: the vetted two at once, the third due at the lift
    everything = json.loads(system.cli("log", SID, "--format", "json").out)
    assert len(everything) == 3
    sent_at = START.isoformat()
    same = json.loads(system.cli("log", SID, "--format", "json", "--since", sent_at).out)
    assert len(same) == 3  # two sent at START, one due at the lift
    before = json.loads(system.cli("log", SID, "--format", "json", "--until", sent_at).out)
    assert before == []
    lift_only = json.loads(system.cli("log", SID, "--format", "json", "--since",
                                      (START + timedelta(minutes=1)).isoformat()).out)
    assert [r["target"] for r in lift_only] == ["tv@tv.example.org"]
    bad = system.cli("log", "--since", "yesterday")
    assert bad.code == 2 and bad.err.startswith("distributor: --since:")
    report = system.cli("report", SID)
    assert report.code == 0
    email_line = next(line for line in report.out.splitlines() if line.startswith("email"))
    assert email_line.split()[:7] == ["email", "2", "1", "0", "0", "0", "0"]
    assert "Failed: none" in report.out


def test_forwarded_headers_count_only_behind_a_proxy(web):
    system, clock, app = web()
    client = app.test_client()
    token = csrf(client)
    for n in range(5):  # five failures, each claiming another address: without a proxy, the real one counts
        client.post("/login", data={"username": f"user{n}", "password": "x", "csrf_token": token},
                    headers={"X-Forwarded-For": f"10.0.0.{n}"})
    reply = client.post("/login", data={"username": "maya", "password": PASSWORD, "csrf_token": token})
    assert reply.status_code == 401  # this address is refused for the window


def test_a_public_address_needs_the_signing_key(write_config, run):
    path = write_config(office_extra='base_url = "https://press.example.org"')
    result = run(path, "init")
    assert result.code == 2 and "web.secret_env" in result.err and "office.base_url is set" in result.err


def test_dkim_signs_every_message_with_its_unsubscribe_headers(make_system, smtp_sink, statement_file, tmp_path,
                                                               monkeypatch):
    import base64
    import email

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    monkeypatch.setenv("TEST_DKIM_KEY", pem)
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         office_extra='base_url = "https://press.example.org"',
                         email_extra='[channels.email.dkim]\nselector = "press2026"\nprivate_key_env = "TEST_DKIM_KEY"\n',
                         extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(LIST, encoding="utf-8")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert system.at("import", statement_file()).code == 0
    delivered(system, clock)
    assert len(smtp_sink.messages) == 2

    def dns(name, timeout=5):
        assert name == b"press2026._domainkey.office.example.org."
        return f"v=DKIM1; k=rsa; p={public}".encode()
    for received in smtp_sink.messages:
        assert dkim.verify(received.data, dnsfunc=dns)
        signature = email.message_from_bytes(received.data)["DKIM-Signature"]
        signed = re.search(r"h=([^;]+)", signature).group(1).replace(" ", "").replace("\r\n", "").lower().split(":")
        assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= set(signed)
        tampered = received.data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                         b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click")
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_bad_input_in_forms_and_addresses_is_a_message_or_a_404_never_a_500(web):
    system, clock, app = web()
    client = login(app)
    for name in ("..", "statement.pdf", "a\x00b.txt"):
        reply = client.post("/import", data={"file": (io.BytesIO(b"x"), name), "csrf_token": csrf(client, "/")},
                            content_type="multipart/form-data")
        assert reply.status_code == 302, name
        assert "expected a .txt or .md file" in client.get("/").get_data(as_text=True) or name.endswith(".txt")
    assert client.get(f"/statements/{SID}?q=a%00b&page=-3&status=bogus").status_code == 200
    assert client.get("/statements/BAD%00ID").status_code == 404
    assert client.get("/recipients/a%00b@example.com").status_code == 404
    assert client.get("/?from=not-a-date").status_code == 404
    reply = post(client, f"/statements/{SID}/withdraw", reason="has a \x00 in it")
    assert "--reason" in client.get(local(reply)).get_data(as_text=True) or \
        "reason" in client.get(local(reply)).get_data(as_text=True)
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "draft"
    other = app.test_client()
    reply = other.post("/login", data={"username": "ma\x00ya", "password": PASSWORD, "csrf_token": csrf(other)})
    assert reply.status_code in (302, 401)


def test_one_click_unsubscribe_stops_the_pending_copies_of_an_address_written_in_capitals(web, statement_file):
    system, clock, app = web()
    csv_path = system.config_path.parent / "caps.csv"
    csv_path.write_text("email,name,embargo_ok\nCy.Doe@Radio.example.org,Cy,yes\n", encoding="utf-8")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    system.dispatcher.advance()
    token = unsubscribe.token(SECRET, "Cy.Doe@Radio.example.org")
    assert app.test_client().post(f"/u/{token}").status_code == 200
    [row] = [r for r in json.loads(system.cli("log", SID, "--format", "json").out) if r["target"].startswith("Cy.")]
    assert row["target"] != row["target"].lower()  # stored as written, capitals and all
    assert (row["status"], row["error"]) == ("cancelled", "unsubscribed")


def test_the_unknown_name_hash_is_made_by_the_web_app_never_on_import(web):
    """A hash takes 64 MiB for a moment: a worker that only imports the package must not pay for it."""
    probe = ("import distributor.cli, distributor.users as u, distributor.web as w; "
             "print(u.dummy_hash.cache_info().currsize)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "0\n"
    users.dummy_hash.cache_clear()
    system, clock, app = web()
    assert users.dummy_hash.cache_info().currsize == 1
    made = users.dummy_hash()
    assert users.HASHER.verify(made, "not a password of anyone")
    client = app.test_client()
    reply = client.post("/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf(client)})
    assert reply.status_code == 401 and users.dummy_hash.cache_info().hits >= 2
