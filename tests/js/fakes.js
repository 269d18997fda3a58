// What hubbub.js takes from the browser, played in node: a clock whose timers run only when a test
// advances it, WebSocket and EventSource connections whose server side the test plays, fetch,
// location. install() puts them on globalThis, where the client looks them up; restore() undoes it.
"use strict";

/** setTimeout, setInterval and Date.now on a clock that moves only in tick(). */
class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map(); // id → {fn, at, every}
    this.lastId = 0;
  }

  setTimeout(fn, delay = 0) {
    return this.add(fn, delay, null);
  }

  setInterval(fn, delay) {
    return this.add(fn, delay, delay);
  }

  clear(id) {
    this.timers.delete(id);
  }

  add(fn, delay, every) {
    this.lastId += 1;
    this.timers.set(this.lastId, { fn, at: this.now + delay, every });
    return this.lastId;
  }

  /** Move time on by ms, running every timer that falls due, in time order. */
  tick(ms) {
    const end = this.now + ms;
    for (let next = this.due(end); next; next = this.due(end)) {
      const [id, timer] = next;
      this.now = timer.at;
      if (timer.every === null) this.timers.delete(id);
      else timer.at += timer.every;
      timer.fn();
    }
    this.now = end;
  }

  due(end) {
    let first = null;
    for (const entry of this.timers) {
      if (entry[1].at <= end && (!first || entry[1].at < first[1].at)) first = entry;
    }
    return first;
  }

  /** How many timers (one-off or repeating) are waiting. */
  get pending() {
    return this.timers.size;
  }
}

/** A WebSocket whose server side the test plays: accept(), deliver(frame), drop(). */
class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.made.push(this);
  }

  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send() on a WebSocket that is not open");
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = FakeWebSocket.CLOSED;
    setTimeout(() => this.onclose({ code }), 0); // as in a browser, the close event comes later
  }

  accept() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen({});
  }

  deliver(frame) {
    this.onmessage({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  drop() {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose({ code: 1006 });
  }
}
Object.assign(FakeWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3, made: [] });

/** An EventSource whose server side the test plays: deliver(frame), refuse(), blip(). */
class FakeEventSource {
  constructor(url, init) {
    this.url = new URL(url);
    this.init = init;
    this.readyState = FakeEventSource.OPEN;
    FakeEventSource.made.push(this);
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  deliver(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }

  /** The answer was no stream (a 403, a proxy's error page): the browser gives up. */
  refuse() {
    this.readyState = FakeEventSource.CLOSED;
    this.onerror({});
  }

  /** The stream broke: the browser reconnects by itself. */
  blip() {
    this.readyState = FakeEventSource.CONNECTING;
    this.onerror({});
  }
}
Object.assign(FakeEventSource, { CONNECTING: 0, OPEN: 1, CLOSED: 2, made: [] });

const NAMES = ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "WebSocket", "EventSource", "fetch",
               "location"];

/** Put a fresh browser on globalThis; returns {clock, sockets, sources, requests, restore}. */
function install() {
  const saved = new Map(NAMES.map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]));
  const savedNow = Date.now;
  const clock = new FakeClock();
  const requests = [];
  FakeWebSocket.made = [];
  FakeEventSource.made = [];
  Object.assign(globalThis, {
    setTimeout: (fn, delay) => clock.setTimeout(fn, delay),
    setInterval: (fn, delay) => clock.setInterval(fn, delay),
    clearTimeout: (id) => clock.clear(id),
    clearInterval: (id) => clock.clear(id),
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch: (url, init) => {
      requests.push({ url, init, body: JSON.parse(init.body) });
      return Promise.resolve({ ok: true, json: () => Promise.resolve({}) });
    },
    location: { href: "https://site.example/page/" },
  });
  Date.now = () => clock.now;
  function restore() {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globalThis[name];
    }
    Date.now = savedNow;
  }
  return { clock, sockets: FakeWebSocket.made, sources: FakeEventSource.made, requests, restore };
}

module.exports = { install, FakeClock, FakeWebSocket, FakeEventSource };
