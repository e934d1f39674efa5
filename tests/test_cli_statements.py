"""Import, show, list, approve, schedule through the command line, on every configured database."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, soon


@pytest.fixture
def config(write_config, run):
    path = write_config()
    assert run(path, "init").code == 0
    return path


def test_init_is_safe_to_repeat(config, run):
    first = run(config, "init")
    second = run(config, "init")
    assert first.code == second.code == 0
    assert first.out == second.out


def test_commands_need_an_initialised_database(write_config, run):
    result = run(write_config(), "list")
    assert result.code == 2
    assert "run 'distributor init'" in result.err
    assert result.err.count("\n") == 1


def test_import_show_list(config, run, statement_file):
    path = statement_file(embargo="EMBARGOED FOR: 00:01 BST Thursday 15 October 2026")
    result = run(config, "import", path)
    assert result.code == 0
    assert result.out == "tro-01-001-2026\n"

    shown = json.loads(run(config, "show", "tro-01-001-2026", "--format", "json").out)
    assert shown["id"] == "tro-01-001-2026"
    assert shown["kind"] == "Press Release"
    assert shown["date"] == "2026-10-14"
    assert shown["reference"] == "Index: TRO 01/001/2026"
    assert shown["serial"] == "News Service No. 7"
    assert shown["embargo"] == "2026-10-14T23:01:00Z"
    assert shown["status"] == "draft"
    assert shown["approved_by"] is None
    assert "Åsgård" in shown["body"][1] and "“nobody listened”" in shown["body"][1]
    assert shown["contacts"].startswith("For more information")

    text = run(config, "show", "tro-01-001-2026")
    assert "Riverland: Flood maps must be published" in text.out
    assert "BST" in text.out

    listing = json.loads(run(config, "list", "--format", "json").out)
    assert [item["id"] for item in listing] == ["tro-01-001-2026"]
    assert listing[0]["status"] == "draft"


def test_reimport_unchanged_is_a_no_op_and_crlf_is_unchanged(config, run, statement_file, tmp_path):
    path = statement_file()
    assert run(config, "import", path).out == "tro-01-001-2026\n"
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    again = run(config, "import", crlf)
    assert again.code == 0 and again.out == "tro-01-001-2026\n"
    assert again.err == ""
    assert json.loads(run(config, "show", "tro-01-001-2026", "--format", "json").out)["revision"] == 1


def test_changed_file_revokes_approval(config, run, statement_file):
    run(config, "import", statement_file())
    assert run(config, "approve", "tro-01-001-2026", "--by", "Maya Editor").code == 0
    assert json.loads(run(config, "show", "tro-01-001-2026", "--format", "json").out)["approved_by"] == "Maya Editor"

    changed = run(config, "import", statement_file(body_extra="A new paragraph was added."))
    assert changed.code == 0
    assert "approval is revoked" in changed.err
    shown = json.loads(run(config, "show", "tro-01-001-2026", "--format", "json").out)
    assert shown["status"] == "draft" and shown["revision"] == 2 and shown["approved_by"] is None
    audit = json.loads(run(config, "audit", "tro-01-001-2026", "--format", "json").out)
    assert [e["action"] for e in audit] == ["imported", "approved", "revised", "approval_revoked"]
    assert audit[1]["actor"] == "Maya Editor"


def test_each_file_is_its_own_transaction(config, run, statement_file, tmp_path):
    good = statement_file()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Press Release\n\n\xff\xfe\n")
    result = run(config, "import", bad, good)
    assert result.code == 2
    assert result.out == "tro-01-001-2026\n"
    assert f"{bad}:3: not UTF-8" in result.err
    assert len(json.loads(run(config, "list", "--format", "json").out)) == 1


def test_schedule_rules(config, run, statement_file):
    run(config, "import", statement_file())
    sid = "tro-01-001-2026"
    not_approved = run(config, "schedule", sid, "--embargo", soon())
    assert not_approved.code == 2 and "approve it first" in not_approved.err
    run(config, "approve", sid, "--by", "Maya")

    cases = [
        (["--embargo", "2026-10-15T00:01"], "--embargo: '2026-10-15T00:01' has no offset"),
        (["--embargo", "2026-03-29 01:30 Europe/London"], "daylight-saving gap"),
        (["--embargo", "2001-01-01T00:00Z"], "in the past"),
        ([], "no embargo given"),
        (["--embargo", soon(60), "--send-embargoed-at", soon(120)], "before the embargo"),
        (["--embargo", soon(), "--channels", "fax"], "unknown channel 'fax'"),
    ]
    for args, message in cases:
        result = run(config, "schedule", sid, *args)
        assert result.code == 2, args
        assert message in result.err, (args, result.err)
        assert result.err.count("\n") == 1
        assert "Traceback" not in result.err

    ok = run(config, "schedule", sid, "--embargo", "2099-10-15 00:01 Europe/London", "--by", "Sam")
    assert ok.code == 0, ok.err
    shown = json.loads(run(config, "show", sid, "--format", "json").out)
    assert shown["status"] == "scheduled"
    assert shown["embargo"] == "2099-10-14T23:01:00Z"


def test_unknown_id_and_bad_arguments(config, run):
    result = run(config, "show", "no-such-id")
    assert result.code == 2 and "no statement with id 'no-such-id'" in result.err
    result = run(config, "approve", "x")
    assert result.code == 2 and "--by" in result.err and result.err.count("\n") == 1
    result = run(config, "log", "--channel", "fax")
    assert result.code == 2 and "--channel: unknown channel 'fax'" in result.err and result.err.count("\n") == 1
    assert run(config, "log", "--channel", "social").code == 0
    result = run(config, "log", "--attempts")
    assert result.code == 2 and "--attempts needs a statement ID" in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize("extra, message", [
    ('[surprise]\nkey = 1\n', "surprise: unknown key"),
    ('[channels.email.file]\ndirectory = 5\n', None),
])
def test_config_errors_name_the_key(write_config, run, extra, message):
    path = write_config(extra=extra)
    result = run(path, "list")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert str(path) in result.err
    if message:
        assert message in result.err


def test_config_type_and_missing_key(tmp_path, run, write_config):
    path = write_config()
    text = path.read_text()
    bad_type = tmp_path / "bad_type.toml"
    bad_type.write_text(text.replace("connections = 2", 'connections = "two"'))
    result = run(bad_type, "list")
    assert result.code == 2 and "channels.email.smtp.connections: expected an integer" in result.err
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace('timezone = "Europe/London"', ""))
    result = run(missing, "list")
    assert result.code == 2 and "office.timezone: required key is missing" in result.err
    zone = tmp_path / "zone.toml"
    zone.write_text(text.replace('timezone = "Europe/London"', 'timezone = "Europe/Londn"'))
    assert "office.timezone: expected an IANA time zone" in run(zone, "list").err


def test_relative_sqlite_path_resolves_against_config_folder(tmp_path, run, write_config):
    folder = tmp_path / "etc"
    folder.mkdir()
    text = write_config().read_text()
    import re
    text = re.sub(r'url = ".*"', 'url = "sqlite:///../var/x.db"', text)
    (folder / "distributor.toml").write_text(text)
    assert run(folder / "distributor.toml", "init").code == 0
    assert (tmp_path / "var" / "x.db").exists()


def test_config_option_wins_over_environment(tmp_path, run, write_config, monkeypatch):
    good = write_config()
    monkeypatch.setenv("DISTRIBUTOR_CONFIG", str(tmp_path / "nowhere.toml"))
    assert run(None, "init").code == 2
    assert run(good, "init").code == 0


@pytest.mark.subprocess
def test_console_script_and_module_entry_points(write_config):
    path = write_config()
    env = {**os.environ, "DISTRIBUTOR_CONFIG": str(path)}
    bindir = os.path.dirname(sys.executable)
    script = subprocess.run([os.path.join(bindir, "distributor"), "init"], env=env, capture_output=True, text=True)
    assert script.returncode == 0, script.stderr
    module = subprocess.run([sys.executable, "-m", "distributor", "show", "nope"], env=env, capture_output=True,
                            text=True, cwd=ROOT)
    assert module.returncode == 2
    assert module.stderr.strip().endswith("no statement with id 'nope' (see 'distributor list')")
    assert "Traceback" not in module.stderr


def test_two_statements_never_share_an_id_silently(config, run, tmp_path):
    def write(name, title, body="Body text."):
        path = tmp_path / name
        path.write_text(f"Press Release\n\n28 November 2026\n\n{title}\n\n{body}\n", encoding="utf-8")
        return path

    first = write("a.txt", "Заявление о свободе прессы")
    result = run(config, "import", first)
    assert result.code == 0 and result.out.strip() == "2026-11-28-zayavlenie-o-svobode-pressy"
    assert run(config, "import", write("b.txt", "報道の自由に関する声明")).out.strip().startswith("2026-11-28-baodao")
    # the same title, another statement of the same day: refused, with the two ways on
    clash = write("c.txt", "Заявление о свободе прессы!")
    result = run(config, "import", clash)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "belongs to another statement" in result.err and "--id NEW-ID" in result.err
    assert "--revision-of 2026-11-28-zayavlenie-o-svobode-pressy" in result.err
    assert run(config, "import", clash, "--id", "press-freedom-2").out.strip() == "press-freedom-2"
    again = run(config, "import", write("d.txt", "Заявление о свободе прессы!", "Changed."), "--revision-of",
                "2026-11-28-zayavlenie-o-svobode-pressy")
    assert again.code == 0 and "new revision 2" in again.err
    bad = run(config, "import", clash, "--id", "Not An Id")
    assert bad.code == 2 and "--id" in bad.err


def test_a_file_imported_under_older_id_rules_is_found_again_by_its_source_and_content(config, run, tmp_path):
    path = tmp_path / "old.txt"
    path.write_text("Press Release\n\n28 November 2026\n\nЗаявление\n\nBody.\n", encoding="utf-8")
    assert run(config, "import", path, "--id", "2026-11-28").code == 0  # the id the old rules gave it
    result = run(config, "import", path)
    assert result.code == 0 and result.out.strip() == "2026-11-28" and "new revision" not in result.err
    assert [s["id"] for s in json.loads(run(config, "list", "--format", "json").out)] == ["2026-11-28"]
