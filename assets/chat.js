/* chatdash chat helpers, shared by the widget and the admin pages.
 *
 * Outbox: what the shopper types is kept in localStorage until the server
 * has stored it, so it is shown at once (local echo), survives a reload or a
 * dropped connection, and is re-sent on reconnect. Each message carries a
 * client id, so a re-send is stored once.
 */
(function () {
  if (window.chatdashOutbox) return;
  const MAX_PENDING = 50;
  // A third-party iframe may be refused localStorage (blocked third-party
  // storage): fall back to sessionStorage, then to memory.
  const store = (() => {
    for (const name of ["localStorage", "sessionStorage"]) {
      try {
        const s = window[name];
        s.setItem("chatdash-probe", "1");
        s.removeItem("chatdash-probe");
        return s;
      } catch (e) { /* try the next one */ }
    }
    const mem = {};
    return { getItem: (k) => (k in mem ? mem[k] : null), setItem: (k, v) => { mem[k] = String(v); },
      removeItem: (k) => { delete mem[k]; } };
  })();
  let visitor = "anon";
  const key = () => "chatdash-outbox:" + visitor;
  const load = () => {
    try { return JSON.parse(store.getItem(key()) || "[]"); } catch (e) { return []; }
  };
  const save = (items) => store.setItem(key(), JSON.stringify(items.slice(-MAX_PENDING)));
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random())
    .replace(/[^A-Za-z0-9]/g, "").slice(0, 32);

  function render() {
    const box = document.getElementById("outbox");
    if (!box) return;
    const stored = new Set(
      Array.from(document.querySelectorAll("[data-client-id]")).map((el) => el.dataset.clientId));
    box.replaceChildren();
    for (const item of load()) {
      if (stored.has(item.id)) continue;
      const row = document.createElement("div");
      row.className = "outbox-item" + (item.error ? " outbox-failed" : "");
      row.dataset.pendingId = item.id;
      const bubble = document.createElement("div");
      bubble.className = "outbox-bubble";
      bubble.textContent = item.text;  // text, never HTML
      const status = document.createElement("div");
      status.className = "outbox-status";
      status.textContent = item.error ? "Not sent: " + item.error : "Sending…";
      bubble.appendChild(status);
      row.appendChild(bubble);
      box.appendChild(row);
    }
    scrollDown();
  }

  function scrollDown() {
    const list = document.getElementById("message-scroller");
    if (list) list.scrollTop = list.scrollHeight;
  }

  window.chatdashOutbox = {
    storedVisitor() { return store.getItem("chatdash-visitor") || ""; },
    init(visitorId, token) {
      visitor = visitorId || "anon";
      if (token) store.setItem("chatdash-visitor", token);
      render();
      return load().filter((i) => !i.error).map((i) => ({ id: i.id, text: i.text }));
    },
    submit() {
      const input = document.getElementById("widget-input");
      if (!input) return null;
      const text = input.value.trim();
      const max = Number(input.getAttribute("maxlength") || 4000);
      if (!text) return null;
      if (text.length > max) {
        window.chatdashOutbox.showError(`Messages can be at most ${max.toLocaleString()} characters.`);
        return null;
      }
      const item = { id: newId(), text, at: Date.now() };
      const items = load(); items.push(item); save(items);
      input.value = "";
      render();
      return { id: item.id, text: item.text };
    },
    ack(id) { save(load().filter((i) => i.id !== id)); render(); },
    ackMany(ids, failed) {
      const drop = new Set(ids.concat(failed || []));
      save(load().filter((i) => !drop.has(i.id))); render();
    },
    fail(id, reason) {
      // Refused for good (too long, rate limit): keep the text visible, marked.
      save(load().map((i) => (i.id === id ? { ...i, error: reason } : i))); render();
      setTimeout(() => { save(load().filter((i) => i.id !== id)); render(); }, 8000);
    },
    showError(text) {
      const el = document.getElementById("widget-local-error");
      if (el) { el.textContent = text; el.style.display = text ? "block" : "none"; }
    },
    render,
    scrollDown,
  };

  // Enter sends, Shift+Enter makes a new line (widget and admin reply box).
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing || !t || !t.dataset) return;
    const button = t.dataset.sendButton && document.getElementById(t.dataset.sendButton);
    if (button) { ev.preventDefault(); button.click(); }
  });

  // Keep the newest message in view whenever the list changes.
  // (Changes inside the outbox itself are ignored, or render would feed itself.)
  new MutationObserver((mutations) => {
    const box = document.getElementById("outbox");
    if (mutations.some((m) => !box || !box.contains(m.target))) render();
  }).observe(document.documentElement, { childList: true, subtree: true });

  // Admin pages: tab title and an optional chime when unseen conversations grow.
  let lastCount = null;
  const baseTitle = () => document.title.replace(/^\(\d+\) /, "");
  setInterval(() => {
    const el = document.getElementById("unseen-count-value");
    if (!el) return;
    const n = Number(el.dataset.count || 0);
    const title = n > 0 ? `(${n}) ${baseTitle()}` : baseTitle();
    if (document.title !== title) document.title = title;
    if (lastCount !== null && n > lastCount && store.getItem("chatdash-sound") !== "off") {
      try {
        const ctx = new (window.AudioContext || window.webkitAudioContext)();
        const osc = ctx.createOscillator(); const gain = ctx.createGain();
        osc.frequency.value = 880; gain.gain.value = 0.05;
        osc.connect(gain); gain.connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.15);
      } catch (e) { /* no audio: the title still changes */ }
    }
    lastCount = n;
  }, 500);
})();
