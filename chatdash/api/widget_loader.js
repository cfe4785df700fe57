/* chatdash embed: one script tag adds the chat launcher to any page.
 *   <script src="__API__/widget.js" async></script>
 * Optional attributes identify a logged-in store customer (HMAC of id, name and
 * email computed by the store's backend with its chatdash store secret; README):
 *   data-customer-id, data-customer-hmac, data-customer-name, data-customer-email
 * JavaScript API (docs/tracking.md): chatdash.open(), chatdash.close(),
 *   chatdash.track(kind, data), chatdash.identify(customerId, hmac, name, email),
 *   chatdash.logout(), chatdash.visitor(). A page view is reported on every load unless
 *   data-page-views="manual".
 */
(function () {
  "use strict";
  if (window.chatdash && window.chatdash.__loaded) return;
  var API = "__API__", APP = "__APP__", HEARTBEAT_MS = __HEARTBEAT_MS__;
  var script = document.currentScript || document.querySelector('script[src*="/widget.js"]');
  var attr = function (n) { return (script && script.getAttribute(n)) || ""; };
  var VISITOR_KEY = "chatdash_visitor", OPEN_KEY = "chatdash_open", CHATTING_KEY = "chatdash_chatting";
  var visitor = null, frame = null, panel = null, button = null, customer = null, preview = null, badge = null;
  var unread = 0, collapsedFrame = false;

  var store = (function () {
    try { localStorage.setItem("chatdash_probe", "1"); localStorage.removeItem("chatdash_probe"); return localStorage; }
    catch (e) { var m = {}; return { getItem: function (k) { return k in m ? m[k] : null; },
      setItem: function (k, v) { m[k] = String(v); }, removeItem: function (k) { delete m[k]; } }; }
  })();
  var session = (function () {
    try { sessionStorage.setItem("chatdash_probe", "1"); return sessionStorage; } catch (e) { return store; }
  })();

  // text/plain and no credentials: a "simple" cross-origin request, so the
  // browser sends no preflight and no cookie; the server reads it as JSON.
  function post(path, body) {
    return fetch(API + path, {
      method: "POST", headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(body), keepalive: true, credentials: "omit",
    });
  }

  function ensureVisitor() {
    var known = store.getItem(VISITOR_KEY) || "";
    return post("/api/visitor", { visitor: known }).then(function (r) { return r.json(); })
      .then(function (data) {
        visitor = data.visitor;
        store.setItem(VISITOR_KEY, visitor);
        return visitor;
      });
  }

  // Names this page load: a heartbeat still in flight when the page closes must
  // not count after the page's own "left" beacon.
  var PAGE_ID = newId();

  var beats = 0;
  function heartbeat() {
    if (!visitor || document.visibilityState === "hidden") return;
    post("/api/presence", { visitor: visitor, state: "alive", page: PAGE_ID, url: location.href.slice(0, 2000),
      title: document.title.slice(0, 300) }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && data.chat && data.chat.open) agentWrote(data.chat);
        // How many answers this page has acted on (tests wait on it).
        if (button) button.setAttribute("data-beats", String(++beats));
      }).catch(function () {});
  }

  // An agent started a chat with this shopper: the server hands the popup to
  // one heartbeat only, so it opens once per message (not again on reload).
  // On a phone the chat would cover the store: the message shows beside the
  // launcher instead, a tap away.
  function agentWrote(chat) {
    chime();
    if (isOpen()) return;
    if (window.matchMedia && window.matchMedia("(max-width:480px)").matches) {
      var text = String(chat.text || "").slice(0, 140);
      // A chat loaded collapsed may have shown this very message already.
      if (preview.style.display === "block" && preview.textContent === text) return;
      unread += 1;
      badge.textContent = String(unread);
      badge.style.display = "block";
      preview.textContent = text;  // text, never HTML
      preview.style.display = "block";
      return;
    }
    show();
  }
  function chime() {
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var gain = ctx.createGain();
      gain.gain.value = 0.04;
      gain.connect(ctx.destination);
      [660, 880].forEach(function (hz, i) {
        var osc = ctx.createOscillator();
        osc.frequency.value = hz;
        osc.connect(gain);
        osc.start(ctx.currentTime + i * 0.12);
        osc.stop(ctx.currentTime + i * 0.12 + 0.1);
      });
      setTimeout(function () { ctx.close(); }, 600);
    } catch (e) { /* no sound (autoplay policy): the open chat is the news */ }
  }

  function leave() {
    if (!visitor) return;
    var blob = new Blob([JSON.stringify({ visitor: visitor, state: "left", page: PAGE_ID })],
      { type: "text/plain" });
    navigator.sendBeacon(API + "/api/presence", blob);
  }

  function widgetUrl() {
    var q = "v=" + encodeURIComponent(visitor);
    var pairs = { c: "data-customer-id", h: "data-customer-hmac", n: "data-customer-name",
      e: "data-customer-email" };
    for (var k in pairs) {
      var value = customer ? customer[k] : attr(pairs[k]);
      if (value) q += "&" + k + "=" + encodeURIComponent(value);
    }
    return APP + "/widget?" + q;
  }

  function build() {
    var style = document.createElement("style");
    // The open panel is the shopper's choice; it never opens by itself on
    // another page (it comes back collapsed: new replies show beside the
    // launcher). On phones it takes the whole screen, closed from its header.
    style.textContent =
      "#chatdash-launcher{position:fixed;right:20px;bottom:20px;width:58px;height:58px;border-radius:50%;" +
      "border:none;background:#3e63dd;color:#fff;box-shadow:0 6px 20px rgba(0,0,0,.25);cursor:pointer;" +
      "z-index:2147483000;display:flex;align-items:center;justify-content:center}" +
      "#chatdash-launcher:hover{background:#3358d4}" +
      "#chatdash-panel{position:fixed;right:20px;bottom:90px;width:360px;height:520px;max-height:calc(100vh - 110px);" +
      "max-width:calc(100vw - 40px);border-radius:14px;overflow:hidden;box-shadow:0 12px 40px rgba(0,0,0,.3);" +
      "z-index:2147483000;background:#fff;display:none}" +
      "#chatdash-panel iframe{width:100%;height:100%;border:0}" +
      "#chatdash-badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 5px;" +
      "border-radius:10px;background:#e5484d;color:#fff;font:600 12px/20px system-ui,sans-serif;display:none}" +
      "#chatdash-preview{position:fixed;right:20px;bottom:90px;max-width:280px;padding:10px 14px;border-radius:12px;" +
      "background:#fff;color:#1c2024;box-shadow:0 6px 24px rgba(0,0,0,.22);font:14px/1.4 system-ui,sans-serif;" +
      "z-index:2147483000;cursor:pointer;display:none;white-space:pre-wrap;word-break:break-word}" +
      "@media (max-width:480px){#chatdash-panel{right:0;bottom:0;width:100%;height:100%;max-width:none;" +
      "max-height:none;border-radius:0}#chatdash-launcher.chatdash-open{display:none}}";
    document.head.appendChild(style);
    button = document.createElement("button");
    button.id = "chatdash-launcher";
    button.setAttribute("aria-label", "Chat with us");
    button.innerHTML = '<svg width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" ' +
      'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 ' +
      '2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';
    button.addEventListener("click", function () { isOpen() ? close() : open(); });
    badge = document.createElement("span");
    badge.id = "chatdash-badge";
    button.appendChild(badge);
    preview = document.createElement("div");
    preview.id = "chatdash-preview";
    preview.setAttribute("role", "status");
    preview.addEventListener("click", function () { open(); });
    panel = document.createElement("div");
    panel.id = "chatdash-panel";
    document.body.appendChild(panel);
    document.body.appendChild(preview);
    document.body.appendChild(button);
  }

  // The chat page tells its embedder only these, from its own frame: close me,
  // the shopper has a conversation, a reply arrived (its text, shown here).
  function onFrameMessage(ev) {
    if (!frame || ev.source !== frame.contentWindow || ev.origin !== new URL(APP).origin) return;
    var data = ev.data || {};
    if (data.type === "chatdash:close") close();
    else if (data.type === "chatdash:chatting") store.setItem(CHATTING_KEY, "1");
    else if (data.type === "chatdash:reply" && !isOpen()) {
      // A message that an agent started the chat with opens the panel: ask now
      // rather than at the next heartbeat.
      heartbeat();
      unread += 1;
      badge.textContent = String(unread);
      badge.style.display = "block";
      preview.textContent = String(data.text || "").slice(0, 140);  // text, never HTML
      preview.style.display = "block";
    }
  }

  function isOpen() { return panel && panel.style.display === "block"; }
  function here() { return location.pathname + location.search; }
  function load(collapsed) {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.id = "chatdash-frame";
    frame.title = "Chat";
    frame.src = widgetUrl() + (collapsed ? "&collapsed=1" : "");  // collapsed: nothing marked seen yet
    panel.appendChild(frame);
    collapsedFrame = !!collapsed;
  }
  function open() {
    // Clicked before this page knows its visitor (a slow /api/visitor): the
    // wish is kept and the chat opens as soon as the visitor is known.
    if (!visitor) { session.setItem(OPEN_KEY, here()); return; }
    show();
    // Open again after a reload of this page, not on the next page.
    session.setItem(OPEN_KEY, here());
  }
  // The panel shown: by the shopper (open), or by an agent's first message,
  // which is not the shopper's choice and does not come back on a reload.
  function show() {
    load(false);
    if (collapsedFrame) {
      collapsedFrame = false;
      frame.contentWindow.postMessage({ type: "chatdash:shown" }, new URL(APP).origin);
    }
    panel.style.display = "block";
    button.classList.add("chatdash-open");
    preview.style.display = "none";
    badge.style.display = "none";
    unread = 0;
  }
  function close() {
    if (panel) panel.style.display = "none";
    if (button) button.classList.remove("chatdash-open");
    session.removeItem(OPEN_KEY);
  }

  // Store events (page views, product views, cart, orders): queued in
  // localStorage and sent in batches, so nothing is lost across page loads.
  // Each event has its own id: a batch sent twice is stored once.
  var QUEUE_KEY = "chatdash_events", sending = false, backoff = 1000, timer = null;
  // The server's limits are 50 events / 64 KB a batch and 8 KB an event.
  var BATCH_EVENTS = 20, BATCH_BYTES = 56000, EVENT_BYTES = 8000;
  function queue() { try { return JSON.parse(store.getItem(QUEUE_KEY) || "[]"); } catch (e) { return []; } }
  function setQueue(q) { store.setItem(QUEUE_KEY, JSON.stringify(q.slice(-500))); }
  function bytes(value) { return new Blob([JSON.stringify(value)]).size; }
  function newId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9]/g, "").slice(0, 32);
  }
  function track(kind, data) {
    var event = { id: newId(), kind: String(kind), at: new Date().toISOString(),
      url: location.href.slice(0, 2000), title: document.title.slice(0, 300), data: data || {} };
    if (bytes(event) > EVENT_BYTES) {
      if (window.console) console.warn("chatdash.track: event larger than 8 KB dropped", kind);
      return;
    }
    var q = queue();
    q.push(event);
    setQueue(q);
    flush();
  }
  // A page view on every page load, and on every route change of a
  // single-page store (history.pushState / replaceState / back and forward).
  var lastPage = "";
  function pageView(referrer) {
    var url = location.href.slice(0, 2000);
    if (url === lastPage) return;
    lastPage = url;
    track("page_view", { referrer: (referrer || document.referrer || "").slice(0, 2000) });
  }
  function watchRoutes() {
    // The new page sets its title as it renders: read it a moment later.
    function routed() { var from = lastPage; setTimeout(function () { pageView(from); }, 300); }
    ["pushState", "replaceState"].forEach(function (name) {
      var original = history[name];
      if (typeof original !== "function") return;
      history[name] = function () { var result = original.apply(this, arguments); routed(); return result; };
    });
    window.addEventListener("popstate", routed);
  }
  function nextBatch(max) {
    var batch = [], size = 200;
    queue().some(function (e) {
      size += bytes(e) + 1;
      if (batch.length >= max || size > BATCH_BYTES) return true;
      batch.push(e);
      return false;
    });
    return batch;
  }
  function forget(events) {
    var done = {};
    events.forEach(function (e) { done[e.id] = 1; });
    setQueue(queue().filter(function (e) { return !done[e.id]; }));
  }
  function flush() {
    if (sending || !visitor) return;
    var batch = nextBatch(BATCH_EVENTS);
    if (!batch.length) return;
    sending = true;
    post("/api/track", { visitor: visitor, events: batch }).then(function (r) {
      if (r.status === 401) {  // token no longer valid (e.g. a new server secret): get a new one
        return ensureVisitor().then(function () { sending = false; retry(); });
      }
      if (r.status === 422) {
        // Refused for malformed events: drop those (they would never pass) and re-send the rest.
        return r.json().then(function (body) {
          var bad = (body.detail || []).map(function (d) { return d.event; })
            .filter(function (i) { return typeof i === "number" && batch[i]; });
          forget(bad.length ? bad.map(function (i) { return batch[i]; }) : batch);
          sending = false;
          backoff = 1000;
          flush();
        });
      }
      sending = false;
      if (r.ok || (r.status >= 400 && r.status < 429 && r.status !== 408)) {
        // Stored, or refused for good: either way never sent again.
        forget(batch);
        backoff = 1000;
        if (queue().length) flush();
      } else {
        retry(parseInt(r.headers.get("Retry-After") || "0", 10) * 1000);
      }
    }).catch(function () { sending = false; retry(); });
  }
  function retry(wait) {
    if (timer) return;
    timer = setTimeout(function () { timer = null; flush(); }, Math.max(wait || 0, backoff));
    backoff = Math.min(backoff * 2, 60000);
  }
  // The page is going away: hand what is still queued to the browser, which
  // sends it even after the page is gone. A beacon's answer cannot be read, so
  // the events stay queued; if they got through, the next page's re-send is a
  // duplicate and is stored once.
  function flushBeacon() {
    if (!visitor || !navigator.sendBeacon) return;
    var batch = nextBatch(50);
    if (!batch.length) return;
    var body = new Blob([JSON.stringify({ visitor: visitor, events: batch })], { type: "text/plain" });
    try { navigator.sendBeacon(API + "/api/track", body); } catch (e) { /* over the beacon quota */ }
  }

  // A logged-in store customer (equivalent to the data-customer-* attributes):
  // this browser's visit, events and chat join the customer's, on every device.
  function identify(customerId, hmac, name, email) {
    customer = { c: customerId || "", h: hmac || "", n: name || "", e: email || "" };
    sendIdentity();
    if (frame) frame.src = widgetUrl();  // an open chat re-reads who the shopper is
  }
  function sendIdentity() {
    var who = customer || { c: attr("data-customer-id"), h: attr("data-customer-hmac"),
      n: attr("data-customer-name"), e: attr("data-customer-email") };
    if (!visitor || !who.c || !who.h) return Promise.resolve();
    return post("/api/identify", { visitor: visitor, customer_id: who.c, hmac: who.h, name: who.n,
      email: who.e }).catch(function () {});
  }

  // The customer logged out of the store (a shared computer, a family tablet):
  // this browser becomes a new anonymous visitor, so whoever uses it next sees
  // none of the customer's chat, and nothing they do lands on the customer.
  // What the customer did until now is sent first, as theirs.
  function logout() {
    flushBeacon();
    setQueue([]);
    leave();
    PAGE_ID = newId();  // the old page said it left; the new visitor's beats are another page's
    customer = { c: "", h: "", n: "", e: "" };  // the page's data-customer-* no longer count
    store.removeItem(VISITOR_KEY);
    store.removeItem(CHATTING_KEY);
    close();
    if (frame) { frame.remove(); frame = null; }
    unread = 0;
    if (badge) badge.style.display = "none";
    if (preview) preview.style.display = "none";
    visitor = "";
    return ensureVisitor().then(function (v) { heartbeat(); return v; });
  }

  window.chatdash = { __loaded: true, open: open, close: close, track: track, identify: identify,
    logout: logout, visitor: function () { return visitor; } };

  function start() {
    build();
    // A store that reports its own page views sets data-page-views="manual".
    if (attr("data-page-views") !== "manual") { pageView(); watchRoutes(); }
    ensureVisitor().then(sendIdentity).then(function () {
      heartbeat();
      setInterval(heartbeat, HEARTBEAT_MS);
      document.addEventListener("visibilitychange", heartbeat);
      window.addEventListener("pagehide", function () { flushBeacon(); leave(); });
      window.addEventListener("message", onFrameMessage);
      var wasOpen = session.getItem(OPEN_KEY);
      if (wasOpen === here() || wasOpen === "1") open();
      // Collapsed: a shopper with a conversation gets its replies beside the launcher.
      else if (store.getItem(CHATTING_KEY)) load(true);
      flush();
    }).catch(function () { /* chat unavailable: the store page keeps working */ });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
