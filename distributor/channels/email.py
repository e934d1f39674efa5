"""The embargoed email: one message per vetted journalist, sent ahead of the embargo.

The MIME body (text and HTML, and the attachments) is rendered and encoded once per revision and variant; per
recipient only the To, Date and Message-ID headers are made.

A statement's documents (``attachments = "documents"``), or its documents and the medium rendition of its photos
(``"all"``), go with its copies, its released version and its corrections, up to ``max_attachment_bytes`` counted
as base64 on the wire; whatever is not attached is listed in the message with where to get it. Notices (withdrawal,
embargo change, retraction) carry none.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import partial
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, select

from distributor import deliveries, media, portal, recipients, unsubscribe
from distributor.channels.base import EMBARGOED, Channel, Job
from distributor.config import Office, Table, between, is_loopback, secret
from distributor.errors import ConfigError
from distributor.outcomes import RECORDED, Claimed, Kind, Outcome, Receipt, Report, Result, Variant
from distributor.render import embargo_lines
from distributor.statements.model import Media, StatementStatus
from distributor.store import reading
from distributor.store.schema import statements
from distributor.transports.base import Envelope, Handed, MailTransport, SharedBody, mail_address
from distributor.transports.file import MailFolder
from distributor.transports.smtp import SmtpPool, SmtpSettings

TEMPLATES = {"subject": "email/embargoed.subject.j2", "text": "email/embargoed.txt.j2", "html": "email/embargoed.html.j2"}
HEADLINES = {Kind.WITHDRAWAL: "WITHDRAWN", Kind.EMBARGO_CHANGE: "EMBARGO CHANGED", Kind.RETRACTION: "RETRACTED"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

ATTACHMENTS = ("none", "documents", "all")  # what channels.email.attachments may say
IMAGE_RENDITION = "medium"  # the rendition of a photo that "all" attaches
MAX_ATTACHMENT_BYTES = 7_000_000  # about 10 MB on the wire
ATTACHMENT_CEILING = 100_000_000  # no relay takes a message much larger


@dataclass(frozen=True)
class DkimSettings:
    selector: str
    domain: str
    private_key_env: str  # the variable holding the PEM private key


DKIM_HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Reply-To", b"In-Reply-To", b"References",
                b"List-Unsubscribe", b"List-Unsubscribe-Post", b"MIME-Version", b"Content-Type"]


@dataclass(frozen=True)
class EmailSettings:
    transport: str
    list: str
    smtp: SmtpSettings
    directory: Path
    release_lists: tuple[str, ...] = ()  # their members, and the list's unvetted ones, get the release at the lift
    dkim: DkimSettings | None = None     # sign each message (RFC 6376), List-Unsubscribe included
    attachments: str = "documents"       # "none", "documents" or "all" (documents and photos' medium renditions)
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES  # all attachments together, as base64 on the wire


def encoded_size(size: int) -> int:
    """The bytes a file of ``size`` bytes takes in a message: base64, 76 characters a line, each CRLF-ended."""
    return 4 * ((size + 2) // 3) + 2 * ((size + 56) // 57)


@dataclass(frozen=True)
class Attachment:
    """A file that goes with the message: a stripped copy from the media store, named as the item."""

    item: Media
    rendition: str  # "original", or "medium" for a photo
    data: bytes

    @property
    def encoded(self) -> int:
        return encoded_size(len(self.data))

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def label(self) -> str:
        return self.item.label

    @property
    def size(self) -> str:
        return media.megabytes(len(self.data))


@dataclass(frozen=True)
class Listed:
    """An item the message does not carry, described for the reader with where to get it."""

    item: Media
    label: str             # its title or alt text
    size: str              # of the file at ``url``, e.g. "1.4 MB"
    url: str               # the file's own newsroom URL, else the statement's page
    after_lift: bool       # the URL answers only once the embargo lifts
    is_file: bool = False  # the URL is the file's own

    @property
    def caption(self) -> str | None:
        return self.item.caption

    @property
    def credit(self) -> str | None:
        return self.item.credit

    @property
    def licence(self) -> str | None:
        return self.item.licence

    @property
    def kind(self) -> str:
        return "photo" if self.item.is_image else "document"


@dataclass(frozen=True)
class RenderedEmail:
    variant: Variant
    subject: str
    text: str
    html: str
    shared: SharedBody  # From, Subject, Reply-To, List-Unsubscribe, MIME headers and the encoded body
    attached: tuple[Attachment, ...] = ()
    listed: tuple[Listed, ...] = ()

    @staticmethod
    def own_headers(to: str, name: str, message_id: str, date: datetime, replying_to: str | None = None,
                    unsubscribe: str | None = None) -> bytes:
        """The headers of one recipient's copy; everything after them is ``shared``. ``to`` is ASCII unless its
        local part cannot be (SMTPUTF8, RFC 6532: the header then carries it as UTF-8). ``replying_to`` is the
        Message-ID of the copy a notice threads under (In-Reply-To and References)."""
        display = _CONTROL.sub(" ", name).strip()[:100]
        utf8 = not to.isascii()
        addressed = _utf8_address(display, to) if utf8 else formataddr((display, to), "utf-8")
        thread = ""
        if replying_to and MESSAGE_ID.fullmatch(replying_to):
            thread = f"In-Reply-To: {replying_to}\r\nReferences: {replying_to}\r\n"
        return (f"To: {addressed}\r\n"
                f"Date: {format_datetime(date)}\r\n"
                f"Message-ID: {message_id}\r\n{thread}{unsubscribe or ''}").encode("utf-8" if utf8 else "ascii")

    def message(self, to: str, name: str, message_id: str, date: datetime, replying_to: str | None = None,
                unsubscribe: str | None = None) -> bytes:
        """The whole message for one recipient."""
        return self.own_headers(to, name, message_id, date, replying_to, unsubscribe) + self.shared.raw


def _utf8_address(display: str, address: str) -> str:
    """A To value for an SMTPUTF8 message (RFC 6532): UTF-8 as it is, the display name quoted."""
    if not display:
        return f"<{address}>"
    quoted = display.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def header_line(name: str, value: str) -> str:
    """One header, ASCII and CRLF-ended. Non-ASCII text, and text that a client would take for an encoded word
    (``=?utf-8?b?...?=`` typed into a title), go out as RFC 2047 words that decode to exactly the text."""
    if value.isascii() and "=?" not in value:
        return SMTP.fold(name, value)
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=chr(13) + chr(10), maxlinelen=78)}\r\n"


def list_unsubscribe(*uris: str) -> str:
    """The List-Unsubscribe header (RFC 2369), each URI in angle brackets exactly as written: folded only at the
    space after a comma, never inside a URI, and never encoded, so that a receiver finds the https URL of a one-click
    unsubscribe (RFC 8058) without decoding anything. A URI longer than a line keeps a line of its own; RFC 5322
    allows lines of up to 998 characters."""
    parts = [f"<{header_uri(uri)}>" for uri in uris]
    line = "List-Unsubscribe: " + ", ".join(parts)
    if len(line) > 78:
        line = "List-Unsubscribe: " + ",\r\n ".join(parts)
    return line + "\r\n"


def header_uri(uri: str) -> str:
    """The URI with whatever a URI cannot hold as it is (spaces, angle brackets, quotes, controls, non-ASCII)
    percent-encoded; every character it may hold, escapes included, unchanged."""
    return quote(uri, safe="!#$%&'()*+,-./:;=?@[]_~")


def unsubscribe_mailto(address: str) -> str:
    """The mailto URI (RFC 6068) that asks to unsubscribe ``address``'s list."""
    local_safe = "!$'()*+,;:@"  # RFC 6068's some-delims: left as they are; everything else outside unreserved is escaped
    return f"mailto:{quote(address, safe=local_safe)}?subject=unsubscribe"


def one_line(text: str) -> str:
    """Header text on one line: no CR, LF or other control characters can reach a header."""
    return " ".join(_CONTROL.sub(" ", text).split())


MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,900}>")  # what a notice may put in In-Reply-To: one id, no spaces or CR/LF


def message_id(job: Job, address: str, domain: str) -> str:
    """Deterministic per (statement revision, publication, recipient): a resend is recognisably the same message;
    a notice, a correction or a copy of a later schedule is another."""
    tag = job.tag
    seed = f"{job.statement_id}/{job.revision}/{recipients.key(address)}" + (f"/{tag}" if tag else "")
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"<{job.statement_id}.r{job.revision}.{tag + '.' if tag else ''}{digest[:24]}@{domain}>"


class EmailChannel(Channel):
    name = "email"
    public = False

    @classmethod
    def configure(cls, channels: Table, office: Office) -> EmailSettings:
        t = channels.table("email")
        transport = t.get("transport", str, choices=("smtp", "file"))
        s = t.table("smtp")
        ca_file = s.path("ca_file", "") if s.has("ca_file") else None
        if ca_file is not None and not ca_file.is_file():
            raise s.error("ca_file", f"no such file: {ca_file}")
        max_rate = s.get("max_per_second", float, 0.0, check=between(0, 100_000))  # 0: no limit
        smtp = SmtpSettings(
            host=s.get("host", str, "localhost"),
            port=s.get("port", int, 25, check=lambda p: p if 0 < p < 65536 else _bad_port(p)),
            security=s.get("security", str, "none", choices=("none", "starttls", "ssl")),
            username=s.get("username", str, None),
            password_env=s.get("password_env", str, None),
            connections=int(s.get("connections", int, 4, check=between(1, 100))),
            max_per_second=max_rate or None,
            timeout=s.get("timeout_seconds", float, 30.0, check=between(0, 3600, low_open=True)),
            ca_file=ca_file,
        )
        if smtp.username and smtp.security == "none" and not is_loopback(smtp.host):
            raise s.error("security", f"a login to {smtp.host} without TLS would send the password in clear text; "
                                      f"use \"starttls\" or \"ssl\"")
        s.done()
        f = t.table("file")
        directory = f.path("directory", "../outbox/email")
        f.done()
        release_lists = t.get("release_lists", list, [])
        if not all(isinstance(name, str) and name.strip() for name in release_lists):
            raise t.error("release_lists", "expected a list of list names, e.g. [\"newsdesks\"]")
        dkim = None
        if t.has("dkim"):
            d = t.table("dkim")
            dkim = DkimSettings(selector=d.get("selector"), domain=d.get("domain", str, office.domain),
                                private_key_env=d.get("private_key_env"))
            d.done()
        else:
            t.table("dkim")
        attachments = t.get("attachments", str, "documents", choices=ATTACHMENTS)
        max_attachment_bytes = t.get("max_attachment_bytes", int, MAX_ATTACHMENT_BYTES, check=_attachment_bytes)
        settings = EmailSettings(transport=transport, list=t.get("list", str, "embargo"), smtp=smtp,
                                 directory=directory, release_lists=tuple(release_lists), dkim=dkim,
                                 attachments=attachments, max_attachment_bytes=max_attachment_bytes)
        t.done()
        return settings

    def __init__(self, settings: EmailSettings, context):
        super().__init__(settings, context)
        self.office = context.config.office
        self._transport: MailTransport | None = None
        self._unsubscribe_key: str | None = None
        self._dkim_key: bytes | None = None

    @property
    def lanes(self) -> int:
        return self.settings.smtp.connections if self.settings.transport == "smtp" else 1

    @property
    def transport(self) -> MailTransport:
        """Chosen once from the config; built (and its secret read) only when mail is to be sent."""
        if self._transport is None:
            self._transport = (SmtpPool(self.settings.smtp) if self.settings.transport == "smtp"
                               else MailFolder(self.settings.directory))
        return self._transport

    def lists(self, job: Job) -> tuple[str, ...]:
        """The lists chosen for the statement (``channels.email.list`` unless others were chosen)."""
        return job.lists or (self.settings.list,)

    def targets(self, conn: Connection, job: Job) -> Iterable[str]:
        """The members vetted on any of the chosen lists, each once, except those who get this revision as a
        correction."""
        return recipients.eligible(conn, self.lists(job), embargoed=True, unless=self._holds(job))

    def release_targets(self, conn: Connection, job: Job) -> Iterable[str]:
        """The chosen lists' members vetted on none of them, and the release lists' members: the released
        version, at the lift, each once. Nobody who has (or is about to get) this revision otherwise."""
        return recipients.release_members(conn, self.lists(job), self.settings.release_lists, self._holds(job))

    @staticmethod
    def _holds(job: Job) -> recipients.Unless:
        return partial(deliveries.holds_revision, statement_id=job.statement_id, revision=job.revision,
                       generation=job.generation)

    def render(self, job: Job, variant: Variant, subject_prefix: str = "",
               stopped: StatementStatus | None = None) -> RenderedEmail:
        """``stopped``, for a preview only: the statement was withdrawn (or retracted), and the copy says so where
        it would say that it is embargoed."""
        renderer = self.context.renderer
        context = renderer.context(job.statement, job.statement_id, job.embargo,
                                   embargoed=variant == EMBARGOED and stopped is None)
        if stopped is not None:
            context["stopped"] = stopped.value
        templates = TEMPLATES
        if job.kind is Kind.CORRECTION:
            subject_prefix += "CORRECTED: "
            context["correction"] = {"note": job.notice.note if job.notice else None}
        elif job.kind.notice_only:
            templates = {part: f"email/{job.kind.value}.{ext}.j2" for part, ext in
                         (("subject", "subject"), ("text", "txt"), ("html", "html"))}
            detail = job.notice.detail if job.notice else {}
            previous = detail.get("previous")
            context.update(note=job.notice.note if job.notice else None, headline=HEADLINES[job.kind],
                           previous_lines=embargo_lines(datetime.fromisoformat(previous), self.office) if previous else [])
        context["portal_link"] = self.portal_link(job, variant, stopped)
        # a notice is news about a copy the journalist holds: it carries no files and lists none
        attached, listed = ([], []) if job.kind.notice_only else self.attachments(job, variant)
        context.update(attachments=attached, not_attached=listed)
        subject = subject_prefix + one_line(renderer.render(templates["subject"], **context))
        text = renderer.render(templates["text"], **context)
        html = renderer.render(templates["html"], **context)

        body = EmailMessage(policy=SMTP)
        body.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        body.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
        seed = f"{job.statement_id}/{job.revision}/{job.tag}/{variant.value}".encode()
        boundary = "=_" + hashlib.sha256(seed).hexdigest()[:32]  # "=_" occurs in no quoted-printable or base64 text
        body.set_boundary(boundary)
        for attachment in attached:  # the first makes the message multipart/mixed, the alternative its first part
            maintype, _, subtype = attachment.item.content_type.partition("/")
            body.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.item.name)
        if attached:  # neither boundary a prefix of the other: a parser could take one for the other
            body.set_boundary(boundary + "m")
            alternative = next(body.iter_parts())
            alternative.set_boundary(boundary + "a")
        raw = body.as_bytes(policy=SMTP)
        mime_head, _, encoded = raw.partition(b"\r\n\r\n")

        office = self.office
        head = (SMTP.fold("From", formataddr((one_line(office.name), office.from_addr), charset="utf-8"))
                + header_line("Subject", subject)
                + SMTP.fold("Reply-To", office.reply_to)
                + ("" if self.one_click else list_unsubscribe(unsubscribe_mailto(office.unsubscribe_mailto)))
                ).encode("ascii") + mime_head + b"\r\n"
        shared = SharedBody(head + b"\r\n" + encoded, portal.PLACEHOLDER.encode() if context["portal_link"] else None)
        return RenderedEmail(variant, subject, text, html, shared, tuple(attached), tuple(listed))

    def portal_link(self, job: Job, variant: Variant, stopped: StatementStatus | None = None) -> str | None:
        """Where each journalist's own link goes (a placeholder, filled per message), in the embargoed copy and in
        every notice, with the portal on; the released version, which unvetted members get too, has none."""
        if self.context.config.portal is None or not self.office.base_url or stopped is not None:
            return None
        if variant != EMBARGOED and job.kind is Kind.STATEMENT:
            return None
        return f"{self.office.base_url}/j/{portal.PLACEHOLDER}"

    def attachments(self, job: Job, variant: Variant) -> tuple[list[Attachment], list[Listed]]:
        """What goes with a copy of the statement, in the statement's order, while the total stays within
        ``max_attachment_bytes`` as base64; and everything else, each with where it can be had: the statement's
        page once the embargo lifts, or (the released version, with a newsroom) the file's own URL."""
        items = job.statement.media
        if not items:
            return [], []
        config = self.context.config
        store = media.store_of(config)
        mode, room = self.settings.attachments, self.settings.max_attachment_bytes
        wanted = [item for item in items if mode == "all" or (mode == "documents" and not item.is_image)]
        missing = store.missing(tuple(wanted))
        if missing:  # never sent without them, nor with anything else: the rows wait until the files are back
            raise ConfigError(f"{job.statement_id}: the media store has no copy of "
                              f"{', '.join(item.name for item in missing)}", where=str(store.root))
        embargoed = variant == EMBARGOED
        attached: list[Attachment] = []
        listed: list[Listed] = []
        for item in items:
            name = IMAGE_RENDITION if item.is_image else media.ORIGINAL
            if item in wanted and encoded_size(store.rendition(item, name).size) <= room:
                attachment = Attachment(item, name, store.read(item, name))
                attached.append(attachment)
                room -= attachment.encoded
                continue
            url = None if embargoed else media.public_url(config, job.statement_id, item)
            listed.append(Listed(item, item.label, media.megabytes(item.size),
                                 url or self.office.public_link(job.statement_id), after_lift=embargoed,
                                 is_file=url is not None))
        return attached, listed

    @property
    def one_click(self) -> bool:
        """Per-recipient unsubscribe links (RFC 8058) when the web app has a public address."""
        return bool(self.office.base_url and self.context.config.web.secret_env)

    def unsubscribe_key(self) -> str | None:
        if not self.one_click:
            return None
        if self._unsubscribe_key is None:
            assert self.context.config.web.secret_env is not None
            self._unsubscribe_key = secret(self.context.config.web.secret_env, "web.secret_env")
        return self._unsubscribe_key

    def dkim_key(self) -> bytes | None:
        """The DKIM private key, read once from the variable ``channels.email.dkim.private_key_env`` names."""
        if self.settings.dkim is None:
            return None
        if self._dkim_key is None:
            self._dkim_key = secret(self.settings.dkim.private_key_env,
                                    "channels.email.dkim.private_key_env").encode("ascii")
        return self._dkim_key

    def dkim_signature(self, message: bytes, key: bytes) -> bytes:
        """The DKIM-Signature header for one whole message (relaxed canonicalisation, rsa-sha256)."""
        import dkim

        d = self.settings.dkim
        assert d is not None
        present = [h for h in DKIM_HEADERS if b"\r\n" + h + b":" in b"\r\n" + message.partition(b"\r\n\r\n")[0]]
        return dkim.sign(message, d.selector.encode(), d.domain.encode(), key, include_headers=present,
                         canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")

    def unsubscribe_headers(self, key: str | None, address: str) -> str | None:
        """List-Unsubscribe with this recipient's signed link and the mailto; List-Unsubscribe-Post only over
        https, as RFC 8058 requires."""
        if key is None or not self.office.base_url:
            return None
        link = unsubscribe.url(self.office.base_url, key, address)
        headers = list_unsubscribe(link, unsubscribe_mailto(self.office.unsubscribe_mailto))
        if link.startswith("https://"):
            headers += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        return headers

    PREVIEW_TO = ("Placeholder Journalist", "journalist@example.invalid")

    def preview(self, job: Job, variant: Variant, form: str = "eml", stopped: StatementStatus | None = None) -> str:
        """The whole message (``eml``), its HTML part (``html``) or its text part (``text``), addressed to a
        placeholder recipient; for a withdrawn or retracted statement (``stopped``), marked as such instead of
        embargoed."""
        rendered = self.render(job, variant, stopped=stopped)
        if form == "html":
            return rendered.html
        if form == "text":
            return rendered.text
        name, address = self.PREVIEW_TO
        try:
            headers = self.unsubscribe_headers(self.unsubscribe_key(), address)
        except ConfigError:
            headers = None  # a preview needs no secret: without it, no unsubscribe link
        raw = rendered.message(address, name, message_id(job, address, self.office.domain), self.clock.now(),
                               unsubscribe=headers)
        return raw.decode("utf-8", "replace").replace("\r\n", "\n")

    def send_test(self, job: Job, variant: Variant, addresses: list[str]) -> list[Handed]:
        """One copy to each address at once, subject prefixed ``[TEST] ``, with a Message-ID of its own."""
        rendered = self.render(job, variant, subject_prefix="[TEST] ")
        now = self.clock.now()
        envelopes = []
        for key, address in enumerate(addresses):
            wire_address, smtputf8 = mail_address(address)
            mid = f"<{job.statement_id}.r{job.revision}.test.{uuid.uuid4().hex[:16]}@{self.office.domain}>"
            own = rendered.own_headers(wire_address, "", mid, now)
            body = rendered.shared.personal(portal.link_token("a test copy opens nothing", 0).encode()) \
                if rendered.shared.placeholder is not None else rendered.shared
            envelopes.append(Envelope(key, self.office.from_addr, wire_address, own, mid, body, smtputf8))
        handed: list[Handed] = []

        def keep(result: Handed) -> Receipt:
            handed.append(result)
            return RECORDED

        self.transport.send_many(envelopes, keep)
        self.close()
        return sorted(handed, key=lambda h: h.key)

    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def deliver(self, job: Job, rendered: RenderedEmail, rows: list[Claimed], report: Report) -> None:
        targets = [row.target for row in rows]
        with reading(self.context.engine) as conn:  # checked again now: a journalist may have been de-vetted
            # against the lists chosen now: they may have grown since the job was read
            chosen = conn.execute(select(statements.c.lists).where(
                statements.c.id == job.statement_id)).scalar() or self.lists(job)
            standing = recipients.standing(conn, tuple(chosen), targets, self.settings.release_lists)
            threads = deliveries.first_copies(conn, job.statement_id, self.name, targets, job.generation) \
                if job.kind is not Kind.STATEMENT else {}
        try:
            key = self.unsubscribe_key()
            dkim_key = self.dkim_key()
        except ConfigError as exc:  # the row waits until the variable is set, as for any transport secret
            for row in rows:
                report(Outcome(row.id, Result.TRANSPORT, str(exc)))
            return
        current = self.current(job)  # checked again now: withdrawn, moved or scheduled afresh since the claim
        stop = current.overtakes(job)
        if stop is None and rendered.variant == EMBARGOED and current.embargo != job.embargo:
            for row in rows:  # the copy would state the old time: made again, with the new one, at the next attempt
                report(Outcome(row.id, Result.RETRY, "the embargo moved as this copy was made"))
            return
        if stop is not None:
            for row in rows:
                report(Outcome(row.id, Result.CANCELLED, stop))
            return
        # a notice goes to whoever holds the copy, vetted still or not; the statement's text only to the vetted
        embargoed = rendered.variant == EMBARGOED and not job.kind.notice_only
        now = self.clock.now()
        ids: dict[int, str] = {}

        def prepare(row: Claimed) -> Envelope | Outcome:
            if embargoed and standing[row.target].awaits_release:
                return Outcome(row.id, Result.REFUSED, "not vetted for embargoed copies: the released version goes "
                                                       "at the lift", not_before=job.embargo)
            refusal = standing[row.target].refusal(embargoed, tuple(chosen))
            if refusal:
                return Outcome(row.id, Result.CANCELLED, refusal)
            address, smtputf8 = mail_address(row.target)
            mid = message_id(job, row.target, self.office.domain)
            own = rendered.own_headers(address, standing[row.target].name, mid, now, threads.get(row.target),
                                       self.unsubscribe_headers(key, row.target))
            body = rendered.shared  # with the journalist's own portal link, derived from the row: a resend has it too
            if body.placeholder is not None and key is not None:
                body = body.personal(portal.link_token(key, row.id).encode())
            if dkim_key is not None:
                own = self.dkim_signature(own + body.raw, dkim_key) + own
            ids[row.id] = mid
            return Envelope(row.id, self.office.from_addr, address, own, mid, body, smtputf8)

        def handed(result: Handed) -> Receipt:
            return report(Outcome(result.key, result.result, result.detail, remote_id=ids[result.key],
                                  variant=rendered.variant))

        # each envelope is made as a connection takes it: the first message goes out at once, not after all of them
        self.transport.send_many(self.prepared(rows, report, prepare), handed)


def _attachment_bytes(value: int) -> int:
    if not 0 <= value <= ATTACHMENT_CEILING:
        raise ValueError(f"expected a number of bytes from 0 (attach nothing) to {ATTACHMENT_CEILING:,}, got {value!r}")
    return value


def _bad_port(port: int) -> int:
    raise ValueError(f"expected a port from 1 to 65535, got {port}")
