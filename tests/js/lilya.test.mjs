// lilya.js against the in-process fake server: `node --test tests/js/`.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { connect, LilyaError } from "../../lilya/static/lilya.js";
import { FakeServer } from "./fake_server.mjs";

const FAST = { minDelay: 5, maxDelay: 40, ping: 60000, pingTimeout: 60000 };
let clients = [];
afterEach(() => {
  for (const client of clients) client.close();
  clients = [];
});

function open(server, options = {}) {
  const client = connect("ws://fake/ws", { WebSocket: server.WebSocket, ...FAST, ...options });
  clients.push(client);
  return client;
}

/** Resolve with the first `type` event of `emitter` that `check` accepts. */
function next(emitter, type, check = () => true, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event in ${ms} ms`)), ms);
    const off = emitter.on(type, (event) => {
      if (!check(event)) return;
      off();
      clearTimeout(timer);
      resolve(event);
    });
  });
}

const connected = (client) => (client.state === "connected" ? null : next(client, "connected"));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const frames = (server, type) => server.received.filter((frame) => frame.type === type);

/** Collect a subscription's message data in arrival order. */
function collect(sub) {
  const seen = [];
  sub.on("message", (m) => seen.push(m.data));
  return seen;
}

async function until(check, ms = 3000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not true within ${ms} ms: ${check}`);
    await sleep(2);
  }
}

const range = (n, from = 1) => Array.from({ length: n }, (_, i) => i + from);

test("connect sends the token in the bearer subprotocol and the name in connect", async () => {
  const server = new FakeServer();
  const states = [];
  const client = open(server, { getToken: async () => "tok-1", name: "page" });
  client.on("state", (s) => states.push(s.state));
  const info = await next(client, "connected");
  assert.deepEqual(server.last.protocols, ["bearer", "tok-1"]);
  assert.deepEqual(frames(server, "connect"), [{ id: 0, type: "connect", name: "page" }]);
  assert.equal(info.user, "tok-1");
  assert.equal(client.info.client, "m1");
  assert.deepEqual(states, ["connected"]);
  assert.equal(client.state, "connected");
});

test("a token that is not a valid subprotocol travels in the connect frame instead", async () => {
  const server = new FakeServer();
  const client = open(server, { getToken: () => "a b=c" });
  await next(client, "connected");
  assert.deepEqual(server.last.protocols, []);
  assert.equal(frames(server, "connect")[0].token, "a b=c");
});

test("an http page url becomes a ws url and https becomes wss", () => {
  const server = new FakeServer();
  assert.equal(open(server, {}).url, "ws://fake/ws");
  const a = connect("http://h/ws", { WebSocket: server.WebSocket });
  const b = connect("https://h/ws", { WebSocket: server.WebSocket });
  clients.push(a, b);
  assert.equal(a.url, "ws://h/ws");
  assert.equal(b.url, "wss://h/ws");
});

test("messages of many channels over one socket arrive in order, each with its own positions", async () => {
  const server = new FakeServer();
  const client = open(server);
  const subs = range(20).map((i) => client.subscribe(`c${i}`));
  await Promise.all(subs.map((s) => s.ready));
  const seen = subs.map(collect);
  for (const i of range(5)) for (const [n, sub] of subs.entries()) server.publish(sub.channel, `${n}:${i}`);
  await until(() => seen.every((s) => s.length === 5));
  for (const [n, s] of seen.entries()) assert.deepEqual(s, range(5).map((i) => `${n}:${i}`));
  assert.equal(server.sockets.length, 1);
  assert.deepEqual([subs[3].epoch, subs[3].offset], ["e1", 5]);
});

test("a subscribe made before connecting goes out once connected, and ready gives the reply", async () => {
  const server = new FakeServer();
  server.publish("news", "old");
  const client = open(server);
  const sub = client.subscribe("news");
  assert.deepEqual(await sub.ready, { epoch: "e1", offset: 1, recovered: false });
  assert.deepEqual([sub.epoch, sub.offset], ["e1", 1]);
});

test("server drops while 500 messages are published: every one arrives once, in order", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  for (const i of range(500)) {
    server.publish("room", i);
    if (i % 97 === 0) {
      server.drop(i % 2 ? 1006 : 1012);
      server.publish("room", "while down");
      await next(client, "connected");
    }
  }
  await until(() => seen.length >= 505);
  await sleep(20);
  assert.deepEqual(seen.filter((m) => m !== "while down"), range(500));
  assert.equal(seen.length, 505);
  assert.equal(server.sockets.length, 6);
  assert.ok(frames(server, "subscribe").slice(1).every((f) => f.since?.epoch === "e1"));
});

test("a reconnect before any message was received still resumes from the subscribe reply", async () => {
  const server = new FakeServer();
  server.publish("room", "before");
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  server.drop();
  server.publish("room", "while away"); // nobody is connected
  await until(() => seen.length === 1);
  assert.deepEqual(seen, ["while away"]);
  assert.deepEqual(frames(server, "subscribe")[1].since, { epoch: "e1", offset: 1 });
});

test("messages replayed twice (a replay overlapping live ones) are shown once", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  server.publish("room", 1);
  server.publish("room", 2);
  for (const offset of [1, 2, 2, 1]) server.last._push({ type: "message", channel: "room", epoch: "e1", offset, data: "dup" });
  server.publish("room", 3);
  await until(() => seen.length === 3);
  await sleep(10);
  assert.deepEqual(seen, [1, 2, 3]);
});

test("an offset that jumps ahead makes the client resubscribe from its place and fill the hole", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  server.publish("room", 1);
  await until(() => seen.length === 1);
  server.last.subscribed.delete("room"); // the server silently loses message 2 for us
  server.publish("room", 2);
  server.last.subscribed.add("room");
  server.publish("room", 3);
  await until(() => seen.length === 3);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(frames(server, "unsubscribe").length, 1);
  assert.deepEqual(frames(server, "subscribe").at(-1).since, { epoch: "e1", offset: 1 });
});

test("a gap push is reported and recovered from history", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  const gaps = [];
  sub.on("gap", (g) => gaps.push(g));
  await sub.ready;
  server.last.subscribed.delete("room");
  server.publish("room", 1);
  server.publish("room", 2);
  server.last.subscribed.add("room");
  server.last._push({ type: "gap", channel: "room", epoch: "e1", first: 1, last: 2, dropped: 2 });
  server.publish("room", 3);
  await until(() => seen.length === 3);
  await sleep(10);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(gaps.length, 1);
});

test("a resume the server cannot serve gives a reset event and continues from the new epoch", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  server.publish("room", "a");
  await until(() => seen.length === 1);
  const reset = next(sub, "reset");
  server.restartEmpty();
  server.drop(1012);
  assert.deepEqual(await reset, { type: "reset", channel: "room", epoch: "e2", offset: 0 });
  server.publish("room", "b");
  await until(() => seen.length === 2);
  assert.deepEqual(seen, ["a", "b"]);
  assert.deepEqual([sub.epoch, sub.offset], ["e2", 1]);
});

test("a message of a new epoch without a reset makes the client ask where it stands", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  await sub.ready;
  server.publish("room", "a");
  await until(() => sub.offset === 1);
  const reset = next(sub, "reset");
  server.restartEmpty();
  server.publish("room", "b"); // e2:1, and we are at e1:1
  await reset;
  assert.deepEqual(frames(server, "subscribe").at(-1).since, { epoch: "e1", offset: 1 });
});

test("a publish whose reply was lost is sent again with the same message_id and delivered once", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  let lose = true;
  server.onRequest = (socket, frame) => {
    if (frame.type === "publish" && lose) {
      lose = false;
      server.publish(frame.channel, frame.data, frame.message_id); // done, but the reply is lost
      socket._closeFromServer(1006, "");
      return true;
    }
    return false;
  };
  const position = await client.publish("room", { text: "once" });
  assert.deepEqual(position, { epoch: "e1", offset: 1 });
  const publishes = frames(server, "publish");
  assert.equal(publishes.length, 2);
  assert.equal(publishes[0].message_id, publishes[1].message_id);
  await sleep(10);
  assert.deepEqual(seen, [{ text: "once" }]);
});

test("a publish answered unknown_outcome or unavailable is retried with the same message_id", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  const errors = ["unknown_outcome", "unavailable"];
  server.onRequest = (socket, frame) => {
    if (frame.type !== "publish" || !errors.length) return false;
    socket._push({ id: frame.id, error: { code: errors.shift(), message: "backend" } });
    return true;
  };
  assert.deepEqual(await client.publish("room", 1), { epoch: "e1", offset: 1 });
  const ids = new Set(frames(server, "publish").map((f) => f.message_id));
  assert.equal(frames(server, "publish").length, 3);
  assert.equal(ids.size, 1);
});

test("a publish retried too often rejects with the server's error", async () => {
  const server = new FakeServer();
  const client = open(server, { retries: 2 });
  await connected(client);
  server.onRequest = (socket, frame) => {
    if (frame.type !== "publish") return false;
    socket._push({ id: frame.id, error: { code: "unavailable", message: "redis is down" } });
    return true;
  };
  await assert.rejects(client.publish("room", 1), { name: "LilyaError", code: "unavailable" });
  assert.equal(frames(server, "publish").length, 3);
});

test("a publish waiting for its retry when the socket drops goes out on the next socket", async () => {
  const server = new FakeServer();
  const client = open(server, { minDelay: 30 });
  await connected(client);
  let first = true;
  server.onRequest = (socket, frame) => {
    if (frame.type !== "publish" || !first) return false;
    first = false;
    socket._push({ id: frame.id, error: { code: "unavailable", message: "later" } });
    setTimeout(() => socket._closeFromServer(1012, ""), 5);
    return true;
  };
  assert.deepEqual(await client.publish("room", 1), { epoch: "e1", offset: 1 });
  assert.equal(server.sockets.length, 2);
});

test("a publish refused for good rejects with that code", async () => {
  const server = new FakeServer();
  const client = open(server);
  server.onRequest = (socket, frame) => {
    if (frame.type !== "publish") return false;
    socket._push({ id: frame.id, error: { code: "forbidden", message: "read-only" } });
    return true;
  };
  const error = await client.publish("room", 1).catch((e) => e);
  assert.ok(error instanceof LilyaError);
  assert.equal(error.code, "forbidden");
  assert.equal(error.message, "forbidden: read-only");
});

test("call returns the rpc result, rejects not_found and times out", async () => {
  const server = new FakeServer();
  server.rpc.never = () => undefined;
  const client = open(server);
  assert.deepEqual(await client.call("echo", { a: 1 }), { a: 1 });
  await assert.rejects(client.call("nope"), { code: "not_found" });
  await assert.rejects(client.call("never", null, { timeout: 20 }), { code: "timeout" });
});

test("a call in flight when the socket drops rejects disconnected; it is not run twice", async () => {
  const server = new FakeServer();
  let runs = 0;
  server.rpc.slow = (data, socket) => {
    runs++;
    socket._closeFromServer(1006, "");
    return undefined;
  };
  const client = open(server);
  await assert.rejects(client.call("slow"), { code: "disconnected" });
  await connected(client);
  await sleep(10);
  assert.equal(runs, 1);
});

test("a call marked retry is sent again on the next socket and after unknown_outcome", async () => {
  const server = new FakeServer();
  let runs = 0;
  server.rpc.say = (data, socket) => {
    runs++;
    if (runs === 1) return socket._closeFromServer(1006, ""); // lost with the socket
    if (runs === 2) return socket._push({ id: server.received.at(-1).id, error: { code: "unknown_outcome", message: "?" } });
    return { said: data.id };
  };
  const client = open(server);
  assert.deepEqual(await client.call("say", { id: "x1" }, { retry: true }), { said: "x1" });
  assert.equal(runs, 3);
});

test("requests made while disconnected wait for the next socket", async () => {
  const server = new FakeServer();
  const client = open(server, { minDelay: 20 });
  await connected(client);
  server.drop();
  await next(client, "state", (s) => s.state === "disconnected");
  const result = client.call("echo", "later");
  assert.equal(await result, "later");
});

test("presence lists the members and presence subscriptions get join and leave", async () => {
  const server = new FakeServer();
  const a = open(server, { getToken: () => "ann" });
  const room = a.subscribe("room", { presence: true });
  await room.ready;
  const joined = next(room, "join");
  const b = open(server, { getToken: () => "bob" });
  const bobs = b.subscribe("room");
  await bobs.ready;
  assert.deepEqual((await joined).info, { user: "bob" });
  assert.deepEqual(await room.presence(), { m1: { user: "ann" }, m2: { user: "bob" } });
  assert.equal(frames(server, "subscribe")[0].presence, true);
  assert.equal("presence" in frames(server, "subscribe")[1], false);
  const left = next(room, "leave");
  await bobs.unsubscribe();
  assert.equal((await left).member, "m2");
});

test("history returns the channel's last messages", async () => {
  const server = new FakeServer();
  for (const i of range(5)) server.publish("room", i);
  const client = open(server);
  const history = await client.history("room", { limit: 2 });
  assert.deepEqual(history.messages.map((m) => m.data), [4, 5]);
});

test("after unsubscribe no more messages are delivered and the name can be subscribed again", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  await sub.unsubscribe();
  server.publish("room", 1);
  await sleep(10);
  assert.deepEqual(seen, []);
  assert.equal(frames(server, "unsubscribe").length, 1);
  assert.ok(client.subscribe("room"));
});

test("an unsubscribe while the subscribe is on its way is undone on the server too", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  const sub = client.subscribe("room");
  await sub.unsubscribe(); // before the reply
  await until(() => frames(server, "unsubscribe").length === 1);
  await until(() => !server.last.subscribed.has("room"));
  server.publish("room", 1);
  const again = client.subscribe("room");
  assert.equal((await again.ready).recovered, false);
});

test("subscribing on a closed client throws closed", () => {
  const server = new FakeServer();
  const client = open(server);
  client.close();
  assert.throws(() => client.subscribe("room"), { code: "closed" });
});

test("subscribing twice to a channel or with a non-string name is a mistake", () => {
  const server = new FakeServer();
  const client = open(server);
  client.subscribe("room");
  assert.throws(() => client.subscribe("room"), { code: "already_subscribed" });
  assert.throws(() => client.subscribe(5), TypeError);
  assert.throws(() => client.publish(null, 1), TypeError);
  return assert.rejects(client.call(7), TypeError);
});

test("a subscribe the server refuses ends that subscription with an error event", async () => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("secret:x");
  const error = next(sub, "error");
  await assert.rejects(sub.ready, { code: "forbidden" });
  assert.equal((await error).code, "forbidden");
  assert.equal(client.subscriptions.has("secret:x"), false);
});

for (const code of [1000, 1008, 1009, 4003]) {
  test(`close code ${code} from the server stops the client: no reconnect`, async () => {
    const server = new FakeServer();
    const client = open(server);
    await connected(client);
    server.onRequest = () => true;
    // It goes out: the rpc may have run, so it is not sent again.
    const pending = assert.rejects(client.call("echo", null, { timeout: 0 }), { code: "disconnected" });
    const queued = new Promise((resolve) => setTimeout(resolve, 1)); // let it go out
    const closed = next(client, "state", (s) => s.state === "closed");
    server.drop(code, "bye");
    await queued;
    assert.deepEqual(await closed, { state: "closed", code, reason: "bye" });
    await pending;
    await sleep(30);
    assert.equal(server.sockets.length, 1);
    await assert.rejects(client.call("echo"), { code: "closed" });
  });
}

for (const code of [1001, 1005, 1006, 1011, 1012, 1013]) {
  test(`close code ${code} from the server makes the client reconnect and resubscribe`, async () => {
    const server = new FakeServer();
    const client = open(server);
    const sub = client.subscribe("room");
    await sub.ready;
    server.drop(code);
    await next(sub, "subscribed");
    assert.equal(server.sockets.length, 2);
    assert.equal(client.state, "connected");
  });
}

test("4001 gets a new token from getToken and reconnects with it", async () => {
  const server = new FakeServer();
  let n = 0;
  const client = open(server, { getToken: () => `t${++n}` });
  await connected(client);
  server.drop(4001, "token expired");
  await next(client, "connected");
  assert.deepEqual(server.last.protocols, ["bearer", "t2"]);
});

test("4001 without a new token (getToken gives null) stops the client", async () => {
  const server = new FakeServer();
  const tokens = ["t1", null];
  const client = open(server, { getToken: () => tokens.shift() });
  await connected(client);
  const closed = next(client, "state", (s) => s.state === "closed");
  server.drop(4001, "token expired");
  assert.equal((await closed).reason, "no token");
});

test("4001 without getToken stops the client", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  const closed = next(client, "state", (s) => s.state === "closed");
  server.drop(4001, "token expired");
  assert.equal((await closed).code, 4001);
});

test("a disconnect push decides for the close that follows (daphne drops close reasons)", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  const closed = next(client, "state", (s) => s.state === "closed");
  server.last._push({ type: "disconnect", code: 4999, reason: "banned", reconnect: false });
  setTimeout(() => server.drop(4999, ""), 5);
  assert.deepEqual(await closed, { state: "closed", code: 4999, reason: "banned" });
});

test("connect refused unauthorized gets a fresh token; a second refusal with no getToken stops", async () => {
  const server = new FakeServer();
  server.tokens = new Set(["good"]);
  const tokens = ["bad", "good"];
  const client = open(server, { getToken: () => tokens.shift() });
  await next(client, "connected");
  assert.equal(server.sockets.length, 2);
  const plain = open(server);
  assert.equal((await next(plain, "state", (s) => s.state === "closed")).code, 4003);
});

test("a handshake that never opened asks getToken again before the next attempt", async () => {
  const server = new FakeServer();
  server.refuse = 2;
  let calls = 0;
  const client = open(server, { getToken: () => `t${++calls}` });
  await next(client, "connected");
  assert.equal(calls, 3);
  assert.deepEqual(server.last.protocols, ["bearer", "t3"]);
});

test("a refused handshake that fires only error (no close) is retried once, not twice", async () => {
  const server = new FakeServer();
  server.refuse = 1;
  server.refuseQuietly = true;
  const client = open(server);
  const downs = [];
  client.on("state", (s) => s.state === "disconnected" && downs.push(s.code));
  await next(client, "connected");
  assert.deepEqual(downs, [1006]);
  assert.equal(server.sockets.length, 2);
});

test("getToken throwing is reported and retried with backoff", async () => {
  const server = new FakeServer();
  let calls = 0;
  const client = open(server, {
    getToken: async () => {
      if (++calls === 1) throw new Error("login server down");
      return "ok";
    },
  });
  const error = await next(client, "error");
  assert.equal(error.message, "login server down");
  await next(client, "connected");
});

test("reconnect delays double from minDelay, are jittered and capped at maxDelay", async () => {
  const server = new FakeServer();
  server.refuse = 6;
  const delays = [];
  const client = open(server, { minDelay: 4, maxDelay: 16 });
  client.on("state", (s) => s.state === "disconnected" && delays.push(s.delay));
  await next(client, "connected", () => true, 5000);
  const bases = [4, 8, 16, 16, 16, 16];
  assert.equal(delays.length, 6);
  for (const [i, delay] of delays.entries()) {
    assert.ok(delay >= bases[i] / 2 && delay <= bases[i], `${delay} for ${bases[i]}`);
  }
  assert.ok(new Set(delays).size > 1, "jittered");
});

test("a ping nobody answers drops the dead socket and reconnects (a laptop waking up)", async () => {
  const server = new FakeServer();
  const client = open(server, { ping: 10, pingTimeout: 30 });
  const sub = client.subscribe("room");
  const seen = collect(sub);
  await sub.ready;
  await until(() => frames(server, "ping").length >= 2); // answered pings keep it alive
  assert.equal(server.sockets.length, 1);
  server.last.muted = true; // the network is gone, no close event ever comes
  server.publish("room", "while asleep");
  const down = await next(client, "state", (s) => s.state === "disconnected");
  assert.equal(down.reason, "ping timeout");
  await until(() => seen.length === 1);
  assert.deepEqual(seen, ["while asleep"]);
  assert.equal(server.sockets[0].closedByClient, 1000);
});

test("the server's ping is answered with a pong", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  server.last._push({ type: "ping" });
  await until(() => frames(server, "pong").length === 1);
  assert.deepEqual(frames(server, "pong"), [{ type: "pong" }]);
});

test("a token with an expiry is refreshed before it runs out", async () => {
  const server = new FakeServer();
  server.expiresAt = Date.now() / 1000 + 1.2;
  let n = 0;
  const client = open(server, { getToken: () => `t${++n}` });
  await connected(client);
  await until(() => frames(server, "refresh").length === 1, 3000);
  assert.equal(frames(server, "refresh")[0].token, "t2");
  assert.equal(server.last.token, "t2");
  assert.equal(server.sockets.length, 1);
});

test("a frame that is not JSON is reported as an error and the client carries on", async () => {
  const server = new FakeServer();
  const client = open(server);
  await connected(client);
  const error = next(client, "error");
  server.last._push("{not json");
  server.last._push("null");
  server.last._push({ type: "message", channel: "nobody", epoch: "e1", offset: 1, data: 1 });
  server.last._push({ id: 999, ok: {} });
  assert.equal((await error).code, "bad_frame");
  assert.equal(await client.call("echo", 1), 1);
});

test("a handler that throws does not stop the others or the client", async (t) => {
  const server = new FakeServer();
  const client = open(server);
  const sub = client.subscribe("room");
  await sub.ready;
  const thrown = new Promise((resolve) => (globalThis.reportError = resolve));
  t.after(() => delete globalThis.reportError);
  sub.on("message", () => {
    throw new Error("page bug");
  });
  const seen = collect(sub);
  server.publish("room", 1);
  server.publish("room", 2);
  await until(() => seen.length === 2);
  assert.equal((await thrown).message, "page bug");
});

test("close() rejects what is pending, ends subscriptions' ready, and never reconnects", async () => {
  const server = new FakeServer();
  server.rpc.never = () => undefined;
  const client = open(server);
  const sub = client.subscribe("room");
  await connected(client);
  const pending = client.call("never");
  const queued = client.publish("other", 1);
  client.close();
  client.close(); // twice is fine
  await assert.rejects(pending, { code: "closed" });
  await assert.rejects(queued, { code: "closed" });
  await sleep(30);
  assert.equal(server.sockets.length, 1);
  assert.equal(server.sockets[0].closedByClient, 1000);
  assert.equal(client.state, "closed");
  assert.ok(sub);
});

test("close() while waiting to reconnect cancels the reconnect", async () => {
  const server = new FakeServer();
  const client = open(server, { minDelay: 50 });
  await connected(client);
  server.drop();
  await next(client, "state", (s) => s.state === "disconnected");
  client.close();
  await sleep(80);
  assert.equal(server.sockets.length, 1);
});

test("close() while getToken is running opens no socket", async () => {
  const server = new FakeServer();
  let release;
  const client = open(server, { getToken: () => new Promise((resolve) => (release = resolve)) });
  client.close();
  release("late");
  await sleep(10);
  assert.equal(server.sockets.length, 0);
});

test("the browser's online event ends the backoff wait, or checks a connected socket at once", async (t) => {
  const listeners = {};
  globalThis.addEventListener = (type, fn) => (listeners[type] = fn);
  globalThis.removeEventListener = (type, fn) => listeners[type] === fn && delete listeners[type];
  t.after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });
  const server = new FakeServer();
  const client = open(server, { minDelay: 60000, maxDelay: 60000 });
  await connected(client);
  listeners.online();
  await until(() => frames(server, "ping").length === 1);
  server.drop();
  await next(client, "state", (s) => s.state === "disconnected");
  listeners.online(); // without it, the next attempt would be 30 s or more away
  await next(client, "connected");
  assert.equal(server.sockets.length, 2);
  client.close();
  assert.equal(listeners.online, undefined, "close() removes its listener");
});

test("options that cannot work are refused at connect() with what to give instead", () => {
  const server = new FakeServer();
  const WebSocket = server.WebSocket;
  for (const [options, says] of [
    [{ minDelay: 0 }, /options.minDelay must be a finite number >= 1, got 0/],
    [{ ping: -5 }, /options.ping must/],
    [{ pingTimeout: "10" }, /options.pingTimeout must/],
    [{ maxDelay: Infinity }, /options.maxDelay must/],
    [{ retries: NaN }, /options.retries must/],
    [{ getToken: "abc" }, /getToken must be a function/],
    [{ WebSocket: undefined }, /pass options.WebSocket/],
  ]) {
    assert.throws(() => connect("ws://fake/ws", { WebSocket, ...options }), { name: "TypeError", message: says });
  }
  assert.throws(() => connect("not a url", { WebSocket }), TypeError);
  assert.equal(server.sockets.length, 0);
});
