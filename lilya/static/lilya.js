// lilya.js: the browser client of the lilya channels protocol, v1 (docs/protocol.md,
// docs/lilya-js.md). One ES module, no dependencies. One WebSocket carries many
// channels; each keeps its own position (epoch + offset), so a reconnect resumes
// every channel where it stopped and the page sees each message exactly once.
//
//   import { connect } from "/lilya.js";
//   const client = connect("/ws", { getToken: async () => (await fetch(...)).text() });
//   const room = client.subscribe("room:lobby", { presence: true });
//   room.on("message", (m) => show(m.data));
//   await client.publish("room:lobby", { text: "hi" });

// What each close code means for us (the contract's table). "stop": do not
// reconnect; "token": get a new token first; any other code: reconnect with backoff.
const POLICY = { 1000: "stop", 1008: "stop", 1009: "stop", 4003: "stop", 4001: "token" };
// Request errors that left nothing done or an unknown outcome: a publish retries
// them with its message_id, which the server delivers once (the contract).
const RETRY = ["unavailable", "unknown_outcome"];
// The subprotocol a token may ride in must be an RFC 7230 token; others go in `connect`.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A request the server refused, or one that could not finish (`timeout`, `disconnected`, `closed`). */
export class LilyaError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "LilyaError";
    this.code = code;
  }
}

class Emitter {
  constructor() {
    this._on = {};
  }

  /** Call `fn(event)` for each `type` event; returns a function that stops it. */
  on(type, fn) {
    (this._on[type] ||= new Set()).add(fn);
    return () => this._on[type].delete(fn);
  }

  _emit(type, event) {
    for (const fn of this._on[type] || []) {
      try {
        fn(event);
      } catch (error) {
        // A broken handler must not break the client: report it (the console, or
        // window.onerror), and keep going.
        report(error);
      }
    }
  }
}

const report = (error) =>
  globalThis.reportError
    ? globalThis.reportError(error)
    : setTimeout(() => {
        throw error;
      });
const randomId = () =>
  globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

/** One channel of a client: events `message`, `join`, `leave`, `gap`, `reset`, `subscribed`, `error`. */
export class Subscription extends Emitter {
  constructor(client, channel, options) {
    super();
    this.client = client;
    this.channel = channel;
    this.presenceEvents = !!options.presence;
    // The last position delivered: null until the first subscribe reply.
    this.epoch = options.since?.epoch ?? null;
    this.offset = options.since?.offset ?? null;
    this.active = false; // subscribed on the current socket
    this.ready = new Promise((resolve, reject) => {
      this._ready = [resolve, reject];
    });
    this.ready.catch(() => {});
  }

  /** Who is on the channel now: `{member_id: info}`. */
  presence() {
    return this.client.presence(this.channel);
  }

  /** Stop receiving this channel. */
  unsubscribe() {
    return this.client._unsubscribe(this);
  }

  _position() {
    return this.epoch === null ? undefined : { epoch: this.epoch, offset: this.offset };
  }

  _message(frame) {
    if (!this.active) return; // between a gap and its recovery: the replay brings it
    if (frame.epoch === this.epoch) {
      if (frame.offset <= this.offset) return; // already delivered (a replay overlap)
      if (frame.offset > this.offset + 1) return this.client._recover(this); // missed some
    } else if (this.epoch !== null) {
      // A new epoch without a reset push: our place is gone; the recovery says so.
      return this.client._recover(this);
    }
    this.epoch = frame.epoch;
    this.offset = frame.offset;
    this._emit("message", frame);
  }
}

/** A connection to a lilya protocol endpoint; see `connect()`. */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.url = new URL(url, globalThis.location?.href).href.replace(/^http/, "ws");
    this.options = {
      getToken: null,
      name: undefined,
      WebSocket: globalThis.WebSocket,
      minDelay: 500, // ms, first reconnect delay (then doubled, jittered)
      maxDelay: 15000, // ms, longest reconnect delay
      ping: 20000, // ms between our `ping` requests while connected
      pingTimeout: 10000, // ms a ping may take before the socket counts as dead
      timeout: 10000, // ms, default for call()
      retries: 8, // times a publish is retried after `unavailable` / `unknown_outcome`
      ...options,
    };
    // Your mistakes, said at once rather than as a client that never connects.
    for (const key of ["minDelay", "maxDelay", "ping", "pingTimeout", "timeout", "retries"]) {
      const value = this.options[key];
      const least = ["timeout", "retries"].includes(key) ? 0 : 1;
      if (typeof value !== "number" || !(value >= least) || value === Infinity) {
        throw new TypeError(`options.${key} must be a finite number >= ${least}, got ${value}`);
      }
    }
    if (typeof this.options.WebSocket !== "function") {
      throw new TypeError("no WebSocket class here: pass options.WebSocket (Node 20: --experimental-websocket)");
    }
    const { getToken } = this.options;
    if (getToken != null && typeof getToken !== "function") throw new TypeError("options.getToken must be a function");
    this.state = "connecting"; // connecting, connected, disconnected (waiting to retry), closed
    this.info = null; // the last `connect` reply: client, user, expires_at, heartbeat
    this.subscriptions = new Map();
    this._pending = new Map(); // id -> request
    this._queue = []; // requests waiting for a connected socket
    this._nextId = 1;
    this._attempt = 0;
    this._token = undefined;
    this._freshToken = true;
    this._ws = null;
    this._timers = new Map(); // what -> timeout: "ping", "refresh", "reconnect", or a request
    // Back online (a laptop waking, Wi-Fi returning): check the socket now, or stop
    // waiting out the backoff.
    this._online = () => {
      if (this.state === "disconnected") this._schedule("reconnect", () => this._open(), 0);
      else this._ping();
    };
    globalThis.addEventListener?.("online", this._online);
    this._open();
  }

  /** Subscribe to `channel`; `options.presence` also delivers `join`/`leave`. */
  subscribe(channel, options = {}) {
    if (typeof channel !== "string") throw new TypeError(`a channel is a string, not ${typeof channel}`);
    if (this.subscriptions.has(channel)) throw new LilyaError("already_subscribed", channel);
    if (this.state === "closed") throw new LilyaError("closed", "the client is closed");
    const sub = new Subscription(this, channel, options);
    this.subscriptions.set(channel, sub);
    if (this.state === "connected") this._subscribe(sub);
    return sub;
  }

  /** Publish `data` to `channel`; resolves to `{epoch, offset}` once, however many retries it took. */
  publish(channel, data, { timeout } = {}) {
    if (typeof channel !== "string") throw new TypeError(`a channel is a string, not ${typeof channel}`);
    return this._request({ type: "publish", channel, data, message_id: randomId() }, { timeout, retry: true });
  }

  /**
   * Call the server's rpc handler `method`; resolves to what it returned. An rpc
   * in flight when the socket drops rejects `disconnected` (it may have run), unless
   * `retry` says the method is idempotent (say, it dedupes by an id in `data`): then
   * it is sent again on the next socket, and after `unavailable`/`unknown_outcome`.
   */
  async call(method, data, { timeout = this.options.timeout, retry = false } = {}) {
    if (typeof method !== "string") throw new TypeError(`a method is a string, not ${typeof method}`);
    return (await this._request({ type: "rpc", method, data }, { timeout, retry })).data;
  }

  /** Who is on `channel` now: `{member_id: info}`. */
  async presence(channel, { timeout = this.options.timeout } = {}) {
    return (await this._request({ type: "presence", channel }, { timeout, resend: true })).members;
  }

  /** The last messages of `channel` (`limit` of them): `{epoch, offset, messages}`. */
  history(channel, { limit, timeout = this.options.timeout } = {}) {
    return this._request({ type: "history", channel, limit }, { timeout, resend: true });
  }

  /** Close for good: no reconnect; every request not answered yet rejects with `closed`. */
  close() {
    if (this.state === "closed") return;
    this._stop(1000, "closed by the client");
  }

  // -- connection --------------------------------------------------------------

  async _open() {
    this._setState("connecting");
    const { getToken, WebSocket: Socket } = this.options;
    if (getToken && this._freshToken) {
      try {
        this._token = await getToken();
      } catch (error) {
        if (this.state === "closed") return;
        this._emit("error", error);
        return this._retry(1006, "getToken failed");
      }
      if (this.state === "closed") return;
      this._freshToken = false;
      if (this._token == null) return this._stop(4001, "no token");
    }
    const token = this._token;
    const inHeader = token != null && TOKEN.test(token);
    const ws = new Socket(this.url, inHeader ? ["bearer", token] : []);
    this._ws = ws;
    let opened = false;
    let farewell = null;
    ws.onopen = () => {
      opened = true;
      const frame = { type: "connect", name: this.options.name };
      if (token != null && !inHeader) frame.token = token;
      this._send({ id: 0, ...frame }, ws);
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return this._emit("error", new LilyaError("bad_frame", `not JSON: ${String(event.data).slice(0, 80)}`));
      }
      if (frame?.type === "disconnect") farewell = frame;
      else this._frame(frame, ws);
    };
    // A handshake that fails fires `error`, then `close`; Node's WebSocket (20)
    // fires only `error`. Either way it ends here, once.
    ws.onerror = () => opened || ws.onclose?.({ code: 1006, reason: "" });
    ws.onclose = (event) => {
      if (ws !== this._ws) return;
      // A handshake that never opened may have been refused for its token (401).
      if (!opened) this._freshToken = true;
      const code = farewell?.code ?? event.code;
      this._closed(code, farewell?.reason ?? event.reason, farewell?.reconnect);
    };
  }

  _frame(frame, ws) {
    if (frame === null || typeof frame !== "object") return;
    if (frame.type === "ping") return this._send({ type: "pong" }, ws);
    if ("id" in frame && !frame.type) {
      if (frame.id === 0) return this._connected(frame, ws);
      const request = this._pending.get(frame.id);
      if (request) this._reply(request, frame);
      return;
    }
    const sub = this.subscriptions.get(frame.channel);
    if (!sub) return;
    if (frame.type === "message") sub._message(frame);
    else if (frame.type === "reset") {
      sub.epoch = frame.epoch;
      sub.offset = frame.offset;
      sub._emit("reset", frame);
    } else if (frame.type === "gap") {
      sub._emit("gap", frame);
      this._recover(sub);
    } else sub._emit(frame.type, frame); // join, leave
  }

  _connected(frame, ws) {
    if (frame.error) {
      // Refused at `connect`: a bad token may be replaced, anything else is final.
      const code = frame.error.code === "unauthorized" && this.options.getToken ? 4001 : 4003;
      return this._drop(code, frame.error.message);
    }
    this.info = frame.ok;
    this._attempt = 0;
    this._setState("connected");
    this._emit("connected", frame.ok);
    for (const sub of this.subscriptions.values()) this._subscribe(sub);
    for (const request of this._queue.splice(0)) this._transmit(request, ws);
    this._schedule("ping", () => this._ping(), this.options.ping);
    this._expiry(frame.ok?.expires_at);
  }

  _expiry(expires) {
    if (!expires || !this.options.getToken) return;
    // Refresh at 90 % of the token's remaining life (and not sooner than 1 s).
    const delay = Math.max(1000, (expires * 1000 - Date.now()) * 0.9);
    this._schedule("refresh", () => this._refresh(), delay);
  }

  async _refresh() {
    try {
      const token = await this.options.getToken();
      if (token == null) return;
      this._token = token;
      const ok = await this._request({ type: "refresh", token });
      this.info = { ...this.info, expires_at: ok.expires_at };
      this._expiry(ok.expires_at);
    } catch (error) {
      // The server closes 4001 at expiry; we reconnect with a new token then.
      if (error.code !== "disconnected") this._emit("error", error);
    }
  }

  async _ping() {
    if (this.state !== "connected") return;
    const ws = this._ws;
    try {
      await this._request({ type: "ping" }, { timeout: this.options.pingTimeout });
    } catch (error) {
      // No answer: the socket is dead (a laptop that slept, a network that went away)
      // even if the browser has not noticed. Drop it and reconnect.
      if (ws === this._ws && error.code === "timeout") return this._drop(1006, "ping timeout");
      return;
    }
    if (ws === this._ws) this._schedule("ping", () => this._ping(), this.options.ping);
  }

  // Leave the current socket at once (its close handshake may never finish).
  _drop(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
    try {
      ws.close(code === 1006 ? 1000 : undefined);
    } catch {}
    this._closed(code, reason);
  }

  _closed(code, reason, reconnect) {
    this._ws = null;
    // Publishes waiting to be retried go out on the next socket instead.
    for (const what of this._timers.keys()) if (typeof what === "object") this._queue.push(what);
    this._clearTimers();
    for (const sub of this.subscriptions.values()) sub.active = false;
    for (const request of [...this._pending.values()]) {
      this._pending.delete(request.frame.id);
      // Not answered on that socket: publishes (by message_id) and reads go again on
      // the next; an rpc may have run, so its caller decides.
      if (request.retry || request.resend) this._queue.push(request);
      else this._finish(request, new LilyaError("disconnected", `connection lost (${code})`));
    }
    const policy = POLICY[code];
    if (policy === "token" && this.options.getToken) {
      this._freshToken = true;
      return this._retry(code, reason);
    }
    if (policy || reconnect === false) return this._stop(code, reason);
    this._retry(code, reason);
  }

  _retry(code, reason) {
    const { minDelay, maxDelay } = this.options;
    // Exponential backoff with jitter: half fixed, half random, so a restarted
    // server is not hit by every client at the same instant.
    const base = Math.min(maxDelay, minDelay * 2 ** this._attempt++);
    const delay = base / 2 + (Math.random() * base) / 2;
    this._setState("disconnected", { code, reason, delay });
    this._schedule("reconnect", () => this._open(), delay);
  }

  _stop(code, reason) {
    const ws = this._ws;
    this._ws = null;
    globalThis.removeEventListener?.("online", this._online);
    if (ws) {
      ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000);
      } catch {}
    }
    this._setState("closed", { code, reason });
    const error = new LilyaError("closed", `the client is closed (${code} ${reason || ""})`.trim());
    const waiting = [...this._timers.keys()].filter((what) => typeof what === "object");
    this._clearTimers();
    for (const request of [...this._pending.values(), ...this._queue, ...waiting]) this._finish(request, error);
    for (const sub of this.subscriptions.values()) sub._ready[1](error);
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit("state", { state, ...detail });
  }

  // One timer per `what`: scheduling it again replaces the old one.
  _schedule(what, fn, delay) {
    clearTimeout(this._timers.get(what));
    this._timers.set(
      what,
      setTimeout(() => {
        this._timers.delete(what);
        fn();
      }, delay),
    );
  }

  _clearTimers() {
    for (const timer of this._timers.values()) clearTimeout(timer);
    this._timers.clear();
  }

  // -- requests ----------------------------------------------------------------

  _request(frame, { timeout, retry = false, resend = false } = {}) {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") return reject(new LilyaError("closed", "the client is closed"));
      const request = { frame, resolve, reject, retry, resend, tries: 0 };
      if (timeout) {
        request.timer = setTimeout(() => this._finish(request, new LilyaError("timeout", `no reply in ${timeout} ms`)), timeout);
      }
      if (this.state === "connected") this._transmit(request, this._ws);
      else this._queue.push(request);
    });
  }

  _transmit(request, ws) {
    request.frame.id = this._nextId++;
    this._pending.set(request.frame.id, request);
    this._send(request.frame, ws);
  }

  _send(frame, ws) {
    try {
      ws.send(JSON.stringify(frame));
    } catch (error) {
      this._emit("error", error); // the close event follows and the request is retried
    }
  }

  _reply(request, frame) {
    this._pending.delete(frame.id);
    if (!frame.error) return this._finish(request, null, frame.ok ?? {});
    const { code, message } = frame.error;
    if (request.retry && RETRY.includes(code) && request.tries++ < this.options.retries) {
      // Same message_id: the server delivers it at most once however often we send it.
      const delay = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** request.tries);
      return this._schedule(request, () => this._transmit(request, this._ws), delay);
    }
    this._finish(request, new LilyaError(code, message));
  }

  _finish(request, error, value) {
    if (request.done) return;
    request.done = true;
    clearTimeout(request.timer);
    this._pending.delete(request.frame.id);
    const queued = this._queue.indexOf(request);
    if (queued >= 0) this._queue.splice(queued, 1);
    clearTimeout(this._timers.get(request));
    this._timers.delete(request);
    error ? request.reject(error) : request.resolve(value);
  }

  // -- subscriptions -----------------------------------------------------------

  async _subscribe(sub) {
    const frame = { type: "subscribe", channel: sub.channel, since: sub._position() };
    if (sub.presenceEvents) frame.presence = true;
    let ok;
    try {
      ok = await this._request(frame);
    } catch (error) {
      if (error.code === "disconnected" || this.subscriptions.get(sub.channel) !== sub) return;
      // Refused (forbidden, limit...): the subscription is over; say so.
      this.subscriptions.delete(sub.channel);
      sub._ready[1](error);
      return sub._emit("error", error);
    }
    if (this.subscriptions.get(sub.channel) !== sub) {
      // Unsubscribed while the subscribe was on its way: undo it on the server too.
      return this._request({ type: "unsubscribe", channel: sub.channel }).catch(() => {});
    }
    // Without a place, or when it could not be served, start from the server's now
    // (a `reset` push follows an unrecovered `since` and says so to the page).
    if (!ok.recovered && sub.epoch === null) {
      sub.epoch = ok.epoch;
      sub.offset = ok.offset;
    }
    sub.active = true;
    sub._ready[0](ok);
    sub._emit("subscribed", ok);
  }

  async _recover(sub) {
    // A hole in what we received: unsubscribe, then subscribe again from our place;
    // the replay fills the hole, and offsets we already have are skipped.
    if (!sub.active) return;
    sub.active = false;
    try {
      await this._request({ type: "unsubscribe", channel: sub.channel });
    } catch {
      return; // disconnected: the reconnect resubscribes from our place anyway
    }
    if (this.subscriptions.get(sub.channel) === sub) this._subscribe(sub);
  }

  async _unsubscribe(sub) {
    if (this.subscriptions.get(sub.channel) !== sub) return;
    this.subscriptions.delete(sub.channel);
    const wasActive = sub.active;
    sub.active = false;
    if (wasActive && this.state === "connected") await this._request({ type: "unsubscribe", channel: sub.channel }).catch(() => {});
  }
}

/**
 * Open a client to the lilya protocol endpoint at `url` (ws://, wss://, or a path
 * relative to the page). It reconnects by itself until `close()` or a final close
 * code; see docs/lilya-js.md for the options and events.
 */
export function connect(url, options) {
  return new Client(url, options);
}
