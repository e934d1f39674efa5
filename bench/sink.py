"""A counting SMTP sink on loopback, in its own process: `python bench/sink.py PORT [--record FILE]`.

Prints "ready" once listening. When the parent closes its stdin it stops and prints one JSON line: the number of
messages accepted and the wall-clock time (time.time()) of the first and the last. With --record it also writes
every accepted recipient address to FILE, one per line, so that a benchmark can count duplicates and missing ones.
"""

import asyncio
import json
import sys
import time

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self, record: bool):
        self.count = 0
        self.first = None
        self.last = None
        self.recipients = [] if record else None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # as Postfix and Exim offer it

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1
        if self.recipients is not None:
            self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


if __name__ == "__main__":
    record = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--record" else None
    handler = Counter(record is not None)
    controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    finally:
        controller.stop()
    asyncio.set_event_loop(None)
    if record:
        with open(record, "w", encoding="utf-8") as out:
            out.writelines(f"{r}\n" for r in handler.recipients)
    print(json.dumps({"count": handler.count, "first": handler.first, "last": handler.last}), flush=True)
