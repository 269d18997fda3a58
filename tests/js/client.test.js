// The Hubbub client driven as a page would use it, against fake connections whose server side each
// test plays and a clock it moves (tests/js/fakes.js): reconnects, recovery without repeats,
// presence, heartbeats, the SSE fallback, publish and close.
"use strict";

const { test, beforeEach, afterEach } = require("node:test");
const assert = require("node:assert/strict");

const Hubbub = require("../../hubbub/static/hubbub/hubbub.js");
const { install } = require("./fakes.js");

let browser;
let randomness;

beforeEach(() => {
  browser = install();
  randomness = Math.random;
  Math.random = () => 0; // every backoff wait is its lowest: half the nominal one
});

afterEach(() => {
  Math.random = randomness;
  browser.restore();
});

/** A client with every event it emits recorded in order, as [name, detail]. */
function client(options) {
  const hub = new Hubbub(options);
  hub.events = [];
  for (const name of ["open", "close", "message", "subscribed", "join", "leave", "presence", "reconnect",
                      "recovered", "fallback", "error"]) {
    hub.on(name, (detail) => hub.events.push([name, detail]));
  }
  return hub;
}

const names = (hub) => hub.events.map(([name]) => name);
const socket = () => browser.sockets[browser.sockets.length - 1];

/** Move the clock to just before `wait` ms, check no new socket is made, then to `wait`. */
function expectReconnectAfter(wait) {
  const before = browser.sockets.length;
  browser.clock.tick(wait - 1);
  assert.equal(browser.sockets.length, before, `reconnected before ${wait} ms`);
  browser.clock.tick(1);
  assert.equal(browser.sockets.length, before + 1, `no reconnect at ${wait} ms`);
}

test("it connects to the page's host with ws: or wss:", () => {
  client({ url: "/ws/pubsub/" });
  assert.equal(socket().url, "wss://site.example/ws/pubsub/");
});

test("after a drop it waits minDelay, doubling per failed attempt up to maxDelay", () => {
  const hub = client({ minDelay: 100, maxDelay: 1000 });
  socket().accept();
  socket().drop();
  assert.equal(hub.state, "connecting");
  for (const wait of [50, 100, 200, 400, 500, 500]) { // half of 100, 200, 400, 800, 1000, 1000
    expectReconnectAfter(wait);
    socket().drop(); // the handshake fails
  }
  assert.deepEqual(names(hub), ["open", "close"]);
});

test("the backoff starts afresh once the server has spoken, not when it merely accepts", () => {
  const hub = client({ minDelay: 100, maxDelay: 10000 });
  socket().accept();
  socket().drop();
  expectReconnectAfter(50);
  socket().accept(); // accepted, then dropped before a word: still backing off
  socket().drop();
  expectReconnectAfter(100);
  socket().accept();
  socket().deliver({ type: "pong" });
  socket().drop();
  expectReconnectAfter(50);
  assert.deepEqual(names(hub), ["open", "close", "open", "reconnect", "close", "open", "reconnect", "close"]);
});

test("the waits are spread over 50-100 % of the nominal one by Math.random", () => {
  Math.random = () => 0.5;
  client({ minDelay: 100, maxDelay: 1000 });
  socket().accept();
  socket().drop();
  expectReconnectAfter(75);
});

test("on reconnecting it resubscribes from its position, and replayed messages arrive exactly once", () => {
  const hub = client({ minDelay: 100 });
  hub.subscribe("room");
  socket().accept();
  assert.deepEqual(socket().sent, [{ type: "subscribe", group: "room" }]);
  socket().deliver({ type: "subscribed", group: "room", epoch: "e1", offset: 2, recovered: true, missed: 0 });
  socket().deliver({ type: "message", group: "room", data: "three", epoch: "e1", offset: 3 });
  socket().deliver({ type: "message", group: "room", data: "four", epoch: "e1", offset: 4 });
  socket().drop();
  expectReconnectAfter(50);
  socket().accept();
  assert.deepEqual(socket().sent, [{ type: "subscribe", group: "room", since: { epoch: "e1", offset: 4 } }]);
  for (const [data, offset] of [["three", 3], ["four", 4], ["five", 5]]) { // a replay overlapping what it had
    socket().deliver({ type: "message", group: "room", data, epoch: "e1", offset });
  }
  socket().deliver({ type: "subscribed", group: "room", epoch: "e1", offset: 5, recovered: true, missed: 1 });
  socket().deliver({ type: "message", group: "room", data: "four again", epoch: "e1", offset: 4 });
  const messages = hub.events.filter(([name]) => name === "message").map(([, m]) => m.data);
  assert.deepEqual(messages, ["three", "four", "five"]);
  assert.deepEqual(hub.events.filter(([name]) => name === "recovered").map(([, r]) => r.missed), [1]);
  assert.deepEqual(hub.position("room"), { epoch: "e1", offset: 5 });
});

test("messages of a new epoch, and messages without an offset, are always delivered", () => {
  const hub = client();
  hub.subscribe("room");
  socket().accept();
  socket().deliver({ type: "subscribed", group: "room", epoch: "e1", offset: 9 });
  socket().deliver({ type: "message", group: "room", data: "live", epoch: null, offset: null });
  socket().deliver({ type: "message", group: "room", data: "reset", epoch: "e2", offset: 1 });
  socket().deliver({ type: "message", group: "other", data: "not subscribed", epoch: "e1", offset: 10 });
  assert.deepEqual(hub.events.filter(([name]) => name === "message").map(([, m]) => m.data), ["live", "reset"]);
  assert.deepEqual(hub.position("room"), { epoch: "e2", offset: 1 });
  assert.equal(hub.position("other"), null);
});

test("presence: the member list follows presence, join and leave, and is relearnt after a reconnect", () => {
  const hub = client();
  hub.subscribe("room", { presence: { name: "Ann" } });
  socket().accept();
  assert.deepEqual(socket().sent, [{ type: "subscribe", group: "room", presence: { name: "Ann" } }]);
  const ann = { channel: "c1", info: { name: "Ann" } };
  const bo = { channel: "c2", info: { name: "Bo" } };
  socket().deliver({ type: "presence", group: "room", members: [ann] });
  socket().deliver({ type: "join", group: "room", member: bo });
  assert.deepEqual(hub.members("room"), [ann, bo]);
  socket().deliver({ type: "leave", group: "room", member: ann });
  assert.deepEqual(hub.members("room"), [bo]);
  socket().drop();
  browser.clock.tick(250);
  socket().accept();
  assert.deepEqual(hub.members("room"), []);
  assert.deepEqual(hub.members("nowhere"), []);
});

test("a ping goes every pingInterval; no answer within pongTimeout replaces the connection", () => {
  const hub = client({ pingInterval: 1000, pongTimeout: 300, minDelay: 100 });
  const first = socket();
  first.accept();
  browser.clock.tick(1000);
  assert.deepEqual(first.sent, [{ type: "ping" }]);
  first.deliver({ type: "pong" }); // heard in time: stays
  browser.clock.tick(1000);
  browser.clock.tick(299);
  assert.equal(first.closedWith, null);
  browser.clock.tick(1);
  assert.deepEqual(first.closedWith, { code: 4000, reason: "no pong" });
  assert.deepEqual(names(hub), ["open", "close"]);
  expectReconnectAfter(50);
  browser.clock.tick(0); // the dead socket's own close event, late: changes nothing
  assert.equal(browser.sockets.length, 2);
});

test("after fallbackAfter failed handshakes, none ever open, it switches to SSE for good", () => {
  const hub = client({ fallbackAfter: 3, minDelay: 100 });
  hub.subscribe("room", { presence: { name: "Ann" } });
  socket().drop();
  expectReconnectAfter(50);
  socket().drop();
  expectReconnectAfter(100);
  socket().drop();
  assert.equal(browser.sockets.length, 3);
  assert.equal(hub.transport, "sse");
  assert.deepEqual(names(hub), ["fallback", "open"]);
  assert.deepEqual(hub.events[0][1], { transport: "sse", failures: 3 });
  const [source] = browser.sources;
  assert.equal(source.url.pathname, "/pubsub/events/");
  assert.equal(source.url.searchParams.get("group"), "room");
  assert.deepEqual(source.init, { withCredentials: true });
  source.deliver({ type: "message", group: "room", data: "over sse", epoch: "e1", offset: 1 });
  assert.equal(hub.events.at(-1)[1].data, "over sse");
});

test("once a WebSocket has worked, failures are retried over WebSocket, never SSE", () => {
  const hub = client({ fallbackAfter: 2, minDelay: 100, maxDelay: 100 });
  socket().accept();
  socket().drop();
  for (let i = 0; i < 5; i += 1) {
    expectReconnectAfter(50);
    socket().drop();
  }
  assert.equal(hub.transport, "websocket");
  assert.equal(browser.sources.length, 0);
});

test("without an sseUrl it never falls back", () => {
  const hub = client({ sseUrl: null, fallbackAfter: 1, minDelay: 100 });
  socket().drop();
  expectReconnectAfter(50);
  assert.equal(hub.transport, "websocket");
});

test("over SSE a refused stream is reported and reopened later from its position", () => {
  const hub = client({ fallbackAfter: 1, minDelay: 100 });
  hub.subscribe("room");
  socket().drop();
  const [first] = browser.sources;
  first.deliver({ type: "message", group: "room", data: "one", epoch: "e1", offset: 1 });
  first.blip(); // the browser reconnects that one by itself
  assert.equal(browser.sources.length, 1);
  first.refuse();
  assert.equal(hub.events.at(-1)[0], "error");
  assert.equal(hub.events.at(-1)[1].code, "refused");
  browser.clock.tick(49);
  assert.equal(browser.sources.length, 1);
  browser.clock.tick(1);
  assert.equal(browser.sources.length, 2);
  assert.equal(browser.sources[1].url.searchParams.get("last_event_id"), "e1:1");
});

test("over SSE a stream silent past pingInterval + pongTimeout is reopened", () => {
  client({ fallbackAfter: 1, pingInterval: 1000, pongTimeout: 500 }).subscribe("room");
  socket().drop();
  browser.clock.tick(1000);
  assert.equal(browser.sources.length, 1);
  browser.clock.tick(1000); // silent for 2000 ms > 1500
  assert.equal(browser.sources.length, 2);
  assert.equal(browser.sources[0].readyState, 2);
});

test("publish sends a frame while open and returns false, sending nothing, while disconnected", () => {
  const hub = client();
  assert.equal(hub.publish("room", { text: "early" }), false);
  socket().accept();
  assert.equal(hub.publish("room", { text: "hi" }), true);
  assert.deepEqual(socket().sent, [{ type: "publish", group: "room", data: { text: "hi" } }]);
});

test("over SSE publish POSTs the message as JSON to sseUrl", () => {
  const hub = client({ fallbackAfter: 1, sseUrl: "/pubsub/events/" });
  socket().drop();
  assert.equal(hub.publish("room", { text: "hi" }), true);
  assert.equal(browser.requests.length, 1);
  const [request] = browser.requests;
  assert.equal(request.url, "/pubsub/events/");
  assert.equal(request.init.method, "POST");
  assert.deepEqual(request.body, { group: "room", data: { text: "hi" } });
});

test("unsubscribe tells the server, and later messages of the group are not delivered", () => {
  const hub = client();
  hub.subscribe("room");
  socket().accept();
  hub.unsubscribe("room");
  assert.deepEqual(socket().sent.at(-1), { type: "unsubscribe", group: "room" });
  socket().deliver({ type: "message", group: "room", data: "late", epoch: "e1", offset: 1 });
  assert.equal(names(hub).includes("message"), false);
});

test("close() disconnects for good: no reconnect, no timer left", () => {
  const hub = client();
  socket().accept();
  hub.close();
  assert.deepEqual(socket().closedWith, { code: 1000, reason: undefined });
  browser.clock.tick(60000);
  assert.equal(browser.sockets.length, 1);
  assert.equal(browser.clock.pending, 0);
  assert.equal(hub.state, "closed");
  assert.deepEqual(names(hub), ["open", "close"]);
});

test("invalid JSON from the server is an error event, and the client carries on", () => {
  const hub = client();
  hub.subscribe("room");
  socket().accept();
  socket().deliver("{not json");
  socket().deliver({ type: "message", group: "room", data: "fine", epoch: null, offset: null });
  assert.deepEqual(hub.events.filter(([name]) => name !== "open").map(([name, d]) => [name, d.code || d.data]),
                   [["error", "bad_json"], ["message", "fine"]]);
});

test("a handler that throws does not stop the others; its error is rethrown outside the client", () => {
  const hub = new Hubbub();
  const heard = [];
  hub.on("open", () => { throw new Error("handler bug"); });
  hub.on("open", () => heard.push("second"));
  socket().accept();
  assert.deepEqual(heard, ["second"]);
  assert.throws(() => browser.clock.tick(0), /handler bug/);
});

test("on() returns a function that stops that handler", () => {
  const hub = new Hubbub();
  const heard = [];
  const stop = hub.on("open", () => heard.push("open"));
  stop();
  socket().accept();
  assert.deepEqual(heard, []);
});
