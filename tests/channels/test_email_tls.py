"""SMTP over TLS against real aiosmtpd servers on loopback, with certificates from a throwaway CA (trustme).

The sender always verifies the server: against ``channels.email.smtp.ca_file`` when set, else the system trust
store. A certificate it cannot verify is a transport fault: the rows wait for a retry, nothing is marked sent.
"""

import email
import email.policy
import json
import ssl
from dataclasses import dataclass, field

import pytest
import trustme

from tests.conftest import Sink, SinkHandler, _start_sink

RECIPIENTS = """email,name,embargo_ok
ana@paper.example.com,Ana Lima,yes
bob@wire.example.net,Bob Ng,yes
zoe@radio.example.org,Zoe Roe,yes
"""
ELIGIBLE = {"ana@paper.example.com", "bob@wire.example.net", "zoe@radio.example.org"}
SID = "tro-01-001-2026"


@dataclass
class TlsSinkHandler(SinkHandler):
    """The sink, noting the TLS version of the connection each accepted message came over (None: plaintext)."""

    tls_versions: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            ssl_object = server.transport.get_extra_info("ssl_object")
            self.tls_versions.append(ssl_object.version() if ssl_object else None)
        return reply


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def tls_server(ca):
    """tls_server(mode, names=...) → a Sink speaking STARTTLS (required) or implicit TLS, with a cert for names."""
    controllers = []

    def start(mode: str, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Sink:
        context = server_context(ca, *names)
        handler = TlsSinkHandler()
        if mode == "starttls":
            controller = _start_sink(handler, tls_context=context, require_starttls=True)
        else:
            controller = _start_sink(handler, ssl_context=context)
        controllers.append(controller)
        return Sink("127.0.0.1", controller.port, handler)
    yield start
    for controller in controllers:
        controller.stop()


def prepare(system, tmp_path, statement_file):
    csv = tmp_path / "r.csv"
    csv.write_text(RECIPIENTS, encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    result = system.cli("schedule", SID, "--embargo", "2099-10-15 00:01 Europe/London")
    assert result.code == 0, result.err


def deliver_now(system) -> dict[str, dict]:
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    return {r["target"]: r for r in json.loads(system.cli("log", SID, "--format", "json").out)}


def smtp_extra(security: str, ca_file: str | None) -> str:
    return f'security = "{security}"\n' + (f'ca_file = "{ca_file}"\n' if ca_file else "")


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_mail_goes_through_tls_verified_against_ca_file(make_system, tls_server, ca, tmp_path, statement_file,
                                                         security):
    sink = tls_server(security)
    ca.cert_pem.write_to_path(str(tmp_path / "relay-ca.pem"))
    # A relative ca_file resolves against the config file's folder (tmp_path), like every other path.
    system = make_system(transport="smtp", smtp_port=sink.port, smtp_extra=smtp_extra(security, "relay-ca.pem"))
    assert system.config.channels["email"].smtp.ca_file == (tmp_path / "relay-ca.pem").resolve()
    prepare(system, tmp_path, statement_file)
    rows = deliver_now(system)

    assert {target: r["status"] for target, r in rows.items()} == dict.fromkeys(ELIGIBLE, "sent")
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(ELIGIBLE)
    assert len(sink.handler.tls_versions) == 3
    assert all(version in ("TLSv1.2", "TLSv1.3") for version in sink.handler.tls_versions)
    for received in sink.messages:
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        assert msg["Message-ID"] == rows[received.rcpt_tos[0]]["remote_id"]
        assert msg["Subject"].startswith("EMBARGOED UNTIL")


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize("trust", ["system store", "another CA", "wrong host name"])
def test_unverifiable_certificate_is_a_transport_fault(make_system, tls_server, ca, tmp_path, statement_file,
                                                       security, trust):
    if trust == "wrong host name":  # signed by the CA we trust, but for another host
        sink = tls_server(security, names=("mail.example.org",))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        ca_file = "ca.pem"
    elif trust == "another CA":
        sink = tls_server(security)
        trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
        ca_file = "other-ca.pem"
    else:  # no ca_file: the system trust store, which has never heard of this CA
        sink = tls_server(security)
        ca_file = None
    system = make_system(transport="smtp", smtp_port=sink.port, smtp_extra=smtp_extra(security, ca_file))
    prepare(system, tmp_path, statement_file)
    rows = deliver_now(system)

    assert sink.messages == []
    assert {r["status"] for r in rows.values()} == {"retrying"}
    assert all(r["sent_at"] is None and r["remote_id"] is None for r in rows.values())
    assert all("certificate" in r["error"] for r in rows.values()), [r["error"] for r in rows.values()]
    if trust == "wrong host name":
        assert all("127.0.0.1" in r["error"] and "mismatch" in r["error"] for r in rows.values())
    from distributor import deliveries
    with system.engine.connect() as conn:
        assert {a["outcome"] for a in deliveries.attempt_rows(conn, SID)} == {"transport"}


def test_plaintext_against_a_server_that_requires_starttls_is_refused_cleanly(make_system, tls_server, tmp_path,
                                                                              statement_file):
    sink = tls_server("starttls")
    system = make_system(transport="smtp", smtp_port=sink.port, smtp_extra='security = "none"')
    prepare(system, tmp_path, statement_file)
    rows = deliver_now(system)

    assert sink.messages == []
    assert {r["status"] for r in rows.values()} == {"retrying"}
    assert all(r["sent_at"] is None and r["attempts"] == 1 for r in rows.values())
    assert all(r["error"] == "MAIL FROM refused: 530 Must issue a STARTTLS command first" for r in rows.values())


def test_missing_ca_file_is_a_config_error_naming_the_key(write_config, run, tmp_path):
    path = write_config(transport="smtp", smtp_extra='security = "starttls"\nca_file = "no-such-ca.pem"')
    result = run(path, "init")
    assert result.code == 2
    assert "channels.email.smtp.ca_file: no such file" in result.err
    assert str(tmp_path / "no-such-ca.pem") in result.err
    assert "Traceback" not in result.err
