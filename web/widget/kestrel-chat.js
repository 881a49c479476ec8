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

  let MAX_CHARS = 2000; // until the server's "ready" frame says its max_message_chars
  const STORAGE_KEY = "kestrel-chat-conversation";
  const TOKEN_KEY = "kestrel-chat-token"; // the conversation's customer token (only its owner may read it)
  const LAST_SEEN_KEY = "kestrel-chat-last-seen"; // id of the last stored message shown, for ?after= on reconnect
  const OPEN_KEY = "kestrel-chat-open";
  const TYPING_EVERY_MS = 3000; // at most one "typing" frame per 3 s, and only while a person is involved
  const TOKEN_PATTERN = /^[A-Za-z0-9_.~-]{8,512}$/;
  const MESSAGE_ID = /^[A-Za-z0-9_:.-]{1,80}$/;
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

  const ICON_PERSON =
    '<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" focusable="false"><circle cx="12" cy="8" r="4"/><path d="M4 21c1.5-4 4.5-6 8-6s6.5 2 8 6"/></svg>';
  const ICON_THUMB_UP =
    '<svg viewBox="0 0 24 24" width="15" height="15" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" focusable="false"><path d="M7 11v9H4v-9z"/><path d="M7 11l4-8c1.7 0 2.7 1.2 2.3 2.9L12.7 9H19a2 2 0 0 1 2 2.3l-1.2 7A2 2 0 0 1 17.8 20H7"/></svg>';
  const ICON_THUMB_DOWN =
    '<svg viewBox="0 0 24 24" width="15" height="15" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" focusable="false"><path d="M17 13V4h3v9z"/><path d="M17 13l-4 8c-1.7 0-2.7-1.2-2.3-2.9l.6-3.1H5a2 2 0 0 1-2-2.3l1.2-7A2 2 0 0 1 6.2 4H17"/></svg>';

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
#kestrel-chat .kc-handoff-note{display:block;margin-top:6px;font-size:12px;font-style:italic;color:var(--kc-muted);white-space:normal;}
#kestrel-chat .kc-quick-replies{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px;white-space:normal;}
#kestrel-chat .kc-quick-reply{font:inherit;font-size:13px;padding:5px 10px;border:1px solid var(--kc-brand);border-radius:14px;background:#fff;color:var(--kc-brand);cursor:pointer;}
#kestrel-chat .kc-quick-reply:hover,#kestrel-chat .kc-quick-reply:focus-visible{background:var(--kc-brand);color:#fff;}
#kestrel-chat .kc-msg-agent{border-left:4px solid #2d8a4e;}
#kestrel-chat .kc-notice.kc-handoff-notice{align-self:stretch;max-width:none;display:flex;gap:8px;align-items:flex-start;text-align:left;font-size:13px;
  color:#1f3b4d;background:#eaf3f8;border:1px solid #c9dfea;border-radius:10px;padding:8px 11px;white-space:pre-wrap;overflow-wrap:anywhere;}
#kestrel-chat .kc-notice.kc-handoff-notice[data-status="assigned"]{background:#eef7f0;border-color:#cfe6d6;color:#1f4a2c;}
#kestrel-chat .kc-notice.kc-handoff-notice[data-status="closed"]{background:#f3f4f6;border-color:#dfe3e8;color:#3b4650;}
#kestrel-chat .kc-handoff-notice .kc-icon{margin-top:1px;flex:none;}
#kestrel-chat .kc-feedback{display:flex;align-items:center;gap:4px;margin-top:7px;font-size:12px;color:var(--kc-muted);white-space:normal;flex-wrap:wrap;}
#kestrel-chat .kc-feedback-label{margin-right:2px;}
#kestrel-chat .kc-feedback .kc-thumb{display:inline-flex;align-items:center;justify-content:center;width:28px;height:26px;border-radius:8px;
  border:1px solid #d3dde4;background:#fff;color:#4a5b68;}
#kestrel-chat .kc-feedback .kc-thumb:hover:not(:disabled){border-color:var(--kc-brand);color:var(--kc-brand);}
#kestrel-chat .kc-feedback .kc-thumb[aria-pressed="true"]{background:var(--kc-brand);border-color:var(--kc-brand);color:#fff;}
#kestrel-chat .kc-feedback .kc-thumb:disabled{opacity:.55;}
#kestrel-chat .kc-feedback-form{display:flex;gap:6px;width:100%;margin-top:6px;}
#kestrel-chat .kc-feedback-comment{flex:1;min-width:0;padding:6px 8px;border:1px solid #c5d1da;border-radius:8px;background:#fff;font-size:13px;color:#1b2730;}
#kestrel-chat .kc-feedback-comment:focus{outline:none;border-color:var(--kc-brand);box-shadow:0 0 0 3px rgba(11,79,108,.18);}
#kestrel-chat .kc-feedback-submit{padding:6px 10px;border-radius:8px;background:var(--kc-brand);color:#fff;font-size:12.5px;font-weight:600;}
#kestrel-chat .kc-feedback-label.kc-feedback-wide{order:3;flex-basis:100%;margin-top:4px;}
#kestrel-chat .kc-feedback-form{order:4;}
#kestrel-chat .kc-feedback-done{color:#2d6a3f;font-weight:600;}
#kestrel-chat .kc-feedback-error{color:#8a3b3b;}
#kestrel-chat .kc-actions{display:flex;align-items:center;gap:8px;margin-bottom:8px;min-height:28px;}
#kestrel-chat .kc-handoff-button{display:inline-flex;align-items:center;gap:6px;padding:5px 11px;border:1px solid #c5d1da;border-radius:999px;
  background:#fff;color:var(--kc-brand);font-size:13px;font-weight:600;line-height:1.2;}
#kestrel-chat .kc-handoff-button:hover:not(:disabled){border-color:var(--kc-brand);background:#f1f7fa;}
#kestrel-chat .kc-handoff-button[hidden]{display:none;}
#kestrel-chat .kc-mode{font-size:12.5px;color:var(--kc-muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap;}
#kestrel-chat .kc-mode[data-mode="assigned"]{color:#2d6a3f;font-weight:600;}
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
  /* Touch targets of at least 44 x 44 px on phones (WCAG 2.5.5, Apple HIG). */
  #kestrel-chat .kc-feedback .kc-thumb{width:44px;height:44px;min-width:44px;min-height:44px;}
  #kestrel-chat .kc-handoff-button{min-height:44px;padding:8px 14px;}
  #kestrel-chat .kc-quick-reply{min-height:44px;padding:8px 14px;}
  #kestrel-chat .kc-close{width:44px;height:44px;}
  #kestrel-chat .kc-actions{min-height:44px;}
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
  const handoffButton = el(
    "button",
    { type: "button", class: "kc-handoff-button", "data-testid": "kc-handoff", "aria-label": "Talk to a person from our team" },
    [svg(ICON_PERSON), el("span", { text: "Talk to a person" })]
  );
  const modeLabel = el("span", { class: "kc-mode", "data-testid": "kc-mode", "data-mode": "bot" });
  const composer = el("form", { class: "kc-composer", novalidate: true }, [
    el("div", { class: "kc-actions" }, [handoffButton, modeLabel]),
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
  const queue = []; // {text, bubble} typed while disconnected, or {handoff: true}
  const bubbles = new Map(); // message id -> assistant bubble record
  let inFlight = 0; // messages sent whose answer has not finished
  let token = (() => {
    const stored = storage.get(TOKEN_KEY);
    return conversationId && stored && TOKEN_PATTERN.test(stored) ? stored : null;
  })();
  let lastSeenId = (() => {
    const stored = storage.get(LAST_SEEN_KEY);
    return conversationId && stored && MESSAGE_ID.test(stored) ? stored : null;
  })();
  let conversationStatus = "bot"; // bot | waiting | assigned | closed (from "ready" and "handoff" frames)
  const shown = new Set(); // ids of stored messages on screen: history and reconnects never show one twice
  const awaitingAck = new Map(); // client_id -> user bubble sent but not yet acknowledged as stored
  const liveNotices = []; // texts of handoff notices shown live; a replayed "system" message with that text is skipped
  let lastTypingSent = 0;
  let agentTypingTimer = null;
  let assignedAgent = ""; // name of the agent chatting with the customer, for the status line

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

  const HANDOFF_REPLY = "talk to an agent"; // the server's quick reply that asks for a person (dialogue/policy.py)
  const handingOff = () => conversationStatus === "waiting" || conversationStatus === "assigned";

  /** Once a handoff has started, "Talk to an agent" would only ask again: remove it (and an emptied group). */
  function removeHandoffReplies() {
    panel.querySelectorAll(".kc-quick-reply").forEach((button) => {
      if (button.textContent.trim().toLowerCase() !== HANDOFF_REPLY) return;
      const group = button.parentNode;
      button.remove();
      if (group && !group.querySelector(".kc-quick-reply")) group.remove();
    });
  }

  /** Quick replies (clarification options, "Talk to an agent"): a click sends the button's text, once. */
  function renderQuickReplies(replies) {
    const labels = (Array.isArray(replies) ? replies.map(asText).filter((t) => t.trim()) : []).filter(
      (t) => !(handingOff() && t.trim().toLowerCase() === HANDOFF_REPLY)
    );
    if (!labels.length) return null;
    const group = el("span", { class: "kc-quick-replies", "data-testid": "kc-quick-replies", role: "group", "aria-label": "Suggested replies" });
    labels.forEach((label) => {
      const button = el("button", { type: "button", class: "kc-quick-reply", "data-testid": "kc-quick-reply", text: label });
      button.addEventListener("click", () => {
        group.remove();
        sendText(label);
      });
      group.appendChild(button);
    });
    return group;
  }

  /** Fill a bubble from a final AnswerObject: replace the text, add sources and the hand-off note. */
  function finalize(record, answer) {
    clearTyping(record);
    record.final = true;
    record.text = asText(answer.text);
    record.body.textContent = record.text;
    record.node.querySelectorAll(".kc-sources,.kc-handoff-note,.kc-interrupted,.kc-feedback,.kc-quick-replies").forEach((n) => n.remove());
    const kind = asText(answer.kind);
    if (kind) record.node.setAttribute("data-kind", kind);
    if (answer.intent && typeof answer.intent === "object" && answer.intent.name) {
      record.node.setAttribute("data-intent", asText(answer.intent.name));
    }
    const sources = renderSources(answer.sources);
    if (sources) record.node.appendChild(sources);
    if (answer.handoff === true) {
      record.node.appendChild(el("span", { class: "kc-handoff-note", "data-testid": "kc-handoff-note", text: "A member of our team will take over." }));
    }
    const replies = renderQuickReplies(answer.quick_replies);
    if (replies) record.node.appendChild(replies);
    record.node.setAttribute("data-final", "true");
    record.node.setAttribute("aria-busy", "false");
    addFeedback(record.node, answer.id);
    markShown(answer.id);
  }

  // --------------------------------------------------------------------- feedback on answers
  /** Thumbs up/down under a stored answer; thumbs-down then offers an optional comment. */
  function addFeedback(node, messageId) {
    const id = asText(messageId);
    if (!MESSAGE_ID.test(id)) return;
    const label = el("span", { class: "kc-feedback-label", text: "Was this helpful?" });
    const up = el("button", { type: "button", class: "kc-thumb", "data-testid": "kc-feedback-up", "aria-label": "Helpful", "aria-pressed": "false", title: "Helpful" }, [
      svg(ICON_THUMB_UP),
    ]);
    const down = el(
      "button",
      { type: "button", class: "kc-thumb", "data-testid": "kc-feedback-down", "aria-label": "Not helpful", "aria-pressed": "false", title: "Not helpful" },
      [svg(ICON_THUMB_DOWN)]
    );
    const bar = el("div", { class: "kc-feedback", role: "group", "aria-label": "Rate this answer" }, [label, up, down]);
    let form = null;

    function done(text) {
      if (form) form.remove();
      form = null;
      label.className = "kc-feedback-label kc-feedback-wide kc-feedback-done";
      label.setAttribute("data-testid", "kc-feedback-done");
      label.textContent = text;
    }

    function failed(problem) {
      label.className = "kc-feedback-label kc-feedback-wide kc-feedback-error";
      label.removeAttribute("data-testid");
      label.textContent = problem;
    }

    function rate(rating) {
      up.setAttribute("aria-pressed", rating === "up" ? "true" : "false");
      down.setAttribute("aria-pressed", rating === "down" ? "true" : "false");
      return postFeedback(id, rating, null);
    }

    up.addEventListener("click", () => {
      rate("up").then(() => done("Thanks for your feedback!"), failed);
    });
    down.addEventListener("click", () => {
      rate("down").then(() => {
        label.className = "kc-feedback-label kc-feedback-wide";
        label.removeAttribute("data-testid");
        label.textContent = "Thanks. What were you looking for?";
        if (form) return;
        const comment = el("input", {
          type: "text",
          class: "kc-feedback-comment",
          "data-testid": "kc-feedback-comment",
          maxlength: "1000",
          placeholder: "Optional comment",
          "aria-label": "What was wrong with this answer? (optional)",
          autocomplete: "off",
        });
        const submit = el("button", { type: "submit", class: "kc-feedback-submit", "data-testid": "kc-feedback-submit", text: "Send" });
        form = el("form", { class: "kc-feedback-form", novalidate: true }, [comment, submit]);
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          event.stopPropagation();
          const text = comment.value.trim().slice(0, 1000);
          if (!text) {
            done("Thanks for your feedback.");
            return;
          }
          submit.disabled = true;
          postFeedback(id, "down", text).then(
            () => done("Thanks, your comment helps us improve."),
            (problem) => {
              submit.disabled = false;
              failed(problem);
            }
          );
        });
        bar.appendChild(form);
        comment.focus();
      }, failed);
    });
    node.appendChild(bar);
  }

  /** POST /v1/messages/{id}/feedback with the conversation token; rejects with a readable reason. */
  function postFeedback(messageId, rating, comment) {
    if (!token || typeof fetch !== "function") return Promise.reject("Feedback is not available right now.");
    const body = { rating };
    if (comment) body.comment = comment;
    return fetch(HTTP_BASE + "/v1/messages/" + encodeURIComponent(messageId) + "/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify(body),
    }).then(
      (response) => {
        if (response.ok) return response.json().catch(() => ({}));
        return response
          .json()
          .catch(() => null)
          .then((data) => {
            const message = data && data.error && data.error.message;
            throw asText(message) || "Your feedback could not be saved.";
          });
      },
      () => {
        throw "Your feedback could not be sent; check your connection.";
      }
    );
  }

  // --------------------------------------------------------------------- stored messages, seen once
  function markShown(id) {
    const key = asText(id);
    if (!MESSAGE_ID.test(key)) return;
    shown.add(key);
  }

  /** Remember the newest stored message on screen: a reconnect asks only for what came after it. */
  function noteLatest(id) {
    const key = asText(id);
    if (!MESSAGE_ID.test(key)) return;
    lastSeenId = key;
    storage.set(LAST_SEEN_KEY, key);
  }

  const HANDOFF_TEXT = {
    waiting: "We're connecting you with a member of our team.",
    assigned: "You're now chatting with a member of our team.",
    bot: "You're back with the Kestrel Bank assistant.",
    closed: "This conversation has been closed. Thank you for contacting Kestrel Bank.",
  };

  /** A notice from a `handoff` frame, using the server's text (it knows who is online and the wait). */
  function addHandoffNotice(frame) {
    const state = asText(frame.status);
    let text = asText(frame.text).trim();
    if (!text) {
      text = HANDOFF_TEXT[state] || "";
      if (state === "assigned" && asText(frame.agent_name).trim()) text = asText(frame.agent_name).trim() + " from our team has joined the chat.";
      if (state === "waiting" && frame.agents_online === 0) {
        text = "No agent is online right now. Leave a message here and a member of our team will read it and reply. " +
          "If your card is lost or stolen, or you suspect fraud, call our 24/7 card and fraud line at 1-800-555-0199.";
      } else if (state === "waiting" && typeof frame.expected_wait_s === "number" && frame.expected_wait_s > 0) {
        text += " Expected wait: about " + Math.max(1, Math.round(frame.expected_wait_s / 60)) + " min.";
      }
    }
    if (!text) return;
    liveNotices.push(text);
    if (liveNotices.length > 20) liveNotices.shift();
    append(
      el("div", {
        class: "kc-notice kc-handoff-notice",
        "data-testid": "kc-handoff-notice",
        "data-status": state,
        "data-agents-online": typeof frame.agents_online === "number" ? String(frame.agents_online) : null,
      }, [
        svg(ICON_PERSON),
        el("span", { text }),
      ]),
      true
    );
    markUnread();
  }

  /** Show the conversation's mode next to the hand-off button, and hide the button while a person is involved. */
  function setConversationStatus(state, agentName) {
    if (!["bot", "waiting", "assigned", "closed"].includes(state)) return;
    conversationStatus = state;
    clearTimeout(agentTypingTimer);
    const name = asText(agentName).trim() || (state === "assigned" ? assignedAgent : "");
    assignedAgent = state === "assigned" ? name : "";
    modeLabel.setAttribute("data-mode", state);
    modeLabel.textContent =
      state === "waiting" ? "Waiting for a member of our team\u2026" : state === "assigned" ? "Chatting with " + (name || "our team") : "";
    handoffButton.hidden = state === "waiting" || state === "assigned";
    if (state === "waiting" || state === "assigned") removeHandoffReplies(); // a person is already on the way
    input.setAttribute(
      "placeholder",
      state === "waiting" ? "Leave a message for our team\u2026" : state === "assigned" ? "Type your message\u2026" : "Type your question\u2026"
    );
    root.setAttribute("data-conversation-status", state);
  }

  /** Render one stored message (REST history or a `history` frame) unless it is already on screen. */
  function renderStored(item, container) {
    if (!item || typeof item !== "object") return null;
    const id = asText(item.id);
    if (id && shown.has(id)) return null;
    let node = null;
    if (item.role === "user") {
      // A message sent just before the connection dropped may be stored without its ack: adopt its bubble.
      for (const [clientId, bubble] of awaitingAck) {
        if (bubble.isConnected && bubble.firstChild && bubble.firstChild.textContent === asText(item.text)) {
          awaitingAck.delete(clientId);
          if (id) bubble.setAttribute("data-message-id", id);
          markShown(id);
          return null;
        }
      }
      node = addUserBubble(asText(item.text), false, container);
      if (id) node.setAttribute("data-message-id", id);
    } else if (item.role === "assistant") {
      if (id && bubbles.has(id)) return null;
      const record = createBotBubble(id, container);
      finalize(record, item);
      node = record.node;
    } else if (item.role === "agent") {
      node = addAgentBubble(item, container);
    } else if (item.role === "system") {
      const text = asText(item.text).trim();
      const live = liveNotices.indexOf(text);
      if (live >= 0) {
        liveNotices.splice(live, 1); // shown already from the live frame
      } else if (text) {
        node = el("div", { class: "kc-notice kc-handoff-notice", "data-testid": "kc-handoff-notice", "data-status": "history" }, [
          svg(ICON_PERSON),
          el("span", { text }),
        ]);
        if (container) container.appendChild(node);
        else append(node, true);
      }
    }
    markShown(id);
    return node;
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
    markShown(message.id);
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
    if (!conversationId) return WS_BASE + "/ws/chat";
    // The token proves this browser owns the conversation; `after` asks for the messages missed while away.
    let url = WS_BASE + "/ws/chat?conversation_id=" + encodeURIComponent(conversationId);
    if (token) url += "&token=" + encodeURIComponent(token);
    if (token && lastSeenId) url += "&after=" + encodeURIComponent(lastSeenId);
    return url;
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
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      const wasReady = ready;
      ready = false;
      if (inFlight > 0 || currentStreaming()) {
        interruptStreaming("The connection dropped before this answer finished.");
        if (inFlight > 0 && wasReady) addNotice("The connection was lost before the answer arrived. Please ask again once we're reconnected.");
        inFlight = 0;
      }
      // 1001: the server closed an idle connection. With the assistant, reconnect only when the customer
      // writes again (sendText / open call connect()); while waiting for or talking to a person, at once.
      if (event.code === 1001 && conversationStatus !== "waiting" && conversationStatus !== "assigned") {
        started = false;
        setState("closed");
        return;
      }
      if (event.code === 1012) attempt = 0; // service restart: another server process takes over, reconnect soon
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

  function transmit(text, bubble) {
    const clientId = "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    socket.send(JSON.stringify({ type: "message", text, client_id: clientId }));
    lastTypingSent = 0; // the next keystroke starts a new message: tell the agent at once
    if (bubble) awaitingAck.set(clientId, bubble);
    // While a person is involved the bot stays silent: no answer is expected.
    if (conversationStatus !== "waiting" && conversationStatus !== "assigned") inFlight += 1;
  }

  function flushQueue() {
    while (queue.length && ready && socket && socket.readyState === WebSocket.OPEN) {
      const item = queue.shift();
      if (item.handoff) {
        socket.send(JSON.stringify({ type: "handoff" }));
        continue;
      }
      transmit(item.text, item.bubble);
      setPending(item.bubble, false);
    }
  }

  /** "Talk to a person": ask for a hand-off now, or as soon as the connection is back. */
  function requestHandoff() {
    if (conversationStatus === "waiting" || conversationStatus === "assigned") return;
    handoffButton.disabled = true;
    setTimeout(() => {
      handoffButton.disabled = false;
    }, 8000);
    if (ready && socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "handoff" }));
    else {
      if (!queue.some((item) => item.handoff)) queue.push({ handoff: true });
      if (!started || (!socket && !reconnectTimer)) connect();
      addNotice("You'll be connected to our team as soon as the connection is back.");
    }
  }

  /** Tell the agent the customer is typing (throttled; only while a person is involved). */
  function sendTyping() {
    if (conversationStatus !== "waiting" && conversationStatus !== "assigned") return;
    if (!ready || !socket || socket.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (now - lastTypingSent < TYPING_EVERY_MS) return;
    lastTypingSent = now;
    socket.send(JSON.stringify({ type: "typing" }));
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "ready": {
        const id = asText(frame.conversation_id);
        if (CONVERSATION_ID.test(id)) {
          if (id !== conversationId) {
            // A new conversation: what was kept for the old one no longer applies.
            token = null;
            lastSeenId = null;
            storage.set(TOKEN_KEY, null);
            storage.set(LAST_SEEN_KEY, null);
          }
          conversationId = id;
          storage.set(STORAGE_KEY, id);
        }
        if (typeof frame.token === "string" && TOKEN_PATTERN.test(frame.token)) {
          token = frame.token;
          storage.set(TOKEN_KEY, token);
        }
        if (typeof frame.status === "string") setConversationStatus(frame.status, frame.agent_name);
        if (Number.isInteger(frame.max_message_chars) && frame.max_message_chars > 0) {
          MAX_CHARS = frame.max_message_chars; // the server's limit, never a copy that can drift
          updateComposer();
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
        noteLatest(answer.id);
        if (stick) scrollToEnd(true);
        inFlight = Math.max(0, inFlight - 1);
        markUnread();
        break;
      }
      case "error": {
        const message = asText(frame.message).trim() || "Something went wrong; please try again.";
        // An unknown `after` id: the server replays the whole conversation instead, which the widget de-duplicates.
        if (frame.code === "message_not_found" && !inFlight) break;
        if (frame.code === "idle_timeout") break; // the close that follows decides whether to reconnect
        if (frame.code === "rate_limited") {
          // That message was not stored: the answer in progress (if any) goes on; the notice says when to retry.
          inFlight = Math.max(0, inFlight - 1);
          addNotice(message);
          break;
        }
        if (frame.code === "invalid_token") {
          token = null; // the server starts a new conversation and sends its token in "ready"
          storage.set(TOKEN_KEY, null);
        }
        if (frame.code !== "conversation_not_found" && frame.code !== "invalid_token" && inFlight > 0) {
          inFlight -= 1;
          interruptStreaming("This answer was interrupted.");
        }
        addNotice(message);
        break;
      }
      case "agent_message": {
        const message = frame.message;
        if (!message || typeof message !== "object") break;
        if (message.id && shown.has(asText(message.id))) break;
        if (conversationStatus === "assigned") setConversationStatus("assigned", message.agent_name || assignedAgent); // ends "is typing"
        addAgentBubble(message);
        noteLatest(message.id);
        markUnread();
        break;
      }
      case "ack": {
        // The customer's message is stored: remember its id so a reconnect neither loses nor repeats it.
        const bubble = awaitingAck.get(asText(frame.client_id));
        if (bubble) {
          awaitingAck.delete(asText(frame.client_id));
          if (frame.message_id) bubble.setAttribute("data-message-id", asText(frame.message_id));
        }
        markShown(frame.message_id);
        noteLatest(frame.message_id);
        break;
      }
      case "history": {
        // Messages stored while this browser was away (after `after=`), in order; ones on screen are skipped.
        if (!Array.isArray(frame.messages)) break;
        let added = false;
        let latest = null;
        for (const item of frame.messages) {
          if (renderStored(item)) added = true;
          if (item && typeof item === "object" && item.id) latest = item.id;
        }
        if (latest) noteLatest(latest);
        if (added) {
          scrollToEnd(true);
          markUnread();
        }
        break;
      }
      case "typing": {
        // An agent is writing a reply: say so in the status line for a few seconds.
        if (conversationStatus !== "assigned") break;
        const name = asText(frame.agent_name).trim() || "Our team";
        modeLabel.textContent = name + " is typing\u2026";
        clearTimeout(agentTypingTimer);
        agentTypingTimer = setTimeout(() => setConversationStatus(conversationStatus, assignedAgent), 4000);
        break;
      }
      case "handoff": {
        const state = asText(frame.status);
        setConversationStatus(state, frame.agent_name);
        handoffButton.disabled = false;
        if ((state === "waiting" || state === "assigned") && !currentStreaming()) inFlight = 0;
        addHandoffNotice(frame);
        break;
      }
      default:
        break; // unknown or future frame types are ignored
    }
  }

  /** After a reload, show the earlier turns of the stored conversation (best effort, REST v1). */
  function loadHistory() {
    if (historyRequested || !conversationId || !token || typeof fetch !== "function") return;
    historyRequested = true;
    const id = conversationId;
    fetch(HTTP_BASE + "/v1/conversations/" + encodeURIComponent(id) + "/messages", {
      headers: { Accept: "application/json", Authorization: "Bearer " + token },
    })
      .then((response) => (response.ok ? response.json() : null))
      .then((data) => {
        if (!data || !Array.isArray(data.messages) || id !== conversationId) return;
        const fragment = document.createDocumentFragment();
        let latest = null;
        for (const item of data.messages) {
          if (!item || typeof item !== "object") continue;
          const node = renderStored(item, fragment);
          if (node) node.setAttribute("data-history", "true");
          if (item.id) latest = item.id;
        }
        if (latest && !lastSeenId) noteLatest(latest);
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
    if (canSend) transmit(text, bubble);
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
  input.addEventListener("input", () => {
    updateComposer();
    if (input.value.trim()) sendTyping();
  });
  handoffButton.addEventListener("click", requestHandoff);
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
    // A constructed stylesheet is not inline CSS: pages with a strict Content-Security-Policy
    // (no 'unsafe-inline' styles, as the Kestrel Assist server's own pages) still style the widget.
    if (window.CSSStyleSheet && "adoptedStyleSheets" in document && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    } else {
      const style = el("style", { id: "kestrel-chat-style", text: CSS });
      (document.head || document.documentElement).appendChild(style);
    }
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
    /** Ask for a person from the bank's team (same as the "Talk to a person" button). */
    handoff: () => {
      open({ focus: false });
      requestHandoff();
    },
    /** Who answers: "bot" | "waiting" (for an agent) | "assigned" (an agent is chatting) | "closed". */
    get conversationStatus() {
      return conversationStatus;
    },
  };

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
