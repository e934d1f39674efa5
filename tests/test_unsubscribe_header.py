"""List-Unsubscribe as a receiver reads it (RFC 2369, RFC 8058): the https URL in angle brackets, as written.

Before, a header longer than a line (any base_url with a path) went out as RFC 2047 encoded words,
``=?utf-8?q?=3Chttps=3A//press=2Eexample=2Eorg/distributor/u?=``, in which a receiver finds no URL at all.
"""

import email
import email.policy
import re

import pytest

from distributor import unsubscribe
from distributor.clock import FixedClock
from tests.webapp import EMBARGO, SECRET, SID, START

LIST = """email,name,outlet,embargo_ok
ana@paper.example.com,Ana Lima,Daily Paper,yes
bob@wire.example.net,Bob Ng,Wire Service,yes
"""
LONG_BASE = "https://press.example.org/" + "/".join(["communications-and-media-relations"] * 2) + "/distributor"
LONG_MAILTO = "unsubscribe-requests-for-the-press-office@lists.communications.office.example.org"


def sent(make_system, smtp_sink, statement_file, tmp_path, monkeypatch, office_extra: str) -> list:
    monkeypatch.setenv("TEST_WEB_SECRET", SECRET)
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port, office_extra=office_extra,
                         extra='\n[web]\nsecret_env = "TEST_WEB_SECRET"\n')
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(LIST, encoding="utf-8")
    assert system.cli("recipients", "import", csv_path, "--list", "embargo").code == 0
    assert system.at("import", statement_file()).code == 0
    assert system.at("approve", SID, "--by", "maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == ["ana@paper.example.com", "bob@wire.example.net"]
    return smtp_sink.messages


def raw_header(data: bytes, name: bytes) -> tuple[list[bytes], bytes]:
    """A header's physical lines as the bytes on the wire, and its value unfolded (RFC 5322 2.2.3)."""
    head = data.partition(b"\r\n\r\n")[0].split(b"\r\n")
    [start] = [i for i, line in enumerate(head) if line.lower().startswith(name.lower() + b":")]
    lines = [head[start]]
    for line in head[start + 1:]:
        if line[:1] not in (b" ", b"\t"):
            break
        lines.append(line)
    return lines, b"".join(lines).partition(b":")[2].strip()


@pytest.mark.parametrize("base_url", ["https://press.example.org/distributor", LONG_BASE], ids=["path", "long"])
def test_the_one_click_url_is_plain_in_angle_brackets(make_system, smtp_sink, statement_file, tmp_path, monkeypatch,
                                                       base_url):
    assert len(LONG_BASE) > 100
    for received in sent(make_system, smtp_sink, statement_file, tmp_path, monkeypatch, f'base_url = "{base_url}"'):
        address = received.rcpt_tos[0]
        link = unsubscribe.url(base_url, SECRET, address)
        mailto = "mailto:desk@office.example.org?subject=unsubscribe"
        # the raw bytes: no encoded word, the URL whole on one line, folded only at the space after the comma
        lines, value = raw_header(received.data, b"List-Unsubscribe")
        assert b"=?" not in value
        assert f"<{link}>".encode() in lines[0]
        assert re.findall(rb"<([^<>]*)>", value) == [link.encode(), mailto.encode()]
        assert all(len(line) <= 998 for line in lines)
        assert len(lines) == 1 or all(line.endswith(b",") for line in lines[:-1])
        post_lines, post = raw_header(received.data, b"List-Unsubscribe-Post")
        assert post_lines == [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
        # a receiver's parser
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        [header] = message.get_all("List-Unsubscribe")
        assert re.findall(r"<(https://[^<>\s]+)>", str(header)) == [link]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe.address_of(SECRET, link.rsplit("/", 1)[1]) == address


def test_a_long_mailto_is_not_encoded_either(make_system, smtp_sink, statement_file, tmp_path, monkeypatch):
    for received in sent(make_system, smtp_sink, statement_file, tmp_path, monkeypatch,
                         f'unsubscribe_mailto = "{LONG_MAILTO}"'):
        lines, value = raw_header(received.data, b"List-Unsubscribe")
        assert value == f"<mailto:{LONG_MAILTO}?subject=unsubscribe>".encode()
        assert len(lines) == 1 and b"=?" not in value
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert message["List-Unsubscribe"] == f"<mailto:{LONG_MAILTO}?subject=unsubscribe>"
        assert message.get("List-Unsubscribe-Post") is None
