"""A lilya channels worker that the cross-namespace test runs inside a network namespace.

``python -m tests.channels.netns_worker COMMAND URL PREFIX CHANNEL [...]``, one
JSON line per result on stdout:

- ``subscribe HOST COUNT [EPOCH OFFSET]``: subscribe with presence
  ``{"host": HOST}`` (resuming after ``(EPOCH, OFFSET)`` if given), print
  ``{"ready": member}``, then take COUNT messages and print them with the
  last position and whether the subscription recovered.
- ``publish FIRST COUNT [HOST]``: wait until a member of HOST is present (if
  given) and print the presence seen, then publish FIRST .. FIRST+COUNT-1.
- ``presence``: print who is present.
- ``await-empty``: poll presence until nobody is left; print how long it took.

``LILYA_PRESENCE_TTL`` sets ``presence_ttl`` (default 30 s).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import anyio

from lilya.channels import Channels


def say(value: Any) -> None:
    print(json.dumps(value), flush=True)


async def main(argv: list[str]) -> None:
    command, url, prefix, channel, *rest = argv
    ttl = float(os.environ.get("LILYA_PRESENCE_TTL", "30"))
    channels = Channels(url, key_prefix=prefix, history_size=1000, presence_ttl=ttl)
    async with channels:
        with anyio.fail_after(60):
            if command == "subscribe":
                host, count = rest[0], int(rest[1])
                since = (rest[2], int(rest[3])) if len(rest) > 2 else None
                async with channels.subscribe(channel, since=since, presence={"host": host}) as sub:
                    say({"ready": sub.member})
                    data: list[Any] = []
                    position = None
                    while len(data) < count:
                        event = await sub.receive()
                        if event.type == "message":
                            data.append(event.data)
                            position = list(event.position)
                    say({"data": data, "position": position, "recovered": sub.recovered})
            elif command == "publish":
                first, count = int(rest[0]), int(rest[1])
                if len(rest) > 2:
                    while True:
                        present = await channels.presence(channel)
                        if any(info == {"host": rest[2]} for info in present.values()):
                            say({"presence": present})
                            break
                        await anyio.sleep(0.05)
                for number in range(first, first + count):
                    await channels.publish(channel, {"n": number, "from": "a"})
                say({"published": count})
            elif command == "await-empty":
                started = time.monotonic()
                while await channels.presence(channel):
                    await anyio.sleep(0.05)
                say({"empty_after": time.monotonic() - started})
            else:
                say({"presence": await channels.presence(channel)})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
