"""A counting SMTP sink on loopback, in its own process: `python bench/sink.py PORT`."""

import asyncio
import sys

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


if __name__ == "__main__":
    controller = Controller(Counter(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    finally:
        controller.stop()
    asyncio.set_event_loop(None)
