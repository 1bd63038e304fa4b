// lilya.js against a real lilya server (tests/test_lilya_js_server.py runs it):
// `node --experimental-websocket tests/js/against_server.mjs ws://HOST:PORT/ws SCENARIO`.
// It prints one JSON line with what happened; the Python test judges it.
import { connect } from "../../lilya/static/lilya.js";

const [url, scenario] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const token = (name, seconds) => `${name}.${Math.floor(Date.now() / 1000) + seconds}`;
const states = [];
const tokens = [];
const report = (result) => console.log(JSON.stringify({ states, tokens, ...result }));

function open(getToken) {
  const client = connect(url, { getToken, minDelay: 100, maxDelay: 500 });
  client.on("state", (s) => states.push([s.state, s.code ?? null]));
  return client;
}

if (scenario === "refresh") {
  // 3 s tokens, 6 s connected: lilya.js refreshes before each expiry, so the
  // server never closes 4001, and the server's 0.5 s pings are all answered.
  const client = open(() => {
    const t = token("ann", 3);
    tokens.push(t);
    return t;
  });
  const sub = client.subscribe("news");
  await sub.ready;
  await sleep(6000);
  const position = await client.publish("news", "still here");
  report({ state: client.state, user: client.info.user, position, expires_at: client.info.expires_at });
  client.close();
} else if (scenario === "expire") {
  // One 2 s token and no other: at expiry the server closes 4001, lilya.js asks
  // for a new token, gets none, and stops.
  const given = [token("bob", 2)];
  const client = open(() => {
    const t = given.shift() ?? null;
    tokens.push(t);
    return t;
  });
  await new Promise((resolve) => client.on("state", (s) => s.state === "closed" && resolve()));
  report({ state: client.state });
} else if (scenario === "refused") {
  // An expired token is a 401 before accept; lilya.js asks again and connects.
  const given = [token("cy", -10), token("cy", 60)];
  const client = open(() => {
    const t = given.shift();
    tokens.push(t);
    return t;
  });
  await new Promise((resolve) => client.on("connected", resolve));
  report({ state: client.state, user: client.info.user });
  client.close();
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
