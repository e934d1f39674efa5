#!/bin/sh
# The demo: a fresh embedded database, the example statement, an embargo a few seconds ahead, file transport.
set -eu
distributor="$1"
cd "$(dirname "$0")/.."
export DISTRIBUTOR_CONFIG=config/distributor.toml
rm -rf var outbox
"$distributor" init
"$distributor" recipients import recipients/journalists.csv --list embargo
id=$("$distributor" import examples/statements/nhrn-12-004-2026.txt)
"$distributor" approve "$id" --by "Demo Approver"
embargo=$(python3 -c 'from datetime import datetime, timedelta, timezone; print((datetime.now(timezone.utc) + timedelta(seconds=6)).isoformat(timespec="seconds"))')
"$distributor" schedule "$id" --embargo "$embargo" --override-embargo --by "Demo Scheduler"
"$distributor" run --exit-when-idle
echo
"$distributor" show "$id" | head -n 12
echo
"$distributor" log
echo
echo "Written by the file transports (embargoed email before the lift; wire, feed and social at it):"
find outbox -type f | sort
