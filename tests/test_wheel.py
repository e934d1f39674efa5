"""Installed from a wheel, in an empty folder, it starts: templates ship in the package and `distributor new`
scaffolds an office folder. Builds the wheel, installs it into a fresh virtual environment and runs the demo flow
there with the file transports."""

import json
import site
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def run(*args, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_the_wheel_installs_scaffolds_an_office_and_runs_the_demo_flow(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
        ROOT, cwd=tmp_path, timeout=300)
    [wheel] = (tmp_path / "dist").glob("distributor-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    target = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    # the dependencies come from this environment; the package itself only from the wheel
    (target / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    where = run(python, "-c", "import distributor, pathlib; print(pathlib.Path(distributor.__file__).parent)",
                cwd=tmp_path).strip()
    assert where.startswith(str(venv))
    assert (Path(where) / "templates" / "email" / "embargoed.html.j2").is_file()

    distributor = venv / "bin" / "distributor"
    run(distributor, "new", "office", cwd=tmp_path)
    office = tmp_path / "office"
    assert {p.name for p in office.iterdir()} == {"config", "templates", "recipients", "statements"}
    (office / "templates" / "social" / "mastodon.txt.j2").unlink()  # the default fills in for a missing file
    run(distributor, "init", cwd=office)
    run(distributor, "recipients", "import", "recipients/journalists.csv", "--list", "embargo", cwd=office)
    sid = run(distributor, "import", "statements/example.txt", cwd=office).strip()
    run(distributor, "approve", sid, "--by", "Maya", cwd=office)
    now = datetime.now(UTC)
    run(distributor, "schedule", sid, "--embargo", (now + timedelta(seconds=3)).isoformat(), "--override-embargo",
        "--send-embargoed-at", now.isoformat(), cwd=office)
    run(distributor, "run", "--exit-when-idle", cwd=office)
    rows = json.loads(run(distributor, "log", sid, "--format", "json", cwd=office))
    assert {(r["channel"], r["status"]) for r in rows} == {
        ("email", "sent"), ("wire", "sent"), ("feed", "sent"), ("mastodon", "sent"), ("bluesky", "sent"),
        ("newsroom", "sent")}
    assert (office / "outbox" / "news" / sid / "index.html").is_file()  # the templates ship in the wheel
    emails = {(r["target"], r["variant"]) for r in rows if r["channel"] == "email"}
    assert len(list((office / "outbox" / "email").rglob("*.eml"))) == 3 == len(emails)
    assert dict(emails)["blogger@blog.example.org"] == "released"  # not vetted: the released version, at the lift
