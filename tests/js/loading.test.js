// How hubbub.js loads: as a classic <script> it sets self.Hubbub and nothing else; under CommonJS
// require() returns the class, with the helpers the other tests use under .internals.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const FILE = path.join(__dirname, "..", "..", "hubbub", "static", "hubbub", "hubbub.js");

test("as a classic script it sets self.Hubbub, and only that", () => {
  const page = vm.createContext({});
  page.self = page;
  vm.runInContext(fs.readFileSync(FILE, "utf8"), page, { filename: FILE });
  assert.deepEqual(Object.keys(page).sort(), ["Hubbub", "self"]);
  assert.equal(typeof page.Hubbub, "function");
  assert.equal(page.Hubbub.DEFAULTS.minDelay, 500);
  assert.equal(page.Hubbub.internals, undefined);
  assert.deepEqual(Object.getOwnPropertyNames(page.Hubbub.prototype).sort(), [
    "_dead", "_emit", "_lost", "_open", "_openSource", "_opened", "_received", "_send", "_start", "_stopTimers",
    "_watch", "close", "constructor", "members", "off", "on", "position", "publish", "subscribe", "unsubscribe",
  ]);
});

test("under CommonJS require() returns the class, its helpers under .internals", () => {
  const Hubbub = require(FILE);
  assert.equal(typeof Hubbub, "function");
  assert.equal(typeof Hubbub.internals.backoff, "function");
  assert.equal(typeof Hubbub.internals.alreadyDelivered, "function");
});
