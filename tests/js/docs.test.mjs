// docs/lilya-js.md: its JavaScript example runs, against the fake server, and does what it says.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { FakeServer } from "./fake_server.mjs";

const page = readFileSync(new URL("../../docs/lilya-js.md", import.meta.url), "utf8");
const example = page.match(/^```js\n([\s\S]*?)^```/m)[1];

test("the page's example connects, subscribes, publishes, calls and closes", async (t) => {
  const server = new FakeServer();
  server.rpc.whoami = (data, socket) => socket.token;
  const logged = [];
  const saved = { ...globalThis };
  Object.assign(globalThis, {
    WebSocket: server.WebSocket,
    location: { href: "http://page.test/chat" },
    document: { body: { dataset: {} } },
    fetch: async (url, init) => ({ text: async () => `${init.method}-${url.slice(1)}-token` }),
  });
  const log = console.log;
  console.log = (...args) => logged.push(args);
  t.after(() => {
    console.log = log;
    for (const name of ["WebSocket", "location", "document", "fetch"]) {
      if (name in saved) globalThis[name] = saved[name];
      else delete globalThis[name];
    }
  });
  const lilya = new URL("../../lilya/static/lilya.js", import.meta.url).href;
  const source = example.replace('from "/lilya.js"', `from ${JSON.stringify(lilya)}`);
  await import(`data:text/javascript,${encodeURIComponent(source)}`);
  assert.equal(server.last.url, "ws://page.test/ws");
  assert.deepEqual(server.last.protocols, ["bearer", "POST-login-token"]);
  assert.deepEqual(frames(server, "connect")[0].name, "dashboard");
  assert.deepEqual(frames(server, "subscribe")[0], { id: 1, type: "subscribe", channel: "room:lobby", presence: true });
  assert.deepEqual(logged, [[1, { text: "hello" }]]);
  assert.equal(frames(server, "rpc")[0].method, "whoami");
  assert.equal(globalThis.document.body.dataset.state, "closed");
});

const frames = (server, type) => server.received.filter((frame) => frame.type === type);
