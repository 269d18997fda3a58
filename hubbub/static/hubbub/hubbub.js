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
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.Hubbub = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  var DEFAULTS = {
    url: "/ws/pubsub/", // the PubSubConsumer route (relative URLs use this page's host)
    sseUrl: "/pubsub/events/", // the PubSubEventStream route; null: never fall back to SSE
    minDelay: 500, // first reconnect delay, ms; doubles per failed attempt...
    maxDelay: 15000, // ...up to this; each delay is randomised to 50-100% of it
    pingInterval: 20000, // ms between pings (WebSocket) or the longest silence allowed (SSE)...
    pongTimeout: 10000, // ...plus this long for an answer before the connection counts as dead
    fallbackAfter: 3, // WebSocket handshakes failing in a row, none ever opened, before switching to SSE
  };

  function socketUrl(url) {
    var parsed = new URL(url, location.href);
    if (parsed.protocol === "http:") parsed.protocol = "ws:";
    if (parsed.protocol === "https:") parsed.protocol = "wss:";
    return parsed.href;
  }

  function Hubbub(options) {
    this.options = Object.assign({}, DEFAULTS, options || {});
    this.transport = "websocket"; // or "sse" after falling back
    this.state = "connecting"; // "open", "closed"
    this._handlers = {};
    this._subs = new Map(); // group → its state: see subscribe()
    this._attempt = 0;
    this._wsFailures = 0;
    this._wsWorked = false;
    this._wasOpen = false;
    this._ws = null;
    this._timers = {};
    this._open();
  }

  Hubbub.prototype = {
    constructor: Hubbub,

    /** Call fn(detail) on each event of this name; returns a function that stops it. */
    on: function (event, fn) {
      (this._handlers[event] = this._handlers[event] || []).push(fn);
      var self = this;
      return function () { self.off(event, fn); };
    },

    off: function (event, fn) {
      var list = this._handlers[event] || [];
      var at = list.indexOf(fn);
      if (at >= 0) list.splice(at, 1);
    },

    /** Receive group's messages; {presence: info} also joins its presence with that info. */
    subscribe: function (group, options) {
      if (this._subs.has(group)) return;
      var sub = { epoch: null, offset: 0, wantsPresence: false, info: null, members: new Map(),
                  resuming: false, source: null, heard: 0, refusals: 0 };
      if (options && "presence" in options) {
        sub.wantsPresence = true;
        sub.info = options.presence === undefined ? null : options.presence;
      }
      this._subs.set(group, sub);
      if (this.state === "open") this._start(group, sub);
    },

    unsubscribe: function (group) {
      var sub = this._subs.get(group);
      if (!sub) return;
      this._subs.delete(group);
      if (sub.source) sub.source.close();
      else this._send({ type: "unsubscribe", group: group });
    },

    /** Send data to group. Returns false (and sends nothing) while disconnected. */
    publish: function (group, data) {
      if (this.state !== "open") return false;
      if (this.transport === "websocket") return this._send({ type: "publish", group: group, data: data });
      var self = this;
      fetch(this.options.sseUrl, {
        method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
        body: JSON.stringify({ group: group, data: data }),
      }).then(function (response) {
        if (!response.ok) return response.json().then(function (error) { self._emit("error", error); });
      }).catch(function (error) {
        self._emit("error", { type: "error", code: "network", message: String(error), group: group });
      });
      return true;
    },

    /** The members present in group, as last heard (needs the subscription). */
    members: function (group) {
      var sub = this._subs.get(group);
      return sub ? Array.from(sub.members.values()) : [];
    },

    /** Where this client is in group's history: {epoch, offset}. */
    position: function (group) {
      var sub = this._subs.get(group);
      return sub ? { epoch: sub.epoch, offset: sub.offset } : null;
    },

    /** Disconnect for good (no reconnecting). */
    close: function () {
      this.state = "closed";
      this._stopTimers();
      if (this._ws) {
        var ws = this._ws;
        this._ws = null;
        ws.close(1000);
      }
      this._subs.forEach(function (sub) { if (sub.source) sub.source.close(); });
      this._emit("close", { transport: this.transport });
    },

    // -- connecting ------------------------------------------------------------------------

    _open: function () {
      if (this.state === "closed") return;
      if (this.transport === "sse") return this._opened();
      var self = this;
      var ws = new WebSocket(socketUrl(this.options.url));
      var opened = false;
      this._ws = ws;
      ws.onopen = function () {
        opened = true;
        self._wsWorked = true;
        self._opened();
      };
      ws.onmessage = function (event) { self._received(event.data); };
      ws.onclose = function () {
        if (self._ws !== ws) return; // replaced, or closed on purpose
        self._ws = null;
        if (!opened) self._wsFailures += 1;
        self._lost();
      };
    },

    _opened: function () {
      var reconnected = this._wasOpen;
      this._wasOpen = true;
      this.state = "open";
      var self = this;
      this._subs.forEach(function (sub, group) { self._start(group, sub); });
      this._watch();
      this._emit("open", { transport: this.transport });
      if (reconnected) this._emit("reconnect", { transport: this.transport });
    },

    _lost: function () {
      this._stopTimers();
      if (this.state === "closed") return;
      var wasOpen = this.state === "open";
      this.state = "connecting";
      if (wasOpen) this._emit("close", { transport: this.transport });
      if (this.options.sseUrl && !this._wsWorked && this._wsFailures >= this.options.fallbackAfter) {
        this.transport = "sse";
        this._emit("fallback", { transport: "sse", failures: this._wsFailures });
        return this._open();
      }
      var delay = Math.min(this.options.maxDelay, this.options.minDelay * Math.pow(2, this._attempt));
      this._attempt += 1;
      var self = this;
      this._timers.reconnect = setTimeout(function () { self._open(); }, delay * (0.5 + Math.random() / 2));
    },

    /** Subscribe group on the current transport, from where the client left off. */
    _start: function (group, sub) {
      sub.resuming = sub.epoch !== null;
      sub.members = new Map();
      if (this.transport === "sse") return this._openSource(group, sub);
      var frame = { type: "subscribe", group: group };
      if (sub.epoch !== null) frame.since = { epoch: sub.epoch, offset: sub.offset };
      if (sub.wantsPresence) frame.presence = sub.info;
      this._send(frame);
    },

    _openSource: function (group, sub) {
      var url = new URL(this.options.sseUrl, location.href);
      url.searchParams.set("group", group);
      if (sub.epoch !== null) url.searchParams.set("last_event_id", sub.epoch + ":" + sub.offset);
      if (sub.wantsPresence) url.searchParams.set("presence", JSON.stringify(sub.info));
      var self = this;
      var source = new EventSource(url.href, { withCredentials: true });
      sub.source = source;
      sub.heard = Date.now();
      source.onmessage = function (event) {
        sub.heard = Date.now();
        self._received(event.data);
      };
      source.onerror = function () {
        // EventSource reconnects by itself (sending Last-Event-ID) unless the answer was not a
        // stream: a refusal, or a proxy's error page while the server restarts. Retry those later.
        sub.resuming = sub.epoch !== null;
        sub.members = new Map();
        if (source.readyState !== EventSource.CLOSED || sub.source !== source) return;
        sub.source = null;
        self._emit("error", { type: "error", code: "refused", message: "the event stream was refused", group: group });
        var delay = Math.min(self.options.maxDelay, self.options.minDelay * Math.pow(2, sub.refusals));
        sub.refusals += 1;
        setTimeout(function () {
          if (self.state === "open" && self._subs.get(group) === sub && !sub.source) self._openSource(group, sub);
        }, delay * (0.5 + Math.random() / 2));
      };
    },

    // -- liveness --------------------------------------------------------------------------

    /** Ping over WebSocket; over SSE reopen a stream that has been silent too long (the server pings). */
    _watch: function () {
      var self = this;
      var limit = this.options.pingInterval + this.options.pongTimeout;
      this._timers.ping = setInterval(function () {
        if (self.transport === "websocket") {
          self._send({ type: "ping" });
          if (!self._timers.pong) self._timers.pong = setTimeout(function () { self._dead(); }, self.options.pongTimeout);
          return;
        }
        self._subs.forEach(function (sub, group) {
          if (sub.source && Date.now() - sub.heard > limit) {
            sub.source.close();
            self._start(group, sub);
          }
        });
      }, this.options.pingInterval);
    },

    _dead: function () {
      var ws = this._ws;
      this._ws = null;
      if (ws) ws.close(4000, "no pong");
      this._lost();
    },

    _stopTimers: function () {
      clearTimeout(this._timers.reconnect);
      clearInterval(this._timers.ping);
      clearTimeout(this._timers.pong);
      this._timers = {};
    },

    // -- frames ----------------------------------------------------------------------------

    _send: function (frame) {
      if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
      this._ws.send(JSON.stringify(frame));
      return true;
    },

    _received: function (text) {
      clearTimeout(this._timers.pong); // anything heard proves the connection is alive
      this._timers.pong = null;
      this._attempt = 0; // back off afresh only once the server has spoken, not just accepted
      var frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        return this._emit("error", { type: "error", code: "bad_json", message: "the server sent invalid JSON" });
      }
      var sub = frame.group !== undefined ? this._subs.get(frame.group) : null;
      switch (frame.type) {
        case "message":
          if (!sub) return;
          if (frame.offset !== null) {
            if (frame.epoch === sub.epoch && frame.offset <= sub.offset) return; // already delivered
            sub.epoch = frame.epoch;
            sub.offset = frame.offset;
          }
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
          sub.members = new Map(frame.members.map(function (m) { return [m.channel, m]; }));
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
    },

    _emit: function (event, detail) {
      (this._handlers[event] || []).slice().forEach(function (fn) {
        try {
          fn(detail);
        } catch (error) {
          setTimeout(function () { throw error; }); // report it without breaking the client
        }
      });
    },
  };

  Hubbub.DEFAULTS = DEFAULTS;
  return Hubbub;
});
