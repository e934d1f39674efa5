"""Bad input of every kind: one line on stderr naming the file, line, key or option, exit status 2, no traceback.

Runs on every configured database (SQLite, and PostgreSQL when configured), where column sizes and NUL bytes
are enforced differently.
"""

import json

import pytest

from tests.conftest import soon


@pytest.fixture
def config(write_config, run):
    path = write_config()
    assert run(path, "init").code == 0
    return path


def one_line_error(result, *expected):
    assert result.code == 2, (result.code, result.out, result.err)
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    for text in expected:
        assert text in result.err, (text, result.err)


def test_front_matter_with_an_impossible_date(config, run, tmp_path):
    path = tmp_path / "bad.md"
    path.write_text("---\ntitle: T\ndate: 2026-13-45\n---\nBody.\n", encoding="utf-8")
    one_line_error(run(config, "import", path), str(path), "front matter has an impossible date")


@pytest.mark.parametrize("embargo", ["0001-01-01T00:00+01:00", "9999-12-31T23:00-05:00", "9999-12-31 23:00 Europe/Paris",
                                     "1969-12-31T23:00Z"])
def test_embargo_times_out_of_range(config, run, statement_file, embargo):
    assert run(config, "import", statement_file()).code == 0
    assert run(config, "approve", "tro-01-001-2026", "--by", "Maya").code == 0
    one_line_error(run(config, "schedule", "tro-01-001-2026", "--embargo", embargo), "--embargo", "out of range")


def test_front_matter_embargo_out_of_range(config, run, tmp_path):
    path = tmp_path / "far.md"
    path.write_text("---\ntitle: T\ndate: 2026-10-14\nembargo: 0001-01-01T00:00:00+01:00\n---\nBody.\n", encoding="utf-8")
    one_line_error(run(config, "import", path), "front matter 'embargo'", "out of range")


def test_config_that_is_a_directory(run, tmp_path):
    one_line_error(run(tmp_path, "init"), str(tmp_path), "is a directory")


def test_sqlite_path_under_a_file(run, tmp_path, write_config):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = tmp_path / "c.toml"
    text = write_config().read_text(encoding="utf-8")
    start = text.index('\nurl = "') + len('\nurl = "')
    path.write_text(text[:start] + f"sqlite:///{blocker}/sub/d.db" + text[text.index('"', start):], encoding="utf-8")
    one_line_error(run(path, "init"), "database.url")


def test_database_url_password_is_never_shown(run, tmp_path, write_config):
    text = write_config().read_text(encoding="utf-8")
    start = text.index('\nurl = "') + len('\nurl = "')
    for url in ("postgresql+psycopg://press:s3cret-pw@127.0.0.1:1/nowhere", "nosuchdb://press:s3cret-pw@host/db"):
        path = tmp_path / "c.toml"
        path.write_text(text[:start] + url + text[text.index('"', start):], encoding="utf-8")
        result = run(path, "list")
        one_line_error(result, "database.url", "press:***@")
        assert "s3cret-pw" not in result.err


def test_a_csv_field_over_the_csv_limit(config, run, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("email,name\nana@paper.example.com,\"" + "x" * 200_000 + "\"\n", encoding="utf-8")
    one_line_error(run(config, "recipients", "import", path, "--list", "embargo"), f"{path}:", "cannot read this row")


def test_a_duplicated_csv_header(config, run, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("email,email\nana@paper.example.com,bob@x.example.org\n", encoding="utf-8")
    one_line_error(run(config, "recipients", "import", path, "--list", "embargo"), f"{path}:1",
                   "column 'email' appears more than once")


@pytest.mark.parametrize("option, value, message", [
    ("--by", "x" * 201, "at most 200 fit"), ("--by", "Ma\x00ya", "NUL byte"),
    ("--list", "l" * 101, "at most 100 fit"), ("--list", "em\x00bargo", "NUL byte"),
])
def test_values_that_do_not_fit_their_column(config, run, tmp_path, option, value, message):
    path = tmp_path / "r.csv"
    path.write_text("email\nana@paper.example.com\n", encoding="utf-8")
    args = ["recipients", "import", path, "--list", "embargo", "--by", "Kim"]
    args[args.index(option) + 1] = value
    one_line_error(run(config, *args), option, message)
    assert json.loads(run(config, "recipients", "list", "--format", "json").out) == []  # nothing half-written


def test_csv_rows_with_fields_that_do_not_fit_are_rejected_alone(config, run, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("email,name,language\nana@paper.example.com,Ana,en\nbo@x.example.org," + "n" * 201 + ",en\n"
                    "cy@x.example.org,Cy,\"e\x00n\"\n", encoding="utf-8")
    result = run(config, "recipients", "import", path, "--list", "embargo")
    assert result.code == 0 and "1 added" in result.out and "2 rejected" in result.out
    assert f"{path}:3: name: 201 characters; at most 200 fit" in result.err
    assert f"{path}:4: language: contains a NUL byte" in result.err


@pytest.mark.parametrize("table, key, value, expected", [
    ("delivery", "lease_seconds", "1e12", "expected a number from 1 to 86400"),
    ("delivery", "batch_size", "0", "expected a number from 1 to 100000"),
    ("delivery", "max_attempts", "100000", "expected a number from 1 to 1000"),
    ("delivery", "worker_timeout_seconds", "0.5", "expected a number from 1 to 3600"),
    ("delivery", "retry_first_seconds", "0", "expected a number more than 0 to 86400"),
    ("channels.email.smtp", "max_per_second", "-3", "expected a number from 0 to 100000"),
    ("channels.email.smtp", "connections", "1000", "expected a number from 1 to 100"),
    ("channels.email.smtp", "timeout_seconds", "0", "expected a number more than 0 to 3600"),
    ("delivery", "notice_lead_seconds", "-1", "expected a number from 0 to 86400"),
    ("delivery", "alert_after_seconds", "0", "expected a number from 1 to 86400"),
    ("channels.email", "release_lists", "[1]", "expected a list of list names"),
    ("channels.email", "release_lists", '[" "]', "expected a list of list names"),
    ("office", "base_url", '"ftp://press.example.org"', "expected an http:// or https:// URL"),
    ("office", "four_eyes", '"yes"', "expected"),
    ("web", "session_idle_hours", "0", "expected a number more than 0 to 720"),
    ("web", "login_failures", "0", "expected a number from 1 to 1000"),
])
def test_config_numbers_out_of_range(run, write_config, table, key, value, expected):
    path = write_config()
    text = path.read_text(encoding="utf-8")
    if f"[{table}]" in text:
        text = text.replace(f"[{table}]", f"[{table}]\n{key} = {value}", 1)
        text = "\n".join(line for line in text.splitlines()
                         if not (line.startswith(f"{key} =") and line != f"{key} = {value}")) + "\n"
    else:
        text += f"\n[{table}]\n{key} = {value}\n"
    path.write_text(text, encoding="utf-8")
    one_line_error(run(path, "list"), f"{table}.{key}", expected)


def test_schedule_in_the_far_future_is_still_fine(config, run, statement_file):
    assert run(config, "import", statement_file()).code == 0
    assert run(config, "approve", "tro-01-001-2026", "--by", "Maya").code == 0
    assert run(config, "schedule", "tro-01-001-2026", "--embargo", soon()).code == 0


@pytest.mark.parametrize("extra, key", [
    ('\n[[channels.social]]\nnetwork = "mastodon"\nname = "m"\nbase_url = "http://social.example.org"\n'
     'token_env = "T"\n', "channels.social[0].base_url"),
    ('\n[[channels.social]]\nnetwork = "bluesky"\nname = "b"\nservice = "http://bsky.example.org"\n'
     'handle = "h.example.org"\npassword_env = "P"\n', "channels.social[0].service"),
])
def test_social_secrets_never_go_over_plain_http_to_another_host(run, write_config, extra, key):
    one_line_error(run(write_config(extra=extra), "list"), key, "expected an https:// URL")


def test_social_over_plain_http_to_this_machine_is_allowed(run, write_config):
    extra = ('\n[[channels.social]]\nnetwork = "mastodon"\nname = "m"\nbase_url = "http://127.0.0.1:8080"\n'
             'token_env = "T"\n')
    assert run(write_config(extra=extra), "init").code == 0


@pytest.mark.parametrize("host, refused", [("smtp.example.org", True), ("127.0.0.1", False), ("localhost", False),
                                           ("::1", False)])
def test_an_smtp_login_without_tls_to_another_host_is_refused(run, write_config, host, refused):
    path = write_config(transport="smtp", smtp_extra='username = "press"\npassword_env = "PW"')
    text = path.read_text(encoding="utf-8")
    start = text.index('host = "') + len('host = "')
    path.write_text(text[:start] + host + text[text.index('"', start):], encoding="utf-8")
    result = run(path, "init")
    if refused:
        one_line_error(result, "channels.email.smtp.security", "password in clear text")
    else:
        assert result.code == 0, result.err


def test_new_refuses_a_folder_that_is_not_empty(run, tmp_path):
    (tmp_path / "office").mkdir()
    (tmp_path / "office" / "keep.txt").write_text("mine")
    one_line_error(run(None, "new", tmp_path / "office"), str(tmp_path / "office"), "not an empty folder")
    assert [p.name for p in (tmp_path / "office").iterdir()] == ["keep.txt"]
    assert run(None, "new", tmp_path / "fresh").code == 0
    assert (tmp_path / "fresh" / "templates" / "email" / "embargoed.html.j2").is_file()


def test_a_withdrawal_reason_with_a_nul_byte(config, run, statement_file):
    assert run(config, "import", statement_file()).code == 0
    one_line_error(run(config, "withdraw", "tro-01-001-2026", "--by", "Maya", "--reason", "legal\x00advice"),
                   "--reason", "NUL byte")
    assert json.loads(run(config, "show", "tro-01-001-2026", "--format", "json").out)["status"] == "draft"


@pytest.mark.parametrize("extra, key, expected", [
    ('\n[channels.feed]\nentries = 0\n', "channels.feed.entries", "expected a number from 1 to 10000"),
    ('\n[[channels.wire]]\nname = "w"\ntransport = "file"\ntimeout_seconds = 1e9\n', "channels.wire[0].timeout_seconds",
     "expected a number more than 0 to 3600"),
])
def test_channel_numbers_out_of_range(run, write_config, extra, key, expected):
    one_line_error(run(write_config(extra=extra), "list"), key, expected)
