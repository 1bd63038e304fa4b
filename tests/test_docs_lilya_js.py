"""docs/lilya-js.md: its Python example serves lilya.js and the endpoint; its defaults hold.

The page's JavaScript example runs in ``tests/js/docs.test.mjs``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lilya.browser import lilya_js
from lilya.testclient import TestClient
from tests.support.docs import DOCS, python_blocks


def test_the_serving_example_serves_the_module_and_the_endpoint() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks("lilya-js.md")[0], "docs/lilya-js.md", "exec"), namespace)
    with TestClient(namespace["app"]) as client:
        response = client.get("/lilya.js")
        assert response.status_code == 200
        assert response.content == lilya_js()
        with client.websocket_connect("/ws") as ws:
            ws.send_text(json.dumps({"type": "connect", "id": 1}))
            assert "ok" in ws.receive_json(timeout=5)


def test_the_options_table_gives_the_defaults_of_the_code() -> None:
    source = lilya_js().decode()
    defaults = dict(re.findall(r"^\s+(\w+): (\d+),", source, re.M))
    page = (DOCS / "lilya-js.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| `(\d+)`", page, re.M))
    assert set(documented) >= {"minDelay", "maxDelay", "ping", "pingTimeout", "timeout", "retries"}
    for name, value in documented.items():
        if name != "max_age":  # the Python route's setting
            assert defaults[name] == value, name
