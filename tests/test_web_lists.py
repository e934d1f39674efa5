"""The lists' pages through Flask's test client: who may read and change them, the members with their search,
the CSV import with the command line's report, and every change audited in the editor's name."""

import html
import io
import json
import re

from distributor import unsubscribe
from tests.webapp import ROOT, SECRET, csrf, local, login, post

MEMBERS = """email,name,outlet,embargo_ok,language,tags
ana@paper.example.com,Ana Lima,Daily Paper,yes,pt,courts health
bob@wire.example.net,Bob Ng,Wire Service,yes,en,economy
cy@radio.example.org,Cy Park,City Radio,no,ko,health
"""
BAD = """email,name,embargo_ok
dee@tv.example.org,Dee,yes
not-an-address,X,yes
eve@paper.example.com,Eve,maybe
DEE@tv.example.org,Dee again,no
"""


def text(reply) -> str:
    """What the page says, tags taken out and entities read."""
    return html.unescape(re.sub(r"<[^>]+>", " ", reply.get_data(as_text=True)))


def upload(client, content: str, name: str = "journalists.csv", path: str = "/lists", **fields):
    return client.post("/lists/import", data={"file": (io.BytesIO(content.encode()), name),
                                              "csrf_token": csrf(client, path), **fields},
                       content_type="multipart/form-data")


def members(system, list_name: str | None = None) -> dict[str, dict]:
    return {r["email"]: r for r in json.loads(system.cli("recipients", "list", "--format", "json").out)
            if list_name is None or r["list"] == list_name}


def trail(system, since: int = 0) -> list[dict]:
    return json.loads(system.cli("audit", "--format", "json").out)[since:]


def rows(reply) -> list[list[str]]:
    """The cells of each row of the page's table, as text."""
    body = reply.get_data(as_text=True)
    return [[" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in
             re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
            if "<td" in row]


def test_every_lists_page_and_change_needs_a_login(web):
    system, clock, app = web()
    client = app.test_client()
    for path in ("/lists", "/lists/embargo", "/lists/nothing-of-the-kind"):
        reply = client.get(path)
        assert reply.status_code == 302 and reply.headers["Location"].startswith(f"{ROOT}/login"), path
    before = len(trail(system))
    token = csrf(client)
    for path in ("/lists/import", "/lists/add", "/lists/remove", "/lists/unsubscribe", "/lists/lift"):
        reply = client.post(path, data={"csrf_token": token, "list": "embargo", "email": "ana@paper.example.com"})
        assert reply.status_code == 302 and local(reply).startswith("/login"), path
    assert len(trail(system)) == before and "ana@paper.example.com" in members(system, "embargo")


def test_the_lists_page_counts_members_and_vetted_ones(web, tmp_path):
    system, clock, app = web()
    other = tmp_path / "other.csv"
    other.write_text(MEMBERS, encoding="utf-8")
    assert system.cli("recipients", "import", other, "--list", "regional desk").code == 0
    reply = login(app, "kim").get("/lists")
    assert reply.status_code == 200
    assert rows(reply) == [["embargo", "3", "2"], ["regional desk", "3", "2"]]
    assert f'href="{ROOT}/lists/regional%20desk"' in reply.get_data(as_text=True)


def test_a_list_shows_its_members_with_vetting_language_tags_and_suppression(web, tmp_path):
    system, clock, app = web()
    path = tmp_path / "m.csv"
    path.write_text(MEMBERS, encoding="utf-8")
    assert system.cli("recipients", "import", path, "--list", "desk").code == 0
    assert system.cli("recipients", "unsubscribe", "bob@wire.example.net", "--by", "Kim Ahn").code == 0
    client = app.test_client()
    client.post(f"/u/{unsubscribe.token(SECRET, 'cy@radio.example.org')}")
    reply = login(app, "kim").get("/lists/desk")
    assert reply.status_code == 200
    found = {r[0]: r[1:7] for r in rows(reply)}
    assert found["ana@paper.example.com"] == ["Ana Lima", "Daily Paper", "yes", "pt", "courts health", "no"]
    assert found["bob@wire.example.net"][:5] == ["Bob Ng", "Wire Service", "yes", "en", "economy"]
    assert found["bob@wire.example.net"][5].startswith("unsubscribed by Kim Ahn ")
    assert found["cy@radio.example.org"][2] == "no"
    assert found["cy@radio.example.org"][5].startswith("unsubscribed by the recipient ")
    page = reply.get_data(as_text=True)
    assert "3 members, 2 vetted for embargoed copies" in page
    assert "<form method=\"post\"" not in page.split("</header>")[1]  # a manager reads; no form to change


def test_a_list_that_does_not_exist_or_could_not_be_named_is_404(web):
    system, clock, app = web()
    client = login(app)
    assert client.get("/lists/embargo").status_code == 200
    for name in ("nothing-of-the-kind", "EMBARGO", " ", "x" * 101, "embargo%00"):
        assert client.get(f"/lists/{name}").status_code == 404, name
    assert client.get("/lists/" + "x" * 100).status_code == 404  # a valid name, but no such list


def test_search_by_address_name_outlet_or_tag_in_any_case(web, tmp_path):
    system, clock, app = web()
    path = tmp_path / "m.csv"
    path.write_text(MEMBERS + "fay@50percent.example.com,Fay,Percent_Post,no,,\n", encoding="utf-8")
    assert system.cli("recipients", "import", path, "--list", "desk").code == 0
    client = login(app, "kim")

    def found(q: str) -> list[str]:
        reply = client.get("/lists/desk", query_string={"q": q})
        assert reply.status_code == 200
        return [r[0] for r in rows(reply) if "@" in r[0]]
    assert found("WIRE.example") == ["bob@wire.example.net"]  # the address
    assert found("park") == ["cy@radio.example.org"]  # the name
    assert found("daily") == ["ana@paper.example.com"]  # the outlet
    assert found("health") == ["ana@paper.example.com", "cy@radio.example.org"]  # a tag
    assert found("%") == [] and found("y_p") == []  # wildcards are letters like any other: no "Daily Paper"
    assert found("T_P") == ["fay@50percent.example.com"]
    assert found("") == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org",
                         "fay@50percent.example.com"]
    page = client.get("/lists/desk", query_string={"q": "health"}).get_data(as_text=True)
    assert "2 matching members." in page


def test_members_are_shown_50_a_page(web, tmp_path):
    system, clock, app = web()
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"m{i:03}@paper.example.com\n" for i in range(120)), encoding="utf-8")
    assert system.cli("recipients", "import", path, "--list", "many").code == 0
    client = login(app, "kim")
    first = client.get("/lists/many")
    assert [r[0] for r in rows(first)] == [f"m{i:03}@paper.example.com" for i in range(50)]
    assert f'href="{ROOT}/lists/many?page=2"' in first.get_data(as_text=True)
    last = client.get("/lists/many?page=3")
    assert [r[0] for r in rows(last)] == [f"m{i:03}@paper.example.com" for i in range(100, 120)]
    assert "page=4" not in last.get_data(as_text=True) and "120 members." in last.get_data(as_text=True)


def test_a_manager_reads_and_every_change_is_403(web):
    system, clock, app = web()
    client = login(app, "kim")
    assert client.get("/lists").status_code == 200 and client.get("/lists/embargo").status_code == 200
    before = len(trail(system))
    assert upload(client, MEMBERS, list="embargo").status_code == 403
    for path, data in (("/lists/add", {"list": "embargo", "email": "new@paper.example.com"}),
                       ("/lists/remove", {"list": "embargo", "email": "ana@paper.example.com"}),
                       ("/lists/unsubscribe", {"email": "ana@paper.example.com"}),
                       ("/lists/lift", {"email": "ana@paper.example.com"})):
        assert post(client, path, **data).status_code == 403, path
    assert len(trail(system)) == before and len(members(system, "embargo")) == 3
    assert not any(r["suppressed"] for r in members(system).values())


def test_a_change_without_the_csrf_token_is_refused(web):
    system, clock, app = web()
    client = login(app)
    reply = client.post("/lists/add", data={"list": "embargo", "email": "new@paper.example.com"})
    assert reply.status_code == 400 and "new@paper.example.com" not in members(system)


def test_an_import_reports_as_the_command_line_does(web, tmp_path):
    system, clock, app = web()
    path = tmp_path / "journalists.csv"
    path.write_text(BAD, encoding="utf-8")
    cli = system.cli("recipients", "import", path, "--list", "cli copy")
    expected = [line.replace(str(path), "journalists.csv") for line in (cli.err + cli.out).splitlines()]
    assert len(expected) == 4 and expected[0].startswith("journalists.csv:3: email 'not-an-address'")
    client = login(app)
    reply = upload(client, BAD, list="embargo", path="/lists/embargo")
    assert reply.status_code == 200
    report = html.unescape(re.search(r"<pre>(.*?)</pre>", reply.get_data(as_text=True), re.S).group(1))
    assert report.splitlines() == [line.replace("cli copy", "embargo") for line in expected]
    assert str(tmp_path) not in reply.get_data(as_text=True)
    assert "dee@tv.example.org" in members(system, "embargo")
    [entry] = [e for e in trail(system) if e["action"] == "recipients_imported" and e["actor"] == "maya"]
    assert entry["detail"] == {"file": "journalists.csv", "list": "embargo", "added": 1, "updated": 0,
                               "replace": False, "removed": [], "rejected": 3}


def test_a_new_list_is_made_by_an_import_and_the_file_name_is_only_a_name(web):
    system, clock, app = web()
    client = login(app)
    reply = upload(client, MEMBERS, name="../../etc/passwd", list="regional desk")
    assert reply.status_code == 200
    assert "passwd: list regional desk: 3 added, 0 updated, 0 unchanged, 0 removed, 0 rejected" in text(reply)
    assert set(members(system, "regional desk")) == {"ana@paper.example.com", "bob@wire.example.net",
                                                     "cy@radio.example.org"}
    nothing = upload(client, "email\nnot-an-address\n", list="empty")  # every row refused: no list made
    assert nothing.status_code == 200 and "<h1>Lists</h1>" in nothing.get_data(as_text=True)
    assert "journalists.csv:2: email 'not-an-address'" in text(nothing)
    assert "journalists.csv: list empty: 0 added, 0 updated, 0 unchanged, 0 removed, 1 rejected" in text(nothing)


def test_every_row_or_none_and_replace_refuse_a_bad_row_with_its_line(web):
    system, clock, app = web()
    client = login(app)
    before = members(system, "embargo")
    for field, name in (("strict", "Every row or none"), ("replace", "Make the list exactly this file")):
        reply = upload(client, BAD, list="embargo", path="/lists/embargo", **{field: "1"})
        assert reply.status_code == 400
        said = text(reply)
        assert said.count("journalists.csv:3: email 'not-an-address'") == 1
        assert f'("{name}" rejects the whole file)' in said
        assert "--" not in reply.get_data(as_text=True)
    assert members(system, "embargo") == before
    good = upload(client, "email,embargo_ok\nana@paper.example.com,yes\n", list="embargo", replace="1")
    assert good.status_code == 200 and set(members(system, "embargo")) == {"ana@paper.example.com"}


def test_an_import_without_a_file_a_list_or_readable_rows_is_refused(web):
    system, clock, app = web()
    client = login(app)
    reply = client.post("/lists/import", data={"list": "embargo", "csrf_token": csrf(client, "/lists")})
    assert reply.status_code == 400 and "File: choose a CSV file" in text(reply)
    reply = upload(client, MEMBERS, list="")
    assert reply.status_code == 400 and "List: needs a name" in text(reply)
    reply = upload(client, MEMBERS, list="x" * 101)
    assert reply.status_code == 400 and "List: is 101 characters long; at most 100 fit" in text(reply)
    reply = upload(client, "name\nAna\n", list="embargo")
    assert reply.status_code == 400 and "journalists.csv:1: no 'email' column" in text(reply)
    assert "<h1>List embargo</h1>" in reply.get_data(as_text=True)  # shown on the list's own page
    assert "x" * 101 not in json.dumps(members(system))


def test_an_editor_adds_a_member_and_the_trail_names_her(web):
    system, clock, app = web()
    client = login(app)
    before = len(trail(system))
    reply = post(client, "/lists/add", list="embargo", email="Dee@TV.example.org", name=" Dee Roy ", outlet="TV",
                 embargo_ok="1", language="fr", tags="courts")
    assert reply.status_code == 302 and local(reply) == "/lists/embargo"
    row = members(system, "embargo")["Dee@tv.example.org"]
    assert (row["name"], row["outlet"], row["embargo_ok"], row["language"], row["tags"]) == \
        ("Dee Roy", "TV", True, "fr", "courts")
    assert "Dee@tv.example.org: added to the list embargo; vetted for embargoed copies" in text(client.get("/lists"))
    [entry] = trail(system, before)
    assert (entry["action"], entry["actor"], entry["detail"]) == (
        "recipient_added", "maya", {"email": "Dee@tv.example.org", "list": "embargo", "embargo_ok": True})
    reply = post(client, "/lists/add", list="new list", email="eve@paper.example.com")
    assert local(reply) == "/lists/new%20list" and not members(system, "new list")["eve@paper.example.com"]["embargo_ok"]


def test_a_member_that_cannot_be_added_is_a_400_naming_the_field(web):
    system, clock, app = web()
    client = login(app)
    before = len(trail(system))
    for data, said in (({"email": "ANA@paper.example.com"},
                        "Email: ANA@paper.example.com is already on the list 'embargo'; a re-import changes a member"),
                       ({"email": "nope"}, "Email: 'nope' is not an email address"),
                       ({"email": "x@paper.example.com", "name": "n" * 201}, "Name: is 201 characters long; at most 200"),
                       ({"email": "x@paper.example.com", "tags": "a\x00b"}, "Tags: contains a NUL byte"),
                       ({"email": "x@paper.example.com", "language": "l" * 36}, "Language: is 36 characters long"),
                       ({"email": "x@paper.example.com", "list": " "}, "List: needs a name")):
        reply = post(client, "/lists/add", **{"list": "embargo", **data})
        assert reply.status_code == 400 and said in text(reply), data
    assert len(trail(system)) == before and "x@paper.example.com" not in members(system)


def test_an_editor_removes_a_member_and_the_trail_names_her(web):
    system, clock, app = web()
    client = login(app)
    before = len(trail(system))
    reply = post(client, "/lists/remove", list="embargo", email="ana@paper.example.com", q="paper")
    assert reply.status_code == 302 and local(reply) == "/lists/embargo?q=paper"  # back to the search it was on
    assert "ana@paper.example.com" not in members(system)
    assert [(e["action"], e["actor"], e["detail"]) for e in trail(system, before)] == [
        ("recipient_removed", "maya", {"email": "ana@paper.example.com", "list": "embargo"})]
    again = post(client, "/lists/remove", list="embargo", email="ana@paper.example.com")
    cli = system.cli("recipients", "remove", "ana@paper.example.com", "--list", "embargo")
    assert cli.code == 2 and again.status_code == 400
    assert "ana@paper.example.com is not on the list 'embargo'" in cli.err
    assert "Email: ana@paper.example.com is not on the list 'embargo'" in text(again)
    for email in ("bob@wire.example.net", "tv@tv.example.org"):
        reply = post(client, "/lists/remove", list="embargo", email=email)
    assert local(reply) == "/lists"  # the list has no member left: it is gone
    assert client.get("/lists/embargo").status_code == 404


def test_staff_unsubscribe_and_lift_a_suppression_each_in_their_name(web):
    system, clock, app = web()
    client = login(app)
    before = len(trail(system))
    reply = post(client, "/lists/unsubscribe", list="embargo", email="Ana@paper.example.com")
    assert reply.status_code == 302 and local(reply) == "/lists/embargo"
    page = client.get("/lists/embargo")
    assert "Ana@paper.example.com: suppressed for all future mail" in text(page)
    assert members(system)["ana@paper.example.com"]["suppressed"]
    assert [r[6].split(" ")[:3] for r in rows(page) if r[0] == "ana@paper.example.com"] == [["unsubscribed", "by",
                                                                                              "maya"]]
    assert page.get_data(as_text=True).count(">Lift the suppression<") == 1  # on ana's row, the one suppressed
    again = post(client, "/lists/unsubscribe", email="ana@paper.example.com")
    assert local(again) == "/lists" and "was already suppressed" in text(client.get("/lists"))
    sam = login(app, "sam")
    reply = post(sam, "/lists/lift", list="embargo", email="ana@paper.example.com")
    assert reply.status_code == 302 and local(reply) == "/lists/embargo"
    assert "ana@paper.example.com: no longer suppressed; copies cancelled while it was stay cancelled" in \
        text(sam.get("/lists/embargo"))
    assert not members(system)["ana@paper.example.com"]["suppressed"]
    assert [(e["action"], e["actor"], e["detail"]) for e in trail(system, before)] == [
        ("unsubscribed", "maya", {"email": "Ana@paper.example.com"}),
        ("suppression_lifted", "sam", {"email": "ana@paper.example.com", "suppressed_by": "maya",
                                       "reason": "unsubscribed"})]
    nothing = post(sam, "/lists/lift", email="ana@paper.example.com")
    assert nothing.status_code == 400 and "Email: ana@paper.example.com is not suppressed" in text(nothing)
    bad = post(sam, "/lists/unsubscribe", email="not an address")
    assert bad.status_code == 400 and "Email: 'not an address' is not an email address" in text(bad)


def test_a_recipients_own_unsubscribe_cannot_be_lifted_on_the_web_or_the_command_line(web):
    system, clock, app = web()
    app.test_client().post(f"/u/{unsubscribe.token(SECRET, 'ana@paper.example.com')}")
    client = login(app)
    page = client.get("/lists/embargo").get_data(as_text=True)
    assert "unsubscribed by the recipient" in page
    assert ">Lift the suppression<" not in page
    before = len(trail(system))
    reply = post(client, "/lists/lift", list="embargo", email="ana@paper.example.com")
    cli = system.cli("recipients", "unsubscribe", "--undo", "ana@paper.example.com", "--by", "Kim")
    words = ("ana@paper.example.com unsubscribed themselves (one-click unsubscribe); only a suppression made by "
             "staff or by a bounce can be lifted")
    assert reply.status_code == 409 and f"Email: {words}" in text(reply)
    assert cli.code == 2 and cli.err == f"distributor: EMAIL: {words}\n"
    assert members(system)["ana@paper.example.com"]["suppressed"] and len(trail(system)) == before


def test_the_recipients_own_unsubscribe_replaces_one_made_by_staff(web):
    system, clock, app = web()
    client = login(app)
    post(client, "/lists/unsubscribe", email="bob@wire.example.net")
    reply = app.test_client().post(f"/u/{unsubscribe.token(SECRET, 'bob@wire.example.net')}")
    assert reply.status_code == 200
    assert [(e["action"], e["actor"]) for e in trail(system)[-2:]] == [("unsubscribed", "maya"),
                                                                       ("unsubscribed", "one-click unsubscribe")]
    assert post(client, "/lists/lift", email="bob@wire.example.net").status_code == 409
    assert members(system)["bob@wire.example.net"]["suppressed"]


def test_no_page_or_refusal_speaks_of_the_command_line(web):
    system, clock, app = web()
    client = login(app)
    post(client, "/lists/unsubscribe", email="bob@wire.example.net")
    replies = [client.get("/lists"), client.get("/lists/embargo"), client.get("/lists/embargo?q=wire"),
               client.get("/lists/nothing"), upload(client, BAD, list="embargo"),
               upload(client, BAD, list="embargo", strict="1"), upload(client, BAD, list="", replace="1"),
               post(client, "/lists/add", list="", email="x"), post(client, "/lists/remove", list="embargo", email="x"),
               post(client, "/lists/lift", email="nobody@paper.example.com"), login(app, "kim").get("/lists/embargo")]
    for reply in replies:
        page = re.sub(r'name="csrf_token" value="[^"]*"', "", reply.get_data(as_text=True))  # a token may hold --
        assert "distributor " not in page and "--" not in page, page
