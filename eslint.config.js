// ESLint for hubbub's JavaScript: the browser client and its node tests.
// tests/test_hubbub_js.py runs it on the paths of `npm run lint`, so `make test` fails on any finding.
"use strict";

const js = require("@eslint/js");
const globals = require("globals");

const modern = {
  "no-var": "error",
  "prefer-const": "error",
  "prefer-arrow-callback": "error",
  "object-shorthand": ["error", "properties"],
  eqeqeq: "error",
  "no-unused-vars": ["error", { caughtErrors: "none" }],
};

module.exports = [
  js.configs.recommended,
  {
    // The client is served as it is (no build step): ES2015 syntax, the floor it already
    // needs for Map, URL and fetch, so nothing newer slips in unnoticed.
    files: ["hubbub/static/hubbub/hubbub.js"],
    languageOptions: {
      ecmaVersion: 2015,
      sourceType: "script",
      globals: { ...globals.browser, module: "readonly" },
    },
    rules: modern,
  },
  {
    files: ["hubbub/static/hubbub/hubbub.mjs"],
    languageOptions: { ecmaVersion: 2015, sourceType: "module", globals: globals.browser },
    rules: modern,
  },
  {
    files: ["tests/js/**/*.js", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "commonjs", globals: globals.node },
    rules: modern,
  },
];
