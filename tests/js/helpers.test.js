// hubbub.js's pure logic: the reconnect backoff, duplicate filtering, and the frames and URLs it builds.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");

const Hubbub = require("../../hubbub/static/hubbub/hubbub.js");

const {
  DEFAULTS, socketUrl, backoff, fallsBack, newSubscription, subscribeFrame, streamUrl, alreadyDelivered, advance,
  membersByChannel,
} = Hubbub.internals;

const PAGE = "https://site.example/app/page";

test("the backoff doubles minDelay per attempt and stops at maxDelay", () => {
  const options = { minDelay: 500, maxDelay: 15000 };
  const highest = () => 1; // the top of random()'s range: the full nominal wait
  const waits = [0, 1, 2, 3, 4, 5, 6, 20].map((attempt) => backoff(attempt, options, highest));
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
});

test("each wait is randomised to between half and all of the nominal one", () => {
  const options = { minDelay: 500, maxDelay: 15000 };
  assert.equal(backoff(2, options, () => 0), 1000);
  assert.equal(backoff(2, options, () => 0.5), 1500);
  assert.ok(backoff(2, options, () => 0.999999) < 2000);
  assert.equal(backoff(30, options, () => 0), 7500);
});

test("the backoff uses Math.random when given no source of randomness", () => {
  for (let i = 0; i < 50; i += 1) {
    const wait = backoff(1, DEFAULTS);
    assert.ok(wait >= 500 && wait < 1000, `wait ${wait} outside [500, 1000)`);
  }
});

test("a message at or before the subscription's position in the same epoch is a repeat", () => {
  const sub = { epoch: "e1", offset: 7 };
  assert.equal(alreadyDelivered(sub, { epoch: "e1", offset: 6 }), true);
  assert.equal(alreadyDelivered(sub, { epoch: "e1", offset: 7 }), true);
  assert.equal(alreadyDelivered(sub, { epoch: "e1", offset: 8 }), false);
});

test("a message of another epoch (the history was reset) is never a repeat", () => {
  assert.equal(alreadyDelivered({ epoch: "e1", offset: 7 }, { epoch: "e2", offset: 1 }), false);
  assert.equal(alreadyDelivered({ epoch: null, offset: 0 }, { epoch: "e1", offset: 0 }), false);
});

test("a message without an offset (no history kept) is never a repeat and moves nothing", () => {
  const sub = { epoch: "e1", offset: 7 };
  assert.equal(alreadyDelivered(sub, { epoch: null, offset: null }), false);
  advance(sub, { epoch: null, offset: null });
  assert.deepEqual(sub, { epoch: "e1", offset: 7 });
});

test("a delivered message moves the subscription's position to its epoch and offset", () => {
  const sub = { epoch: "e1", offset: 7 };
  advance(sub, { epoch: "e2", offset: 3 });
  assert.deepEqual(sub, { epoch: "e2", offset: 3 });
});

test("page-relative endpoint URLs become ws: or wss: URLs on the page's host", () => {
  assert.equal(socketUrl("/ws/pubsub/", PAGE), "wss://site.example/ws/pubsub/");
  assert.equal(socketUrl("/ws/pubsub/", "http://127.0.0.1:8000/"), "ws://127.0.0.1:8000/ws/pubsub/");
  assert.equal(socketUrl("ws/", PAGE), "wss://site.example/app/ws/");
  assert.equal(socketUrl("ws://other.example:9000/x/", PAGE), "ws://other.example:9000/x/");
});

test("WebSocket gives way to SSE only after fallbackAfter failures, if none ever opened and SSE is routed", () => {
  assert.equal(fallsBack(DEFAULTS, false, 2), false);
  assert.equal(fallsBack(DEFAULTS, false, 3), true);
  assert.equal(fallsBack(DEFAULTS, true, 30), false);
  assert.equal(fallsBack({ ...DEFAULTS, sseUrl: null }, false, 30), false);
});

test("a first subscription asks from the start, a resumed one from its position, with presence if asked", () => {
  const plain = newSubscription(undefined);
  assert.deepEqual(subscribeFrame("room", plain), { type: "subscribe", group: "room" });
  const present = newSubscription({ presence: { name: "Ann" } });
  present.epoch = "e1";
  present.offset = 4;
  assert.deepEqual(subscribeFrame("room", present),
                   { type: "subscribe", group: "room", since: { epoch: "e1", offset: 4 }, presence: { name: "Ann" } });
});

test("presence: undefined joins without info (null), and no presence key does not join", () => {
  assert.equal(newSubscription({ presence: undefined }).wantsPresence, true);
  assert.equal(newSubscription({ presence: undefined }).info, null);
  assert.equal(newSubscription({}).wantsPresence, false);
});

test("the event-stream URL carries the group, the position to resume from and the presence info", () => {
  const sub = newSubscription({ presence: { name: "Bo" } });
  assert.equal(streamUrl("/pubsub/events/", "room", newSubscription(), PAGE),
               "https://site.example/pubsub/events/?group=room");
  sub.epoch = "e1";
  sub.offset = 9;
  const url = new URL(streamUrl("/pubsub/events/?v=1", "a b", sub, PAGE));
  assert.equal(url.searchParams.get("v"), "1");
  assert.equal(url.searchParams.get("group"), "a b");
  assert.equal(url.searchParams.get("last_event_id"), "e1:9");
  assert.deepEqual(JSON.parse(url.searchParams.get("presence")), { name: "Bo" });
});

test("a presence list is keyed by each member's channel", () => {
  const ann = { channel: "c1", info: { name: "Ann" } };
  const bo = { channel: "c2", info: { name: "Bo" } };
  const members = membersByChannel([ann, bo]);
  assert.deepEqual([...members.keys()], ["c1", "c2"]);
  assert.equal(members.get("c2"), bo);
});

test("the defaults are the documented ones, and the class exposes them", () => {
  assert.equal(Hubbub.DEFAULTS, DEFAULTS);
  assert.deepEqual(DEFAULTS, {
    url: "/ws/pubsub/", sseUrl: "/pubsub/events/", minDelay: 500, maxDelay: 15000, pingInterval: 20000,
    pongTimeout: 10000, fallbackAfter: 3,
  });
});
