#!/bin/sh
# The demo: a fresh embedded database, the example statement with a photo and a PDF, an embargo a few seconds ahead,
# file transport.
set -eu
distributor="$1"
python="$(dirname "$distributor")/python"
cd "$(dirname "$0")/.."
export DISTRIBUTOR_CONFIG=config/distributor.toml
# The key that signs the journalists' links and the unsubscribe links (config: web.secret_env); a real office keeps
# one of its own in its environment.
export DISTRIBUTOR_WEB_SECRET="${DISTRIBUTOR_WEB_SECRET:-demo-only-key-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}"
rm -rf var outbox media
"$distributor" init
"$distributor" recipients import recipients/journalists.csv --list embargo
id=$("$distributor" import examples/statements/nhrn-12-004-2026.txt)
# The photo and the briefing (examples/make_media.py drew them) carry a camera's EXIF with a GPS position and an
# author's name; distributor keeps only copies without them.
"$distributor" media add "$id" examples/statements/pipeline-route.jpg --by "Demo Editor" \
  --alt "A drawing of four houses on a green hillside above a pipeline trench, a rain cloud coming in" \
  --caption "The pipeline route below Pueblo Nuevo (an illustration)" \
  --credit "Drawing: Northfield Human Rights Network" --licence "CC BY 4.0" >/dev/null
"$distributor" media add "$id" examples/statements/pipeline-briefing.pdf --by "Demo Editor" \
  --title "Briefing: the Río Claro pipeline route" >/dev/null
"$distributor" approve "$id" --by "Demo Approver"
embargo=$(python3 -c 'from datetime import datetime, timedelta, timezone; print((datetime.now(timezone.utc) + timedelta(seconds=6)).isoformat(timespec="seconds"))')
"$distributor" schedule "$id" --embargo "$embargo" --override-embargo --by "Demo Scheduler"
"$distributor" run --exit-when-idle
echo
link=$("$python" -c 'import email, re, sys; from email.policy import default; m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=default); print(re.search(r"download the media: (\S+)", m.get_body(("plain",)).get_content()).group(1))' \
  "outbox/email/$id.r3/ana.oliveira@dailyledger.example.com.eml")
echo "Each vetted journalist's copy carries their own link to the portal, for example Ana Oliveira's:"
echo "  $link"
echo "  (with 'DISTRIBUTOR_WEB_SECRET=$DISTRIBUTOR_WEB_SECRET distributor serve' running, it opens her releases;"
echo "  'distributor log $id --views' then says who opened what)"
echo
echo "The newsroom page, written at the lift: outbox/news/$id/index.html"
echo "Its photo (with its renditions) and the briefing, copied beside it at the lift:"
find "outbox/news/$id/media" -type f | sort | sed 's/^/  /'
photo=$(find "outbox/news/$id/media" -type f -name pipeline-route.jpg)
"$python" -c 'import sys; from PIL import Image; gps = lambda p: dict(Image.open(p).getexif().get_ifd(0x8825)); print("  GPS in the photo as given:", gps(sys.argv[1]) or "none"); print("  GPS in the newsroom copy: ", gps(sys.argv[2]) or "none", "(and", len(Image.open(sys.argv[2]).getexif()), "EXIF tags)")' \
  examples/statements/pipeline-route.jpg "$photo"
echo
"$distributor" show "$id" | head -n 12
echo
"$distributor" log
echo
echo "A correction after the release: a changed file, approved, then published everywhere at once."
mkdir -p var
sed 's/more than 3,000 families/more than 3,200 families/' examples/statements/nhrn-12-004-2026.txt > var/corrected.txt
"$distributor" import var/corrected.txt --note "The number of families is 3,200, not 3,000." >/dev/null
"$distributor" approve "$id" --by "Demo Approver"
"$distributor" correct "$id" --by "Demo Approver" --reason "figure updated by the research team"
"$distributor" run --exit-when-idle
echo
"$distributor" log "$id" --channel wire
echo
"$distributor" status || true
echo
echo "Written by the file transports (embargoed email before the lift; the newsroom, wire, feed and social at it;"
echo "then the correction: an email to everyone who had a copy, the page's change note, a new wire version, an edit"
echo "and a reply on social):"
find outbox -type f | sort
