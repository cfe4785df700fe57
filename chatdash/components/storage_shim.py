"""Storage fixes for the chat iframe, run first in <head> of every page.

1. Browsers that block third-party storage throw on any `localStorage` access
   in the chat iframe, and Reflex's theme code reads it without a guard, which
   blanks the page: an in-memory store is swapped in when the real one is refused.
2. Reflex keeps its client token in sessionStorage, which a same-origin iframe
   shares with its parent page (the demo store embeds the widget from its own
   origin). Two apps with one token would steal each other's socket, so inside
   an iframe sessionStorage is given a key prefix of its own.
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
  function prefixed(real, prefix) {
    function keys() {
      var out = [];
      for (var i = 0; i < real.length; i++) { var k = real.key(i); if (k && k.indexOf(prefix) === 0) out.push(k); }
      return out;
    }
    return { getItem: function (k) { return real.getItem(prefix + k); },
      setItem: function (k, v) { real.setItem(prefix + k, v); },
      removeItem: function (k) { real.removeItem(prefix + k); },
      clear: function () { keys().forEach(function (k) { real.removeItem(k); }); },
      key: function (i) { var k = keys()[i]; return k ? k.slice(prefix.length) : null; },
      get length() { return keys().length; } };
  }
  ["localStorage", "sessionStorage"].forEach(function (name) {
    try { var s = window[name]; s.setItem("__chatdash_probe", "1"); s.removeItem("__chatdash_probe"); }
    catch (e) { Object.defineProperty(window, name, { value: memory(), configurable: true }); }
  });
  if (window.top !== window.self) {
    Object.defineProperty(window, "sessionStorage",
      { value: prefixed(window.sessionStorage, "chatdash-frame:"), configurable: true });
  }
})();
"""


def storage_shim() -> rx.Component:
    return rx.script(STORAGE_SHIM)
