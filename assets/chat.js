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
  // The outbox is kept per visitor. Until the server confirms who the shopper
  // is (init), the visitor id is read from the signed token the page already
  // has (the embed's `v=` or the one stored here), so a page reloaded while the
  // socket is down still shows what is waiting and accepts new messages.
  const tokenVisitor = (token) => (typeof token === "string" && token.includes(".") ? token.split(".")[0] : "");
  let visitor = tokenVisitor(new URLSearchParams(location.search).get("v") || "")
    || tokenVisitor(store.getItem("chatdash-visitor") || "") || "anon";
  const key = () => "chatdash-outbox:" + visitor;
  const load = (k) => {
    try { return JSON.parse(store.getItem(k || key()) || "[]"); } catch (e) { return []; }
  };
  const save = (items) => store.setItem(key(), JSON.stringify(items.slice(-MAX_PENDING)));
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random())
    .replace(/[^A-Za-z0-9]/g, "").slice(0, 32);
  // The page shows the connection notice (components/chat.py) while its socket is down.
  const socketDown = () => !!document.querySelector('[data-connection="lost"]');
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

  const pending = () => load().filter((i) => !i.error).map((i) => ({ id: i.id, text: i.text }));

  window.chatdashOutbox = {
    storedVisitor() { return store.getItem("chatdash-visitor") || ""; },
    init(visitorId, token) {
      const confirmed = visitorId || "anon";
      if (confirmed !== visitor) {
        // Typed under a token the server replaced: the messages move with the shopper.
        const early = load();
        store.removeItem(key());
        visitor = confirmed;
        if (early.length) save(load().concat(early));
      }
      if (token) store.setItem("chatdash-visitor", token);
      render();
      return pending();
    },
    // What is still waiting for the server: sent (again) on every Send and
    // every (re)connect; the client ids make a re-send a no-op.
    pending,
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
      window.chatdashOutbox.showError("");
      const item = { id: newId(), text, at: Date.now() };
      const items = load(); items.push(item); save(items);
      input.value = "";
      updateCounter(input);
      render();
      return { id: item.id, text: item.text };
    },
    ack(id) { save(load().filter((i) => i.id !== id)); render(); },
    ackMany(ids, failed) {
      const drop = new Set(ids.concat(failed || []));
      save(load().filter((i) => !drop.has(i.id))); render();
    },
    // Stored ones leave the outbox; refused ones are marked with the reason.
    settle(ids, refused) {
      const done = new Set(ids);
      save(load().filter((i) => !done.has(i.id))); render();
      for (const [id, reason] of Object.entries(refused || {})) window.chatdashOutbox.fail(id, reason);
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

  // Send is handled here, before React sees the click: the message goes into
  // the outbox (and on screen) at once, even while the socket is down, when
  // Reflex holds every event, scripts included, until it reconnects. The
  // button's own Reflex handler then sends whatever is pending.
  document.addEventListener("click", (ev) => {
    const button = ev.target && ev.target.closest && ev.target.closest("#widget-send");
    if (button) window.chatdashOutbox.submit();
  }, true);

  // Admin reply box: the reply carries an id made here, kept until the server
  // has stored it (it clears the field), so a double submit or a re-send after
  // a dropped connection stores one message.
  document.addEventListener("submit", (ev) => {
    const field = ev.target && ev.target.querySelector && ev.target.querySelector("#reply-client-id");
    if (field && !field.value) field.value = newId();
  }, true);

  // Reflex retries a lost socket with a backoff that grows to 2 s; while the
  // notice is up, ask it to retry every second (its visibility check
  // reconnects a socket that is down), so messages go within ~1 s of the
  // server being reachable again. Jitter spreads a crowd of widgets.
  setInterval(() => {
    if (socketDown() && document.visibilityState === "visible") {
      setTimeout(() => document.dispatchEvent(new Event("visibilitychange")), Math.random() * 300);
    }
  }, 900);

  // Length counter under a text box with `data-counter`: shown near the limit,
  // and it says so when the limit is reached or a paste was cut short (the
  // browser's maxlength cuts without a word).
  const counted = new WeakMap();
  function updateCounter(input, cut) {
    const el = input && input.dataset && input.dataset.counter && document.getElementById(input.dataset.counter);
    if (!el) return;
    const max = Number(input.getAttribute("maxlength") || 4000);
    const n = input.value.length;
    if (cut) counted.set(input, true);
    if (n < max) counted.delete(input);
    let text = "";
    if (counted.get(input)) text = `Cut to ${max.toLocaleString()} characters: the limit for one message.`;
    else if (n >= max) text = `${n.toLocaleString()} / ${max.toLocaleString()} — the limit for one message.`;
    else if (n >= max * 0.9) text = `${n.toLocaleString()} / ${max.toLocaleString()} characters`;
    if (el.textContent !== text) el.textContent = text;
    el.style.display = text ? "block" : "none";
    el.dataset.full = n >= max ? "true" : "false";
  }
  document.addEventListener("input", (ev) => updateCounter(ev.target), true);
  document.addEventListener("paste", (ev) => {
    const t = ev.target;
    if (!t || !t.dataset || !t.dataset.counter) return;
    const pasted = (ev.clipboardData && ev.clipboardData.getData("text")) || "";
    const max = Number(t.getAttribute("maxlength") || 4000);
    const after = t.value.length - (t.selectionEnd - t.selectionStart) + pasted.length;
    setTimeout(() => updateCounter(t, after > max), 0);
  }, true);

  // In the embed's iframe: tell the store page what it shows beside the
  // launcher while the panel is closed (only that the shopper has a
  // conversation, and the text of a reply that arrives), and let the header's
  // close button close the panel. The page checks these come from this frame.
  const embedded = window.parent !== window;
  if (embedded) document.documentElement.dataset.embedded = "true";
  const tellStore = (data) => { if (embedded) window.parent.postMessage(data, "*"); };
  let repliesSeen = null, toldChatting = false;
  function watchReplies() {
    if (!embedded || !document.querySelector("#chat-widget[data-ready='true']")) return;
    const replies = document.querySelectorAll("#message-list .msg-other");
    if (!toldChatting && document.querySelector("#message-list .msg")) {
      toldChatting = true;
      tellStore({ type: "chatdash:chatting" });
    }
    if (repliesSeen !== null && replies.length > repliesSeen) {
      const last = replies[replies.length - 1];
      const body = last.querySelector(".msg-body") || last.querySelector(".product-card");
      tellStore({ type: "chatdash:reply", text: (body ? body.innerText : "New message").slice(0, 140) });
    }
    repliesSeen = replies.length;
  }
  document.addEventListener("click", (ev) => {
    if (ev.target && ev.target.closest && ev.target.closest("#widget-close")) tellStore({ type: "chatdash:close" });
  });
  window.addEventListener("message", (ev) => {
    if (!embedded || ev.source !== window.parent || !ev.data || ev.data.type !== "chatdash:shown") return;
    const shown = document.getElementById("widget-shown");
    if (shown) shown.click();
  });

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
    if (mutations.some((m) => !box || !box.contains(m.target))) { render(); watchReplies(); }
  }).observe(document.documentElement, { childList: true, subtree: true });

  // Admin pages: the tab title, and a chime on each shopper message when the
  // member chose the sound (Settings → My notifications; data-sound).
  let lastChime = null, audio = null;
  const baseTitle = () => document.title.replace(/^\(\d+\) /, "");
  setInterval(() => {
    document.querySelectorAll("[data-counter]").forEach((input) => updateCounter(input));
    const el = document.getElementById("unseen-count-value");
    if (!el) return;
    const n = Number(el.dataset.count || 0);
    const title = n > 0 ? `(${n}) ${baseTitle()}` : baseTitle();
    if (document.title !== title) document.title = title;
    const chime = Number(el.dataset.chime || 0);
    // data-chimed: how often this page chimed, from when it started listening
    // (what tests, and curious people, can read).
    if (lastChime === null) el.dataset.chimed = "0";
    if (lastChime !== null && chime > lastChime && el.dataset.sound === "on") {
      el.dataset.chimed = String(Number(el.dataset.chimed || 0) + 1);
      try {
        // One context for the page: browsers allow only a few.
        const ctx = audio || (audio = new (window.AudioContext || window.webkitAudioContext)());
        const osc = ctx.createOscillator(); const gain = ctx.createGain();
        osc.frequency.value = 880; gain.gain.value = 0.05;
        osc.connect(gain); gain.connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.15);
      } catch (e) { /* no audio: the title still changes */ }
    }
    lastChime = chime;
  }, 500);
})();
