// A small in-process lilya protocol server (docs/protocol.md) and a WebSocket class
// that talks to it, for lilya.js's unit tests. Frames cross as JSON text, each on
// its own macrotask like a real socket's events, so the client's code runs exactly
// as it does in a browser; the tests decide when a socket dies, stalls or lies.

const tick = (fn) => setImmediate(fn);

export class FakeServer {
  constructor() {
    this.epoch = "e1";
    this.channels = new Map(); // name -> {messages: [{offset, data}], ids: Map}
    this.sockets = []; // every socket ever opened, newest last
    this.received = []; // every frame a client sent, in order
    this.rpc = { echo: (data) => data };
    this.tokens = null; // a Set of accepted tokens, or null for "any"
    this.refuse = 0; // handshakes to refuse (error, then close 1006, before open)
    this.refuseQuietly = false; // refused handshakes fire only error (Node 20's WebSocket)
    this.onRequest = null; // (socket, frame) => true to handle it yourself
    this.expiresAt = null;
    const server = this;
    this.WebSocket = class FakeSocket {
      constructor(url, protocols = []) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.subscribed = new Set();
        this.muted = false;
        this.member = `m${server.sockets.length + 1}`;
        server.sockets.push(this);
        tick(() => {
          if (server.refuse > 0) {
            server.refuse--;
            this.readyState = 3;
            this.onerror?.({});
            // As browsers do; Node 20's WebSocket fires no close here (refuseQuietly).
            if (!server.refuseQuietly) this._closeFromServer(1006, "");
            return;
          }
          this.readyState = 1;
          this.onopen?.({});
        });
      }

      send(text) {
        if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
        if (this.muted) return;
        tick(() => this.readyState === 1 && server._receive(this, JSON.parse(text)));
      }

      close(code) {
        this.closedByClient = code ?? null;
        this._gone();
      }

      _push(frame) {
        if (this.readyState !== 1 || this.muted) return;
        const text = typeof frame === "string" ? frame : JSON.stringify(frame);
        tick(() => this.readyState === 1 && this.onmessage?.({ data: text }));
      }

      _closeFromServer(code, reason) {
        this._gone();
        tick(() => this.onclose?.({ code, reason }));
      }

      _gone() {
        this.readyState = 3;
        for (const name of this.subscribed) server._leave(this, name);
        this.subscribed.clear();
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }

  channel(name) {
    if (!this.channels.has(name)) this.channels.set(name, { messages: [], ids: new Map() });
    return this.channels.get(name);
  }

  /** Publish from the server side; returns the offset. */
  publish(name, data, messageId) {
    const channel = this.channel(name);
    if (messageId !== undefined && channel.ids.has(messageId)) return channel.ids.get(messageId);
    const offset = channel.messages.length + 1;
    channel.messages.push({ offset, data });
    if (messageId !== undefined) channel.ids.set(messageId, offset);
    for (const socket of this.sockets) {
      if (socket.readyState === 1 && socket.subscribed.has(name)) {
        socket._push({ type: "message", channel: name, epoch: this.epoch, offset, data });
      }
    }
    return offset;
  }

  /** Close every open socket with `code`, as a dying or restarting server does. */
  drop(code = 1006, reason = "") {
    for (const socket of this.sockets) if (socket.readyState === 1) socket._closeFromServer(code, reason);
  }

  /** Forget every position (a backend restarted empty): new epoch, no history. */
  restartEmpty() {
    this.epoch = `e${Number(this.epoch.slice(1)) + 1}`;
    this.channels.clear();
  }

  _leave(socket, name) {
    for (const other of this.sockets) {
      if (other !== socket && other.readyState === 1 && other.subscribed.has(name) && other.presence) {
        other._push({ type: "leave", channel: name, member: socket.member, info: {} });
      }
    }
  }

  _receive(socket, frame) {
    this.received.push(frame);
    if (this.onRequest?.(socket, frame)) return;
    if (frame.type === "pong") return;
    const reply = (ok) => socket._push({ id: frame.id, ok });
    const error = (code, message = code) => socket._push({ id: frame.id, error: { code, message } });
    switch (frame.type) {
      case "connect": {
        const token = frame.token ?? (socket.protocols[0] === "bearer" ? socket.protocols[1] : undefined);
        if (this.tokens && !this.tokens.has(token)) return error("unauthorized", "bad token");
        socket.token = token;
        return reply({ client: socket.member, user: token ?? null, expires_at: this.expiresAt, heartbeat: null });
      }
      case "subscribe": {
        if (socket.subscribed.has(frame.channel)) return error("already_subscribed");
        if (frame.channel.startsWith("secret:")) return error("forbidden", "not yours");
        const channel = this.channel(frame.channel);
        const top = channel.messages.length;
        const since = frame.since;
        const first = channel.messages[0]?.offset ?? top + 1;
        const recovered = !!since && since.epoch === this.epoch && since.offset <= top && since.offset >= first - 1;
        socket.subscribed.add(frame.channel);
        socket.presence = !!frame.presence;
        reply({ epoch: this.epoch, offset: top, recovered });
        if (since && !recovered) {
          socket._push({ type: "reset", channel: frame.channel, epoch: this.epoch, offset: top });
        } else if (since) {
          for (const m of channel.messages.filter((m) => m.offset > since.offset)) {
            socket._push({ type: "message", channel: frame.channel, epoch: this.epoch, ...m });
          }
        }
        for (const other of this.sockets) {
          if (other !== socket && other.readyState === 1 && other.subscribed.has(frame.channel) && other.presence) {
            other._push({ type: "join", channel: frame.channel, member: socket.member, info: { user: socket.token } });
          }
        }
        return;
      }
      case "unsubscribe":
        if (!socket.subscribed.delete(frame.channel)) return error("not_subscribed");
        this._leave(socket, frame.channel);
        return reply({});
      case "publish": {
        const offset = this.publish(frame.channel, frame.data, frame.message_id);
        return reply({ epoch: this.epoch, offset });
      }
      case "rpc": {
        const handler = this.rpc[frame.method];
        if (!handler) return error("not_found", `no rpc method ${frame.method}`);
        const result = handler(frame.data, socket);
        if (result === undefined) return; // the handler never answers
        return reply({ data: result });
      }
      case "presence": {
        const members = {};
        for (const other of this.sockets) {
          if (other.readyState === 1 && other.subscribed.has(frame.channel)) members[other.member] = { user: other.token };
        }
        return reply({ members });
      }
      case "history": {
        const messages = this.channel(frame.channel).messages.slice(-(frame.limit ?? 1000));
        return reply({
          epoch: this.epoch,
          offset: this.channel(frame.channel).messages.length,
          messages: messages.map((m) => ({ epoch: this.epoch, ...m })),
        });
      }
      case "refresh":
        socket.token = frame.token;
        return reply({ expires_at: null });
      case "ping":
        return reply({});
      default:
        return error("bad_request", `unknown type ${frame.type}`);
    }
  }
}
