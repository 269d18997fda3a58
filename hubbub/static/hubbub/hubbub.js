/*
 * hubbub.js: the browser client of hubbub's pub/sub endpoints
 * (hubbub.generic.pubsub.PubSubConsumer over WebSocket, PubSubEventStream over SSE).
 *
 * Classic script:  <script src="{% static 'hubbub/hubbub.js' %}"></script>  → window.Hubbub
 * ES module:       import { Hubbub } from "/static/hubbub/hubbub.mjs";
 *
 *   const hub = new Hubbub({ url: "/ws/pubsub/", sseUrl: "/pubsub/events/" });
 *   hub.subscribe("room", { presence: { name: "Ann" } });
 *   hub.on("message", (m) => console.log(m.group, m.data));
 *   hub.publish("room", { text: "hi" });
 *
 * It reconnects by itself (exponential backoff with jitter, capped), pings to notice a
 * dead connection, resubscribes from the last (epoch, offset) it saw so that missed
 * messages arrive exactly once, and switches to Server-Sent Events when WebSocket
 * handshakes keep failing before one ever succeeded (once a WebSocket has worked, a
 * failure is taken for a server restart or a network blip, and WebSocket is retried). Events: open, close, message, subscribed, join, leave,
 * presence, reconnect, recovered, fallback, error.
 *
 * The syntax stays within ES2015 (eslint.config.js holds it there). Under CommonJS (node, a
 * bundler) require() returns the class, and its `internals` property holds the pure helpers
 * below for the unit tests in tests/js/; they are not an API.
 */
(function (root, factory) {
  const { Hubbub, internals } = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = Hubbub;
    module.exports.internals = internals;
  } else {
    root.Hubbub = Hubbub;
  }
})(typeof self !== "undefined" ? self : this, () => {
  "use strict";

  const DEFAULTS = {
    url: "/ws/pubsub/", // the PubSubConsumer route (relative URLs use this page's host)
    sseUrl: "/pubsub/events/", // the PubSubEventStream route; null: never fall back to SSE
    minDelay: 500, // first reconnect delay, ms; doubles per failed attempt...
    maxDelay: 15000, // ...up to this; each delay is randomised to 50-100% of it
    pingInterval: 20000, // ms between pings (WebSocket) or the longest silence allowed (SSE)...
    pongTimeout: 10000, // ...plus this long for an answer before the connection counts as dead
    fallbackAfter: 3, // WebSocket handshakes failing in a row, none ever opened, before switching to SSE
  };

  // -- pure helpers: no sockets, no timers (tests/js/ runs them in node) ---------------------

  function socketUrl(url, base = location.href) {
    const parsed = new URL(url, base);
    if (parsed.protocol === "http:") parsed.protocol = "ws:";
    if (parsed.protocol === "https:") parsed.protocol = "wss:";
    return parsed.href;
  }

  /**
   * The wait before retry number `attempt` (0 for the first): minDelay doubled per attempt, capped
   * at maxDelay, then randomised to 50-100 % of that so a restarted server is not hit by every
   * client at once. `random` returns a number in [0, 1).
   */
  function backoff(attempt, options, random = Math.random) {
    return Math.min(options.maxDelay, options.minDelay * Math.pow(2, attempt)) * (0.5 + random() / 2);
  }

  /** Whether to give up on WebSocket for SSE: only if WebSocket never worked here, and SSE is routed. */
  function fallsBack(options, wsWorked, wsFailures) {
    return Boolean(options.sseUrl) && !wsWorked && wsFailures >= options.fallbackAfter;
  }

  /** A subscription's state; subscribe()'s options: {presence: info} also joins with that info. */
  function newSubscription(options) {
    const sub = { epoch: null, offset: 0, wantsPresence: false, info: null, members: new Map(),
                  resuming: false, source: null, heard: 0, refusals: 0 };
    if (options && "presence" in options) {
      sub.wantsPresence = true;
      sub.info = options.presence === undefined ? null : options.presence;
    }
    return sub;
  }

  /** The WebSocket frame that subscribes group from where sub left off. */
  function subscribeFrame(group, sub) {
    const frame = { type: "subscribe", group };
    if (sub.epoch !== null) frame.since = { epoch: sub.epoch, offset: sub.offset };
    if (sub.wantsPresence) frame.presence = sub.info;
    return frame;
  }

  /** The event-stream URL that subscribes group from where sub left off. */
  function streamUrl(sseUrl, group, sub, base = location.href) {
    const url = new URL(sseUrl, base);
    url.searchParams.set("group", group);
    if (sub.epoch !== null) url.searchParams.set("last_event_id", `${sub.epoch}:${sub.offset}`);
    if (sub.wantsPresence) url.searchParams.set("presence", JSON.stringify(sub.info));
    return url.href;
  }

  /**
   * Whether sub has had this message already: the same epoch, at or before its position (a replay
   * after a reconnect). A message without an offset (its group keeps no history) never repeats.
   */
  function alreadyDelivered(sub, frame) {
    return frame.offset !== null && frame.epoch === sub.epoch && frame.offset <= sub.offset;
  }

  /** Move sub's position to a delivered message's (epoch, offset), if it has one. */
  function advance(sub, frame) {
    if (frame.offset === null) return;
    sub.epoch = frame.epoch;
    sub.offset = frame.offset;
  }

  /** A presence list as a Map from each member's channel to the member. */
  function membersByChannel(members) {
    return new Map(members.map((member) => [member.channel, member]));
  }

  // -- the client ----------------------------------------------------------------------------

  class Hubbub {
    constructor(options) {
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.transport = "websocket"; // or "sse" after falling back
      this.state = "connecting"; // "open", "closed"
      this._handlers = {};
      this._subs = new Map(); // group → its state: see newSubscription()
      this._attempt = 0;
      this._wsFailures = 0;
      this._wsWorked = false;
      this._wasOpen = false;
      this._ws = null;
      this._timers = {};
      this._open();
    }

    /** Call fn(detail) on each event of this name; returns a function that stops it. */
    on(event, fn) {
      (this._handlers[event] = this._handlers[event] || []).push(fn);
      return () => this.off(event, fn);
    }

    off(event, fn) {
      const list = this._handlers[event] || [];
      const at = list.indexOf(fn);
      if (at >= 0) list.splice(at, 1);
    }

    /** Receive group's messages; {presence: info} also joins its presence with that info. */
    subscribe(group, options) {
      if (this._subs.has(group)) return;
      const sub = newSubscription(options);
      this._subs.set(group, sub);
      if (this.state === "open") this._start(group, sub);
    }

    unsubscribe(group) {
      const sub = this._subs.get(group);
      if (!sub) return;
      this._subs.delete(group);
      if (sub.source) sub.source.close();
      else this._send({ type: "unsubscribe", group });
    }

    /** Send data to group. Returns false (and sends nothing) while disconnected. */
    publish(group, data) {
      if (this.state !== "open") return false;
      if (this.transport === "websocket") return this._send({ type: "publish", group, data });
      fetch(this.options.sseUrl, {
        method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
        body: JSON.stringify({ group, data }),
      }).then((response) => {
        if (!response.ok) return response.json().then((error) => this._emit("error", error));
      }).catch((error) => {
        this._emit("error", { type: "error", code: "network", message: String(error), group });
      });
      return true;
    }

    /** The members present in group, as last heard (needs the subscription). */
    members(group) {
      const sub = this._subs.get(group);
      return sub ? Array.from(sub.members.values()) : [];
    }

    /** Where this client is in group's history: {epoch, offset}. */
    position(group) {
      const sub = this._subs.get(group);
      return sub ? { epoch: sub.epoch, offset: sub.offset } : null;
    }

    /** Disconnect for good (no reconnecting). */
    close() {
      this.state = "closed";
      this._stopTimers();
      if (this._ws) {
        const ws = this._ws;
        this._ws = null;
        ws.close(1000);
      }
      this._subs.forEach((sub) => { if (sub.source) sub.source.close(); });
      this._emit("close", { transport: this.transport });
    }

    // -- connecting ------------------------------------------------------------------------

    _open() {
      if (this.state === "closed") return;
      if (this.transport === "sse") return this._opened();
      const ws = new WebSocket(socketUrl(this.options.url));
      let opened = false;
      this._ws = ws;
      ws.onopen = () => {
        opened = true;
        this._wsWorked = true;
        this._opened();
      };
      ws.onmessage = (event) => this._received(event.data);
      ws.onclose = () => {
        if (this._ws !== ws) return; // replaced, or closed on purpose
        this._ws = null;
        if (!opened) this._wsFailures += 1;
        this._lost();
      };
    }

    _opened() {
      const reconnected = this._wasOpen;
      this._wasOpen = true;
      this.state = "open";
      this._subs.forEach((sub, group) => this._start(group, sub));
      this._watch();
      this._emit("open", { transport: this.transport });
      if (reconnected) this._emit("reconnect", { transport: this.transport });
    }

    _lost() {
      this._stopTimers();
      if (this.state === "closed") return;
      const wasOpen = this.state === "open";
      this.state = "connecting";
      if (wasOpen) this._emit("close", { transport: this.transport });
      if (fallsBack(this.options, this._wsWorked, this._wsFailures)) {
        this.transport = "sse";
        this._emit("fallback", { transport: "sse", failures: this._wsFailures });
        return this._open();
      }
      const delay = backoff(this._attempt, this.options);
      this._attempt += 1;
      this._timers.reconnect = setTimeout(() => this._open(), delay);
    }

    /** Subscribe group on the current transport, from where the client left off. */
    _start(group, sub) {
      sub.resuming = sub.epoch !== null;
      sub.members = new Map();
      if (this.transport === "sse") return this._openSource(group, sub);
      this._send(subscribeFrame(group, sub));
    }

    _openSource(group, sub) {
      const source = new EventSource(streamUrl(this.options.sseUrl, group, sub), { withCredentials: true });
      sub.source = source;
      sub.heard = Date.now();
      source.onmessage = (event) => {
        sub.heard = Date.now();
        this._received(event.data);
      };
      source.onerror = () => {
        // EventSource reconnects by itself (sending Last-Event-ID) unless the answer was not a
        // stream: a refusal, or a proxy's error page while the server restarts. Retry those later.
        sub.resuming = sub.epoch !== null;
        sub.members = new Map();
        if (source.readyState !== EventSource.CLOSED || sub.source !== source) return;
        sub.source = null;
        this._emit("error", { type: "error", code: "refused", message: "the event stream was refused", group });
        const delay = backoff(sub.refusals, this.options);
        sub.refusals += 1;
        setTimeout(() => {
          if (this.state === "open" && this._subs.get(group) === sub && !sub.source) this._openSource(group, sub);
        }, delay);
      };
    }

    // -- liveness --------------------------------------------------------------------------

    /** Ping over WebSocket; over SSE reopen a stream that has been silent too long (the server pings). */
    _watch() {
      const limit = this.options.pingInterval + this.options.pongTimeout;
      this._timers.ping = setInterval(() => {
        if (this.transport === "websocket") {
          this._send({ type: "ping" });
          if (!this._timers.pong) this._timers.pong = setTimeout(() => this._dead(), this.options.pongTimeout);
          return;
        }
        this._subs.forEach((sub, group) => {
          if (sub.source && Date.now() - sub.heard > limit) {
            sub.source.close();
            this._start(group, sub);
          }
        });
      }, this.options.pingInterval);
    }

    _dead() {
      const ws = this._ws;
      this._ws = null;
      if (ws) ws.close(4000, "no pong");
      this._lost();
    }

    _stopTimers() {
      clearTimeout(this._timers.reconnect);
      clearInterval(this._timers.ping);
      clearTimeout(this._timers.pong);
      this._timers = {};
    }

    // -- frames ----------------------------------------------------------------------------

    _send(frame) {
      if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
      this._ws.send(JSON.stringify(frame));
      return true;
    }

    _received(text) {
      clearTimeout(this._timers.pong); // anything heard proves the connection is alive
      this._timers.pong = null;
      this._attempt = 0; // back off afresh only once the server has spoken, not just accepted
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        return this._emit("error", { type: "error", code: "bad_json", message: "the server sent invalid JSON" });
      }
      const sub = frame.group !== undefined ? this._subs.get(frame.group) : null;
      switch (frame.type) {
        case "message":
          if (!sub || alreadyDelivered(sub, frame)) return;
          advance(sub, frame);
          return this._emit("message", frame);
        case "subscribed":
          if (!sub) return;
          sub.refusals = 0;
          sub.epoch = frame.epoch;
          sub.offset = frame.offset;
          this._emit("subscribed", frame);
          if (sub.resuming) {
            sub.resuming = false;
            this._emit("recovered", frame);
          }
          return;
        case "presence":
          if (!sub) return;
          sub.members = membersByChannel(frame.members);
          return this._emit("presence", frame);
        case "join":
          if (!sub) return;
          sub.members.set(frame.member.channel, frame.member);
          return this._emit("join", frame);
        case "leave":
          if (!sub) return;
          sub.members.delete(frame.member.channel);
          return this._emit("leave", frame);
        case "error":
          return this._emit("error", frame);
      }
    }

    _emit(event, detail) {
      (this._handlers[event] || []).slice().forEach((fn) => {
        try {
          fn(detail);
        } catch (error) {
          setTimeout(() => { throw error; }); // report it without breaking the client
        }
      });
    }
  }

  Hubbub.DEFAULTS = DEFAULTS;
  const internals = { DEFAULTS, socketUrl, backoff, fallsBack, newSubscription, subscribeFrame, streamUrl,
                      alreadyDelivered, advance, membersByChannel };
  return { Hubbub, internals };
});
