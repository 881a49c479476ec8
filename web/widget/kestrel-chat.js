/*!
 * Kestrel Assist chat widget: plain ES2020, no dependencies, no build step.
 *
 * Embed with one tag:
 *   <script src="/widget/kestrel-chat.js" data-server="" data-title="Kestrel Bank assistant" defer></script>
 *
 * Talks to the Kestrel Assist server over a WebSocket at <server>/ws/chat (see README.md).
 * Everything that comes from the server is rendered with textContent, never as HTML.
 */
(() => {
  "use strict";

  if (window.KestrelChat && document.getElementById("kestrel-chat")) return; // loaded twice

  // --------------------------------------------------------------------- configuration
  const script =
    document.currentScript ||
    Array.from(document.getElementsByTagName("script")).find((s) => /kestrel-chat(\.min)?\.js(\?|#|$)/.test(s.src || ""));

  const MAX_CHARS = 2000;
  const STORAGE_KEY = "kestrel-chat-conversation";
  const OPEN_KEY = "kestrel-chat-open";
  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
  const CONVERSATION_ID = /^[A-Za-z0-9_-]{1,64}$/;

  const attr = (name) => (script ? script.getAttribute(name) : null);
  const title = (attr("data-title") || "").trim() || "Kestrel Bank assistant";
  const greeting =
    (attr("data-greeting") || "").trim() ||
    "Hi! I can answer questions about Kestrel Bank accounts, cards, fees and transfers. " +
      "Please don't share card numbers, PINs or passwords here.";

  /** Base http(s) URL of the server without a trailing slash: data-server, else the script's origin. */
  function serverBase() {
    const configured = (attr("data-server") || "").trim();
    let base;
    try {
      if (configured) base = new URL(configured, document.baseURI);
      else if (script && script.src) base = new URL(script.src, document.baseURI);
      else base = new URL(window.location.href);
    } catch (_) {
      base = new URL(window.location.href);
    }
    const path = configured ? base.pathname.replace(/\/+$/, "") : "";
    return base.origin + path;
  }

  const HTTP_BASE = serverBase();
  const WS_BASE = HTTP_BASE.replace(/^http(s?):/i, (_, s) => (s ? "wss:" : "ws:"));

  // --------------------------------------------------------------------- small helpers
  const storage = {
    get(key) {
      try {
        return window.sessionStorage.getItem(key);
      } catch (_) {
        return null;
      }
    },
    set(key, value) {
      try {
        if (value === null) window.sessionStorage.removeItem(key);
        else window.sessionStorage.setItem(key, value);
      } catch (_) {
        /* storage unavailable (privacy mode, sandboxed frame): the chat still works */
      }
    },
  };

  /** Create an element; `props` are attributes (strings) except `text`, which sets textContent. */
  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function svg(markup) {
    // Static, trusted icon markup only (never server data).
    const holder = document.createElement("span");
    holder.className = "kc-icon";
    holder.setAttribute("aria-hidden", "true");
    holder.innerHTML = markup;
    return holder;
  }

  const ICON_CHAT =
    '<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" focusable="false"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"/>' +
    '<path d="M8.5 11h.01M12 11h.01M15.5 11h.01" stroke-width="2.6"/></svg>';
  const ICON_CLOSE =
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" stroke-width="2.2" ' +
    'stroke-linecap="round" focusable="false"><path d="M6 6l12 12M18 6L6 18"/></svg>';
  const ICON_SEND =
    '<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2.2" ' +
    'stroke-linecap="round" stroke-linejoin="round" focusable="false"><path d="M4 12l16-8-6 16-2.5-6.5z"/><path d="M11.5 13.5L20 4"/></svg>';

  const countChars = (text) => Array.from(text).length; // code points, as the server counts
  const formatNumber = (n) => n.toLocaleString("en-US");
  const isHttpUrl = (url) => typeof url === "string" && /^https?:\/\//i.test(url.trim());
  const asText = (value) => (typeof value === "string" ? value : value === null || value === undefined ? "" : String(value));

  // --------------------------------------------------------------------- styles
  const CSS = `
#kestrel-chat{--kc-brand:#0b4f6c;--kc-brand-dark:#083a50;--kc-accent:#f2a541;--kc-bg:#ffffff;--kc-muted:#5b6b78;
  --kc-border:#d9e1e7;--kc-user:#0b4f6c;--kc-bot:#f1f5f8;--kc-radius:16px;
  position:fixed;right:20px;bottom:20px;z-index:2147483000;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:#1b2730;text-align:left;letter-spacing:normal;text-transform:none;margin:0;padding:0;border:0;background:none;
  width:auto;height:auto;min-width:0;min-height:0;max-width:none;box-shadow:none;float:none;}
#kestrel-chat *,#kestrel-chat *::before,#kestrel-chat *::after{box-sizing:border-box;}
#kestrel-chat :where(div,span,h2,form,a,button,textarea){margin:0;padding:0;border:0;background:none;float:none;position:static;
  width:auto;height:auto;min-width:0;min-height:0;max-width:none;max-height:none;box-shadow:none;text-shadow:none;
  font:inherit;color:inherit;line-height:inherit;text-align:inherit;text-transform:none;letter-spacing:normal;text-decoration:none;}
#kestrel-chat button{cursor:pointer;background:none;border:0;padding:0;line-height:1;}
#kestrel-chat button:disabled{cursor:not-allowed;}
#kestrel-chat .kc-icon{display:inline-flex;line-height:0;}
#kestrel-chat .kc-sr{position:absolute!important;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0;}
#kestrel-chat :focus-visible{outline:3px solid var(--kc-accent);outline-offset:2px;}

#kestrel-chat .kc-launcher{position:relative;display:flex;align-items:center;justify-content:center;width:60px;height:60px;border-radius:50%;
  background:var(--kc-brand);color:#fff;box-shadow:0 6px 20px rgba(11,79,108,.35);transition:transform .15s ease,background .15s ease;margin-left:auto;}
#kestrel-chat .kc-launcher:hover{background:var(--kc-brand-dark);transform:translateY(-1px);}
#kestrel-chat .kc-launcher .kc-icon-close{display:none;}
#kestrel-chat.kc-is-open .kc-launcher .kc-icon-chat{display:none;}
#kestrel-chat.kc-is-open .kc-launcher .kc-icon-close{display:inline-flex;}
#kestrel-chat .kc-unread{position:absolute;top:4px;right:4px;width:14px;height:14px;border-radius:50%;background:var(--kc-accent);border:2px solid #fff;display:none;}
#kestrel-chat.kc-has-unread .kc-unread{display:block;}

#kestrel-chat .kc-panel{position:absolute;right:0;bottom:76px;width:380px;height:min(600px,calc(100vh - 110px));display:flex;flex-direction:column;
  background:var(--kc-bg);border:1px solid var(--kc-border);border-radius:var(--kc-radius);box-shadow:0 18px 50px rgba(16,37,51,.28);overflow:hidden;}
#kestrel-chat .kc-panel[hidden]{display:none;}

#kestrel-chat .kc-header{display:flex;align-items:center;gap:10px;padding:14px 14px 14px 18px;background:var(--kc-brand);color:#fff;}
#kestrel-chat .kc-title{flex:1;margin:0;font-size:16px;font-weight:650;line-height:1.25;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#fff;}
#kestrel-chat .kc-status{display:inline-flex;align-items:center;gap:6px;font-size:12px;opacity:.92;white-space:nowrap;}
#kestrel-chat .kc-dot{width:10px;height:10px;border-radius:50%;background:#9aa7b1;box-shadow:0 0 0 2px rgba(255,255,255,.35);}
#kestrel-chat .kc-status[data-state="open"] .kc-dot{background:#3ccf7a;}
#kestrel-chat .kc-status[data-state="connecting"] .kc-dot{background:var(--kc-accent);animation:kc-pulse 1.2s ease-in-out infinite;}
#kestrel-chat .kc-status[data-state="closed"] .kc-dot{background:#e05d5d;}
#kestrel-chat .kc-close{display:flex;align-items:center;justify-content:center;width:36px;height:36px;border-radius:50%;color:#fff;}
#kestrel-chat .kc-close:hover{background:rgba(255,255,255,.15);}

#kestrel-chat .kc-banner{padding:7px 14px;background:#fff4e0;color:#7a4a00;font-size:13px;border-bottom:1px solid #f3dcb5;display:flex;align-items:center;gap:8px;}
#kestrel-chat .kc-banner[hidden]{display:none;}
#kestrel-chat .kc-banner button{margin-left:auto;text-decoration:underline;font-size:13px;color:#7a4a00;padding:2px 4px;}

#kestrel-chat .kc-messages{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:16px 14px 8px;display:flex;flex-direction:column;gap:10px;background:#fbfcfd;}
#kestrel-chat .kc-history{display:contents;}
#kestrel-chat .kc-messages .kc-msg,#kestrel-chat .kc-messages .kc-notice{flex:none;}
#kestrel-chat .kc-msg{max-width:86%;padding:9px 13px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:normal;}
#kestrel-chat .kc-msg-user{align-self:flex-end;background:var(--kc-user);color:#fff;border-bottom-right-radius:4px;}
#kestrel-chat .kc-msg-user[data-pending="true"]{opacity:.7;}
#kestrel-chat .kc-pending-label{display:block;font-size:11px;margin-top:3px;opacity:.9;white-space:normal;}
#kestrel-chat .kc-msg-bot,#kestrel-chat .kc-msg-agent,#kestrel-chat .kc-welcome{align-self:flex-start;background:var(--kc-bot);border:1px solid #e3e9ee;border-bottom-left-radius:4px;}
#kestrel-chat .kc-msg-agent{background:#eef7f0;border-color:#cfe6d6;}
#kestrel-chat .kc-msg-bot[data-kind="refusal"],#kestrel-chat .kc-msg-bot[data-kind="fallback"]{background:#f7f4ee;border-color:#ebe3d3;}
#kestrel-chat .kc-agent-name{display:block;font-size:12px;font-weight:650;color:#2d6a3f;margin-bottom:2px;white-space:normal;}
#kestrel-chat .kc-sources{display:block;margin-top:7px;padding-top:6px;border-top:1px solid #dfe6eb;font-size:12px;color:var(--kc-muted);white-space:normal;}
#kestrel-chat .kc-sources a{color:var(--kc-brand);text-decoration:underline;}
#kestrel-chat .kc-handoff{display:block;margin-top:6px;font-size:12px;font-style:italic;color:var(--kc-muted);white-space:normal;}
#kestrel-chat .kc-interrupted{display:block;margin-top:6px;font-size:12px;color:#8a3b3b;white-space:normal;}
#kestrel-chat .kc-notice{align-self:center;max-width:92%;text-align:center;font-size:12.5px;color:#6b3b00;background:#fff4e0;border:1px solid #f3dcb5;
  border-radius:10px;padding:6px 10px;white-space:pre-wrap;overflow-wrap:anywhere;}
#kestrel-chat .kc-typing{display:inline-flex;gap:4px;padding:4px 0;}
#kestrel-chat .kc-typing span{width:7px;height:7px;border-radius:50%;background:#8796a3;animation:kc-blink 1.2s infinite ease-in-out;}
#kestrel-chat .kc-typing span:nth-child(2){animation-delay:.2s;}
#kestrel-chat .kc-typing span:nth-child(3){animation-delay:.4s;}

#kestrel-chat .kc-composer{border-top:1px solid var(--kc-border);padding:10px 12px 8px;background:#fff;}
#kestrel-chat .kc-row{display:flex;align-items:flex-end;gap:8px;}
#kestrel-chat .kc-input{flex:1;display:block;resize:none;min-height:44px;max-height:140px;padding:10px 12px;border:1px solid #c5d1da;border-radius:12px;
  background:#fff;color:#1b2730;font-size:16px;line-height:1.4;outline:none;}
#kestrel-chat .kc-input:focus{border-color:var(--kc-brand);box-shadow:0 0 0 3px rgba(11,79,108,.18);}
#kestrel-chat .kc-input[aria-invalid="true"]{border-color:#c0392b;}
#kestrel-chat .kc-send{display:flex;align-items:center;justify-content:center;width:44px;height:44px;border-radius:12px;background:var(--kc-brand);color:#fff;flex:none;}
#kestrel-chat .kc-send:hover:not(:disabled){background:var(--kc-brand-dark);}
#kestrel-chat .kc-send:disabled{background:#b7c3cc;}
#kestrel-chat .kc-meta{display:flex;justify-content:space-between;gap:8px;margin-top:5px;font-size:11.5px;color:var(--kc-muted);}
#kestrel-chat .kc-counter{margin-left:auto;white-space:nowrap;}
#kestrel-chat .kc-counter[data-over="true"]{color:#c0392b;font-weight:650;}

@keyframes kc-blink{0%,80%,100%{opacity:.25;transform:translateY(0);}40%{opacity:1;transform:translateY(-2px);}}
@keyframes kc-pulse{0%,100%{opacity:1;}50%{opacity:.35;}}
@media (prefers-reduced-motion:reduce){#kestrel-chat *{animation:none!important;transition:none!important;}}

@media (max-width:479.98px){
  #kestrel-chat{right:14px;bottom:14px;}
  #kestrel-chat .kc-panel{position:fixed;inset:0;width:100%;height:100%;max-height:none;border-radius:0;border:0;bottom:auto;right:auto;}
  #kestrel-chat.kc-is-open .kc-launcher{display:none;}
  #kestrel-chat .kc-msg{max-width:90%;}
  #kestrel-chat .kc-hint{display:none;}
  #kestrel-chat .kc-composer{padding-bottom:max(8px,env(safe-area-inset-bottom));}
}`;

  // --------------------------------------------------------------------- DOM
  const root = el("div", { id: "kestrel-chat", class: "kc-root" });
  const uid = "kc-" + Math.random().toString(36).slice(2, 8);

  const launcher = el(
    "button",
    {
      type: "button",
      class: "kc-launcher",
      "data-testid": "kc-launcher",
      "aria-label": "Open chat with " + title,
      "aria-expanded": "false",
      "aria-controls": uid + "-panel",
    },
    [
      (() => {
        const s = svg(ICON_CHAT);
        s.classList.add("kc-icon-chat");
        return s;
      })(),
      (() => {
        const s = svg(ICON_CLOSE);
        s.classList.add("kc-icon-close");
        return s;
      })(),
      el("span", { class: "kc-unread", "aria-hidden": "true" }),
    ]
  );

  const statusText = el("span", { class: "kc-status-text", text: "Offline" });
  const status = el(
    "span",
    { class: "kc-status", "data-testid": "kc-status", "data-state": "closed", role: "status", "aria-live": "polite" },
    [el("span", { class: "kc-dot", "aria-hidden": "true" }), statusText]
  );
  const closeButton = el("button", { type: "button", class: "kc-close", "aria-label": "Close chat", "data-testid": "kc-close" }, [
    svg(ICON_CLOSE),
  ]);
  const header = el("div", { class: "kc-header" }, [
    el("h2", { class: "kc-title", id: uid + "-title", text: title }),
    status,
    closeButton,
  ]);

  const retryButton = el("button", { type: "button", text: "Retry now" });
  const banner = el("div", { class: "kc-banner", "data-testid": "kc-banner", hidden: true }, [
    el("span", { text: "Reconnecting\u2026" }),
    retryButton,
  ]);

  const history = el("div", { class: "kc-history" });
  const messages = el(
    "div",
    {
      class: "kc-messages",
      "data-testid": "kc-messages",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions text",
      "aria-label": "Conversation",
      tabindex: "0",
    },
    [el("div", { class: "kc-msg kc-welcome", "data-testid": "kc-welcome", text: greeting }), history]
  );

  const counter = el("span", { class: "kc-counter", id: uid + "-counter", "data-testid": "kc-counter", "aria-live": "off" });
  const input = el("textarea", {
    class: "kc-input",
    "data-testid": "kc-input",
    rows: "1",
    placeholder: "Type your question\u2026",
    "aria-label": "Your message",
    "aria-describedby": uid + "-counter " + uid + "-hint",
    autocomplete: "off",
  });
  const sendButton = el("button", { type: "submit", class: "kc-send", "data-testid": "kc-send", "aria-label": "Send message", disabled: true }, [
    svg(ICON_SEND),
  ]);
  const composer = el("form", { class: "kc-composer", novalidate: true }, [
    el("div", { class: "kc-row" }, [input, sendButton]),
    el("div", { class: "kc-meta" }, [el("span", { class: "kc-hint", id: uid + "-hint", text: "Enter to send \u00b7 Shift+Enter for a new line" }), counter]),
  ]);

  const panel = el(
    "div",
    {
      class: "kc-panel",
      id: uid + "-panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": uid + "-title",
      "data-testid": "kc-panel",
      hidden: true,
    },
    [header, banner, messages, composer]
  );
  root.append(panel, launcher);

  // --------------------------------------------------------------------- state
  let socket = null;
  let ready = false; // the server's "ready" frame arrived on the current socket
  let everConnected = false;
  let attempt = 0;
  let reconnectTimer = null;
  let started = false; // a connection was requested (first open or send)
  let historyRequested = false;
  let isOpen = false;
  let conversationId = (() => {
    const stored = storage.get(STORAGE_KEY);
    return stored && CONVERSATION_ID.test(stored) ? stored : null;
  })();
  const queue = []; // {text, bubble} typed while disconnected
  const bubbles = new Map(); // message id -> assistant bubble record
  let inFlight = 0; // messages sent whose answer has not finished

  // --------------------------------------------------------------------- rendering
  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || nearBottom()) messages.scrollTop = messages.scrollHeight;
  }

  function append(node, force) {
    const stick = force || nearBottom();
    messages.appendChild(node);
    if (stick) scrollToEnd(true);
  }

  function markUnread() {
    if (!isOpen) {
      root.classList.add("kc-has-unread");
      launcher.setAttribute("aria-label", "Open chat with " + title + " (new message)");
    }
  }

  function addNotice(text) {
    append(el("div", { class: "kc-notice", "data-testid": "kc-notice", text: asText(text) }), true);
    markUnread();
  }

  function addUserBubble(text, pending, container) {
    const bubble = el("div", { class: "kc-msg kc-msg-user", "data-testid": "kc-user-message" });
    bubble.appendChild(document.createTextNode(text));
    if (pending) setPending(bubble, true);
    if (container) container.appendChild(bubble);
    else append(bubble, true);
    return bubble;
  }

  function setPending(bubble, pending) {
    const label = bubble.querySelector(".kc-pending-label");
    if (pending) {
      bubble.setAttribute("data-pending", "true");
      if (!label) bubble.appendChild(el("span", { class: "kc-pending-label", text: "Waiting for connection\u2026" }));
    } else {
      bubble.removeAttribute("data-pending");
      if (label) label.remove();
    }
  }

  function typingIndicator() {
    return el("span", { class: "kc-typing", role: "img", "aria-label": "The assistant is typing" }, [el("span"), el("span"), el("span")]);
  }

  /** An assistant bubble: {node, body, text, final}. */
  function createBotBubble(id, container) {
    const node = el("div", {
      class: "kc-msg kc-msg-bot",
      "data-testid": "kc-bot-message",
      "data-message-id": asText(id),
      "data-final": "false",
      "aria-busy": "true",
    });
    const body = el("span", { class: "kc-text", "data-testid": "kc-bot-text" });
    node.append(body, typingIndicator());
    const record = { node, body, text: "", final: false };
    if (id) bubbles.set(String(id), record);
    if (container) container.appendChild(node);
    else append(node);
    return record;
  }

  function currentStreaming() {
    let last = null;
    for (const record of bubbles.values()) if (!record.final && record.node.isConnected) last = record;
    return last;
  }

  function botBubbleFor(id, allowCurrent) {
    const key = asText(id);
    if (key && bubbles.has(key)) return bubbles.get(key);
    if (allowCurrent) {
      const current = currentStreaming();
      if (current) {
        if (key) {
          current.node.setAttribute("data-message-id", key);
          bubbles.set(key, current);
        }
        return current;
      }
    }
    return createBotBubble(key);
  }

  function clearTyping(record) {
    const typing = record.node.querySelector(".kc-typing");
    if (typing) typing.remove();
  }

  function renderSources(sources) {
    const list = Array.isArray(sources) ? sources.filter((s) => s && typeof s === "object" && asText(s.title || s.id).trim()) : [];
    if (!list.length) return null;
    const line = el("span", { class: "kc-sources", "data-testid": "kc-sources" }, [el("span", { text: "Sources: " })]);
    list.forEach((source, index) => {
      if (index > 0) line.appendChild(document.createTextNode(", "));
      const label = asText(source.title).trim() || asText(source.id);
      if (isHttpUrl(source.url)) {
        line.appendChild(
          el("a", {
            href: source.url.trim(),
            target: "_blank",
            rel: "noopener",
            "data-testid": "kc-source",
            "aria-label": label + " (opens in a new tab)",
            text: label,
          })
        );
      } else {
        line.appendChild(el("span", { class: "kc-source-text", "data-testid": "kc-source", text: label }));
      }
    });
    return line;
  }

  /** Fill a bubble from a final AnswerObject: replace the text, add sources and the hand-off note. */
  function finalize(record, answer) {
    clearTyping(record);
    record.final = true;
    record.text = asText(answer.text);
    record.body.textContent = record.text;
    record.node.querySelectorAll(".kc-sources,.kc-handoff,.kc-interrupted").forEach((n) => n.remove());
    const kind = asText(answer.kind);
    if (kind) record.node.setAttribute("data-kind", kind);
    if (answer.intent && typeof answer.intent === "object" && answer.intent.name) {
      record.node.setAttribute("data-intent", asText(answer.intent.name));
    }
    const sources = renderSources(answer.sources);
    if (sources) record.node.appendChild(sources);
    if (answer.handoff === true) {
      record.node.appendChild(el("span", { class: "kc-handoff", "data-testid": "kc-handoff", text: "A member of our team will take over." }));
    }
    record.node.setAttribute("data-final", "true");
    record.node.setAttribute("aria-busy", "false");
  }

  function interruptStreaming(reason) {
    for (const [id, record] of bubbles) {
      if (record.final) continue;
      record.final = true;
      clearTyping(record);
      record.node.setAttribute("aria-busy", "false");
      if (!record.text) {
        record.node.remove();
        bubbles.delete(id);
      } else {
        record.node.setAttribute("data-interrupted", "true");
        record.node.appendChild(el("span", { class: "kc-interrupted", text: reason }));
      }
    }
  }

  function addAgentBubble(message, container) {
    const name = asText(message.agent_name).trim() || "Kestrel Bank team";
    const node = el("div", {
      class: "kc-msg kc-msg-agent",
      "data-testid": "kc-agent-message",
      "data-message-id": asText(message.id),
      "data-kind": "agent",
    });
    node.append(el("span", { class: "kc-agent-name", "data-testid": "kc-agent-name", text: name }), el("span", { class: "kc-text", text: asText(message.text) }));
    if (container) container.appendChild(node);
    else append(node);
    return node;
  }

  // --------------------------------------------------------------------- connection status
  function setState(state) {
    status.setAttribute("data-state", state);
    statusText.textContent = state === "open" ? "Online" : state === "connecting" ? "Connecting\u2026" : "Offline";
    const showBanner = state !== "open" && started && (everConnected || attempt > 0);
    banner.hidden = !showBanner;
    retryButton.hidden = state === "connecting";
  }

  function socketUrl() {
    return WS_BASE + "/ws/chat" + (conversationId ? "?conversation_id=" + encodeURIComponent(conversationId) : "");
  }

  function connect() {
    started = true;
    if (reconnectTimer) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
    if (socket && (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN)) return;
    loadHistory();
    ready = false;
    setState("connecting");
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return; // not JSON: ignore
      }
      if (frame && typeof frame === "object") handleFrame(frame);
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      const wasReady = ready;
      ready = false;
      if (inFlight > 0 || currentStreaming()) {
        interruptStreaming("The connection dropped before this answer finished.");
        if (inFlight > 0 && wasReady) addNotice("The connection was lost before the answer arrived. Please ask again once we're reconnected.");
        inFlight = 0;
      }
      setState("closed");
      scheduleReconnect();
    });
    // "error" is always followed by "close", which does the work.
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    setState("closed");
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function reconnectNow() {
    if (socket) return;
    attempt = Math.max(attempt, 1);
    connect();
  }

  function transmit(text) {
    socket.send(JSON.stringify({ type: "message", text }));
    inFlight += 1;
  }

  function flushQueue() {
    while (queue.length && ready && socket && socket.readyState === WebSocket.OPEN) {
      const item = queue.shift();
      transmit(item.text);
      setPending(item.bubble, false);
    }
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "ready": {
        const id = asText(frame.conversation_id);
        if (CONVERSATION_ID.test(id)) {
          conversationId = id;
          storage.set(STORAGE_KEY, id);
        }
        ready = true;
        everConnected = true;
        attempt = 0;
        setState("open");
        flushQueue();
        break;
      }
      case "start": {
        const record = botBubbleFor(frame.id, false);
        if (record.final) break;
        markUnread();
        break;
      }
      case "delta": {
        const record = botBubbleFor(frame.id, true);
        if (record.final) break;
        clearTyping(record);
        record.text += asText(frame.text);
        const stick = nearBottom();
        record.body.textContent = record.text;
        if (stick) scrollToEnd(true);
        break;
      }
      case "message": {
        const answer = frame.message;
        if (!answer || typeof answer !== "object") break;
        const stick = nearBottom();
        finalize(botBubbleFor(answer.id, true), answer);
        if (stick) scrollToEnd(true);
        inFlight = Math.max(0, inFlight - 1);
        markUnread();
        break;
      }
      case "error": {
        const message = asText(frame.message).trim() || "Something went wrong; please try again.";
        if (frame.code !== "conversation_not_found" && inFlight > 0) {
          inFlight -= 1;
          interruptStreaming("This answer was interrupted.");
        }
        addNotice(message);
        break;
      }
      case "agent_message": {
        const message = frame.message;
        if (!message || typeof message !== "object") break;
        addAgentBubble(message);
        markUnread();
        break;
      }
      default:
        break; // unknown or future frame types (e.g. "handoff") are ignored
    }
  }

  /** After a reload, show the earlier turns of the stored conversation (best effort, REST v1). */
  function loadHistory() {
    if (historyRequested || !conversationId || typeof fetch !== "function") return;
    historyRequested = true;
    const id = conversationId;
    fetch(HTTP_BASE + "/v1/conversations/" + encodeURIComponent(id) + "/messages", { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : null))
      .then((data) => {
        if (!data || !Array.isArray(data.messages) || id !== conversationId) return;
        const fragment = document.createDocumentFragment();
        for (const item of data.messages) {
          if (!item || typeof item !== "object") continue;
          if (item.role === "user") {
            addUserBubble(asText(item.text), false, fragment).setAttribute("data-history", "true");
          } else if (item.role === "assistant") {
            if (item.id && bubbles.has(String(item.id))) continue;
            const record = createBotBubble(item.id, fragment);
            finalize(record, item);
            record.node.setAttribute("data-history", "true");
          } else if (item.role === "agent") {
            addAgentBubble(item, fragment).setAttribute("data-history", "true");
          }
        }
        if (fragment.childNodes.length) {
          history.append(el("div", { class: "kc-notice kc-history-label", text: "Earlier in this conversation" }), fragment);
          scrollToEnd(true);
        }
      })
      .catch(() => {
        /* history is a convenience; the conversation continues without it */
      });
  }

  // --------------------------------------------------------------------- composer
  function updateComposer() {
    const text = input.value;
    const count = countChars(text);
    const over = count > MAX_CHARS;
    counter.textContent = formatNumber(count) + " / " + formatNumber(MAX_CHARS);
    counter.setAttribute("data-over", over ? "true" : "false");
    if (over) counter.textContent += " \u2014 too long";
    input.setAttribute("aria-invalid", over ? "true" : "false");
    sendButton.disabled = over || text.trim() === "";
    // Grow with the content, up to the CSS max-height.
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 140) + "px";
  }

  /** Send (or queue) a message. Returns true when it was accepted. */
  function sendText(raw) {
    const text = asText(raw);
    if (!text.trim()) return false;
    if (!started || (!socket && !reconnectTimer)) connect();
    const canSend = ready && socket && socket.readyState === WebSocket.OPEN;
    const bubble = addUserBubble(text, !canSend);
    if (canSend) transmit(text);
    else queue.push({ text, bubble });
    return true;
  }

  function submitFromInput() {
    const text = input.value;
    if (!text.trim() || countChars(text) > MAX_CHARS) return;
    if (sendText(text)) {
      input.value = "";
      updateComposer();
      input.focus();
    }
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitFromInput();
  });
  input.addEventListener("input", updateComposer);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submitFromInput();
    }
  });

  // --------------------------------------------------------------------- open / close
  function open(options) {
    const focus = !(options && options.focus === false);
    if (!started) connect();
    if (isOpen) {
      if (focus) input.focus();
      return;
    }
    isOpen = true;
    panel.hidden = false;
    root.classList.add("kc-is-open");
    root.classList.remove("kc-has-unread");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat");
    storage.set(OPEN_KEY, "1");
    scrollToEnd(true);
    if (focus) input.focus();
  }

  function close() {
    if (!isOpen) return;
    const hadFocus = root.contains(document.activeElement);
    isOpen = false;
    panel.hidden = true;
    root.classList.remove("kc-is-open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat with " + title);
    storage.set(OPEN_KEY, null);
    if (hadFocus) launcher.focus();
  }

  launcher.addEventListener("click", () => (isOpen ? close() : open()));
  closeButton.addEventListener("click", close);
  retryButton.addEventListener("click", reconnectNow);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isOpen) {
      event.stopPropagation();
      close();
    }
  });
  window.addEventListener("online", () => {
    if (started && !socket) reconnectNow();
  });

  // --------------------------------------------------------------------- mount
  function mount() {
    if (document.getElementById("kestrel-chat")) return;
    const style = el("style", { id: "kestrel-chat-style", text: CSS });
    (document.head || document.documentElement).appendChild(style);
    document.body.appendChild(root);
    updateComposer();
    setState("closed");
    if (storage.get(OPEN_KEY) === "1") open({ focus: false }); // a reload keeps the panel as it was, without stealing focus
  }

  window.KestrelChat = {
    open: () => open(),
    close: () => close(),
    /** Open the panel (focus stays where it is) and send `text`; the server checks the length. */
    send: (text) => {
      if (!asText(text).trim()) return false;
      open({ focus: false });
      return sendText(text);
    },
    /** Current connection state: "connecting" | "open" | "closed". */
    get state() {
      return status.getAttribute("data-state");
    },
    get conversationId() {
      return conversationId;
    },
  };

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
