"""Keep Reflex pages alive in a third-party iframe whose storage is blocked.

Browsers that block third-party storage throw on any `localStorage` access in
the chat iframe, and Reflex's theme code reads it without a guard, which blanks
the page. This runs first in <head> and swaps in an in-memory store when the
real one is refused.
"""

import reflex as rx

STORAGE_SHIM = """
(function () {
  function memory() {
    var m = {};
    return { getItem: function (k) { return Object.prototype.hasOwnProperty.call(m, k) ? m[k] : null; },
      setItem: function (k, v) { m[k] = String(v); }, removeItem: function (k) { delete m[k]; },
      clear: function () { m = {}; }, key: function (i) { return Object.keys(m)[i] || null; },
      get length() { return Object.keys(m).length; } };
  }
  ["localStorage", "sessionStorage"].forEach(function (name) {
    try { var s = window[name]; s.setItem("__chatdash_probe", "1"); s.removeItem("__chatdash_probe"); }
    catch (e) { Object.defineProperty(window, name, { value: memory(), configurable: true }); }
  });
})();
"""


def storage_shim() -> rx.Component:
    return rx.script(STORAGE_SHIM)
