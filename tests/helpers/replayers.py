"""Watchers that replay a server's ring, in a process of their own.

``python -m tests.helpers.replayers WS_URL TOKEN WATCHERS EVENTS`` opens WATCHERS ``watch?after=0``
streams at once, reads each until EVENTS events came, then exits 0 (1 on any error). A test that
measures how the server answers meanwhile runs them here, so that their reading does not compete
with the test's own requests for the test process's GIL.
"""

from __future__ import annotations

import sys
import threading

from websockets.sync.client import connect


def replay(url: str, token: str, events: int, errors: list[BaseException]) -> None:
    try:
        with connect(
            f"{url}?after=0", additional_headers={"Authorization": f"Bearer {token}"}, max_size=None,
            ping_interval=None, open_timeout=30,
        ) as ws:
            seen = 0
            while seen < events:
                seen += str(ws.recv(timeout=60)).startswith('{"type":"events"')
    except BaseException as exc:  # reported by the exit status
        errors.append(exc)


def main(argv: list[str]) -> int:
    url, token, watchers, events = argv[0], argv[1], int(argv[2]), int(argv[3])
    errors: list[BaseException] = []
    threads = [threading.Thread(target=replay, args=(url, token, events, errors)) for _ in range(watchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        print(repr(error), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
