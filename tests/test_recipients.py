import json

import pytest


@pytest.fixture
def config(write_config, run):
    path = write_config()
    assert run(path, "init").code == 0
    return path


def write(tmp_path, text, name="list.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CSV = """email,name,outlet,embargo_ok,language,tags
ana@paper.example.com,Ana,Paper,yes,en,a
BOB@Wire.example.net,Bob,Wire,no,en,
not-an-address,X,Y,yes,,
carl@radio.example.org,Carl,Radio,maybe,,
bob@wire.example.net,Bob again,Wire,yes,en,
dora@tv.example.org,Dora,TV,,fr,
"""


def recipients(run, config):
    return {r["email"].lower(): r for r in json.loads(run(config, "recipients", "list", "--format", "json").out)}


def test_import_reports_every_rejected_row(config, run, tmp_path):
    path = write(tmp_path, CSV)
    result = run(config, "recipients", "import", path, "--list", "embargo")
    assert result.code == 0
    assert result.out.strip() == f"{path}: list embargo: 3 added, 0 updated, 0 unchanged, 0 removed, 3 rejected"
    errors = result.err.strip().splitlines()
    assert errors[0].startswith(f"{path}:4: email 'not-an-address'")
    assert errors[1].startswith(f"{path}:5: embargo_ok 'maybe'")
    assert errors[2] == f"{path}:6: duplicate of line 3 (bob@wire.example.net)"
    rows = recipients(run, config)
    assert set(rows) == {"ana@paper.example.com", "bob@wire.example.net", "dora@tv.example.org"}
    assert rows["bob@wire.example.net"]["email"] == "BOB@wire.example.net"
    assert rows["ana@paper.example.com"]["embargo_ok"] is True
    assert rows["dora@tv.example.org"]["embargo_ok"] is False  # blank means no


def test_reimport_updates_and_counts(config, run, tmp_path):
    run(config, "recipients", "import", write(tmp_path, CSV), "--list", "embargo")
    second = write(tmp_path, "email,name,embargo_ok\nana@PAPER.example.com,Ana Lima,yes\ndora@tv.example.org,Dora,\n"
                             "new@x.example.com,New,yes\n", "second.csv")
    result = run(config, "recipients", "import", second, "--list", "embargo")
    assert "1 added, 2 updated, 0 unchanged, 0 removed, 0 rejected" in result.out
    assert recipients(run, config)["ana@paper.example.com"]["name"] == "Ana Lima"


def test_strict_rejects_the_whole_file(config, run, tmp_path):
    result = run(config, "recipients", "import", write(tmp_path, CSV), "--list", "embargo", "--strict")
    assert result.code == 2
    assert ":4: email 'not-an-address'" in result.err
    assert recipients(run, config) == {}


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    (b"name,outlet\nAna,Paper\n", "no 'email' column"),
    (b"email,name\nana@paper.example.com,Ana \xff\n", "not UTF-8"),
    (b"email,nickname\nana@paper.example.com,A\n", "unknown column 'nickname'"),
])
def test_unreadable_files_are_errors(config, run, tmp_path, content, message):
    path = tmp_path / "r.csv"
    if content is not None:
        path.write_bytes(content)
    result = run(config, "recipients", "import", path, "--list", "embargo")
    assert result.code == 2
    assert message in result.err and str(path) in result.err
    assert result.err.count("\n") == 1


def test_unsubscribe_survives_reimport(config, run, tmp_path):
    path = write(tmp_path, CSV)
    run(config, "recipients", "import", path, "--list", "embargo")
    result = run(config, "recipients", "unsubscribe", "Ana@Paper.example.com")
    assert result.code == 0 and "suppressed" in result.out
    run(config, "recipients", "import", path, "--list", "embargo")
    assert recipients(run, config)["ana@paper.example.com"]["suppressed"] is True
    assert run(config, "recipients", "unsubscribe", "not an address").code == 2


def test_line_numbers_survive_blank_lines_and_quoted_newlines(config, run, tmp_path):
    text = ('email,name,embargo_ok\n\nana@paper.example.com,"Ana\nLima",yes\n\n'
            'broken@,X,yes\nbob@wire.example.net,Bob\n')
    result = run(config, "recipients", "import", write(tmp_path, text), "--list", "embargo")
    assert result.code == 0
    lines = result.err.strip().splitlines()
    assert lines[0].startswith(f"{tmp_path / 'list.csv'}:6: email 'broken@'")
    assert lines[1] == f"{tmp_path / 'list.csv'}:7: 2 fields, expected 3 (email, name, embargo_ok)"
    assert "1 added" in result.out


def audit(run, config):
    return [e for e in json.loads(run(config, "audit", "--format", "json").out)
            if e["action"].startswith("recipient")]


def test_replace_makes_the_list_exactly_the_file_and_is_audited(config, run, tmp_path):
    first = write(tmp_path, "email,embargo_ok\nana@paper.example.com,yes\nbob@wire.example.net,yes\n"
                            "cy@tv.example.org,no\n")
    assert run(config, "recipients", "import", first, "--list", "embargo").code == 0
    assert run(config, "recipients", "import", first, "--list", "other").code == 0
    second = write(tmp_path, "email,embargo_ok\nBob@wire.example.net,yes\ndee@x.example.org,yes\n", "second.csv")
    result = run(config, "recipients", "import", second, "--list", "embargo", "--replace", "--by", "Kim")
    assert result.code == 0, result.err
    assert result.out.strip() == f"{second}: list embargo: 1 added, 1 updated, 0 unchanged, 2 removed, 0 rejected"
    members = {(r["list"], r["email"].lower()) for r in
               json.loads(run(config, "recipients", "list", "--format", "json").out)}
    assert {e for lst, e in members if lst == "embargo"} == {"bob@wire.example.net", "dee@x.example.org"}
    assert len([1 for lst, _ in members if lst == "other"]) == 3  # another list is left alone
    [entry] = [e for e in audit(run, config) if e["detail"]["replace"]]
    assert (entry["actor"], entry["detail"]["removed"]) == ("Kim", ["ana@paper.example.com", "cy@tv.example.org"])


def test_replace_with_a_bad_row_changes_nothing(config, run, tmp_path):
    first = write(tmp_path, "email,embargo_ok\nana@paper.example.com,yes\nbob@wire.example.net,yes\n")
    assert run(config, "recipients", "import", first, "--list", "embargo").code == 0
    bad = write(tmp_path, "email,embargo_ok\nbob@wire.example.net,yes\nnot-an-address,yes\n", "bad.csv")
    result = run(config, "recipients", "import", bad, "--list", "embargo", "--replace")
    assert result.code == 2 and result.err.startswith(f"distributor: {bad}:3: email 'not-an-address'")
    assert "--replace rejects the whole file" in result.err and result.err.count("\n") == 1
    assert set(recipients(run, config)) == {"ana@paper.example.com", "bob@wire.example.net"}


def test_remove_takes_one_member_off_one_list_and_is_audited(config, run, tmp_path):
    path = write(tmp_path, "email,embargo_ok\nana@paper.example.com,yes\nbob@wire.example.net,yes\n")
    assert run(config, "recipients", "import", path, "--list", "embargo").code == 0
    result = run(config, "recipients", "remove", "ANA@paper.example.com", "--list", "embargo", "--by", "Kim")
    assert result.code == 0, result.err
    assert set(recipients(run, config)) == {"bob@wire.example.net"}
    assert [(e["action"], e["actor"], e["detail"]) for e in audit(run, config)][-1] == \
        ("recipient_removed", "Kim", {"email": "ANA@paper.example.com", "list": "embargo"})
    again = run(config, "recipients", "remove", "ana@paper.example.com", "--list", "embargo")
    assert again.code == 2 and "is not on the list 'embargo'" in again.err and again.err.count("\n") == 1
    bad = run(config, "recipients", "remove", "nope", "--list", "embargo")
    assert bad.code == 2 and "'nope' is not an email address" in bad.err
