/* chatdash: a page notices at once that its event socket was closed before
 * the server answered.
 *
 * socket.io-client waits for its 20 s connect timeout when a WebSocket is
 * accepted and then closed before the Engine.IO handshake (a proxy whose
 * backend is gone, a server restarting); only an error event ends the attempt
 * early. Such a close is turned into the error the browser reports for a
 * refused connection, so Reflex retries within its own backoff and the page
 * shows its connection notice (components/chat.py) at once. It patches the
 * WebSocket prototype, so it holds for sockets made after it loads, whenever
 * the app's bundle took hold of the constructor.
 */
(function () {
  "use strict";
  var proto = window.WebSocket && window.WebSocket.prototype;
  if (!proto || proto.__chatdashWatched) return;
  var onclose = null;  // on the prototype or one it extends (a test's WebSocket mock)
  for (var p = proto; p && !onclose; p = Object.getPrototypeOf(p)) onclose = Object.getOwnPropertyDescriptor(p, "onclose");
  if (!onclose || !onclose.set || !onclose.get) return;
  Object.defineProperty(proto, "onclose", {
    configurable: true,
    enumerable: onclose.enumerable,
    get: function () { return onclose.get.call(this); },
    set: function (handler) {
      var ws = this;
      if (typeof handler !== "function" || String(ws.url).indexOf("/_event") === -1) {
        onclose.set.call(ws, handler);
        return;
      }
      var heard = false;  // a message, or the browser's own error event
      ws.addEventListener("message", function () { heard = true; });
      ws.addEventListener("error", function () { heard = true; });
      onclose.set.call(ws, function (event) {
        if (!heard && typeof ws.onerror === "function") ws.onerror(new Event("error"));
        return handler.call(this, event);
      });
    },
  });
  proto.__chatdashWatched = true;
})();
