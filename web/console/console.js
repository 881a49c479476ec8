/*!
 * Kestrel Assist agent console: plain ES2020, no dependencies, no build step (served at /console/).
 *
 * REST under /v1/agent/* and /v1/analytics with `Authorization: Bearer <agent token>`, live updates
 * over /ws/agent?token=… (queue, message and presence frames). See docs/agent-api.md.
 * Everything that comes from the server or a customer is rendered with textContent, never as HTML.
 */
(() => {
  "use strict";

  const SESSION_KEY = "kestrel-console-session";
  let MAX_CHARS = 2000; // until sign-in or /v1/agent/me says the server's max_message_chars
  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

  /** The server's limits (login and /v1/agent/me carry max_message_chars), so the counter never drifts from them. */
  function useLimits(data) {
    if (data && Number.isInteger(data.max_message_chars) && data.max_message_chars > 0) MAX_CHARS = data.max_message_chars;
  }
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 6000;
  // The server re-checks the token on every frame the console sends: a ping now and then means a
  // session revoked elsewhere (signed out on another device, password changed) ends here within this.
  const PING_EVERY_MS = 30000;
  const REASONS = {
    customer_request: "Asked for a person",
    human_agent_intent: "Asked for an agent",
    fallback: "Assistant could not answer",
    agent_takeover: "Taken over by an agent",
  };
  const KIND_LABELS = {
    faq: "FAQ",
    generated: "Generated",
    extractive: "Extractive",
    flow: "Flow",
    refusal: "Refusal",
    fallback: "Fallback",
    handoff: "Handoff",
  };

  const $ = (id) => document.getElementById(id);
  const asText = (value) => (typeof value === "string" ? value : value === null || value === undefined ? "" : String(value));
  const isHttpUrl = (url) => typeof url === "string" && /^https?:\/\//i.test(url.trim());
  const countChars = (text) => Array.from(text).length;

  /** Create an element; `props` are attributes except `text` (textContent) and `on<event>` handlers. */
  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  // ------------------------------------------------------------------------------- session
  const session = {
    load() {
      try {
        const data = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
        if (!data || typeof data.token !== "string" || !data.agent) return null;
        if (data.expires_at && Date.parse(data.expires_at) <= Date.now()) return null;
        return data;
      } catch (_) {
        return null;
      }
    },
    save(data) {
      try {
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(data));
      } catch (_) {
        /* storage unavailable: the session lasts until the tab is reloaded */
      }
    },
    clear() {
      try {
        sessionStorage.removeItem(SESSION_KEY);
      } catch (_) {
        /* nothing stored */
      }
    },
  };

  const state = {
    token: null,
    agent: null, // {id, name, role}
    conversations: new Map(), // id -> summary (from queue frames and lists)
    live: [], // conversations still with the bot (loaded on demand, for takeovers)
    selectedId: null,
    selected: null, // the conversation summary of the selected one
    shownMessages: new Set(), // message ids in the transcript
    lastMessages: new Map(), // conversation id -> latest message seen live
    unread: new Set(),
    presence: new Map(), // conversation id -> {online, typingUntil}
    suggestions: [], // cards for the selected conversation
    activeSuggestion: null, // {id, text} inserted into the reply box
    view: "conversations",
  };

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** JSON request with the agent token; a 401 ends the session and shows the sign-in form. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw new ApiFailure(0, "network_error", "The server could not be reached. Check your connection and try again.");
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = (data && data.error) || {};
    let message = asText(error.message) || "The request failed (" + response.status + ").";
    if (!error.message && data && Array.isArray(data.detail)) message = data.detail.map((d) => asText(d.msg)).join("; ") || message;
    const failure = new ApiFailure(response.status, asText(error.code) || "http_" + response.status, message);
    if (response.status === 401 && state.token) {
      signOut(
        failure.code === "expired_token" ? "Your session has expired. Please sign in again." : "Your session is no longer valid. Please sign in again."
      );
    }
    throw failure;
  }

  let toastTimer = null;
  function toast(message, tone) {
    const node = $("toast");
    node.textContent = message;
    node.setAttribute("data-tone", tone || "info");
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 5000);
  }

  function reportError(error) {
    if (error instanceof ApiFailure && error.status === 401) return; // already back at the sign-in form
    toast(error && error.message ? error.message : "Something went wrong.", "error");
  }

  // ------------------------------------------------------------------------------- formatting
  function shortId(id) {
    const text = asText(id);
    const tail = text.replace(/^conv_/, "");
    return tail.length > 6 ? tail.slice(-6) : tail;
  }

  function reasonLabel(reason) {
    const text = asText(reason);
    if (!text) return "";
    if (REASONS[text]) return REASONS[text];
    if (text.startsWith("flow:")) return "Flow: " + text.slice(5).replace(/_/g, " ");
    return text.replace(/_/g, " ");
  }

  function ago(iso) {
    const when = Date.parse(asText(iso));
    if (!Number.isFinite(when)) return "";
    const seconds = Math.max(0, Math.round((Date.now() - when) / 1000));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d";
  }

  function clock(iso) {
    const when = new Date(asText(iso));
    if (Number.isNaN(when.getTime())) return "";
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function percent(value) {
    return typeof value === "number" && Number.isFinite(value) ? (value * 100).toFixed(1) + "%" : "–";
  }

  function number(value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toLocaleString("en-US") : "–";
  }

  // ------------------------------------------------------------------------------- sign-in
  function showLogin(message) {
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("login-password").value = "";
    (asText($("login-username").value) ? $("login-password") : $("login-username")).focus();
  }

  async function login(event) {
    event.preventDefault();
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    const error = $("login-error");
    if (!username || !password) {
      error.textContent = "Enter your username and password.";
      error.hidden = false;
      return;
    }
    const button = $("login-submit");
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      const data = await api("POST", "/v1/agent/login", { username, password });
      useLimits(data);
      session.save({ token: data.token, expires_at: data.expires_at, agent: data.agent });
      error.hidden = true;
      start(data.token, data.agent, data.expires_at);
    } catch (failure) {
      error.textContent =
        failure.status === 401 ? "Wrong username or password." : failure.message || "Sign-in failed. Please try again.";
      error.hidden = false;
      $("login-password").value = "";
      $("login-password").focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  }

  /** The sign-out button: revoke the token on the server (every device and socket of this agent), then forget it.
   *  A failed request (offline, already expired) still signs out here; the token then ends at its expiry. */
  async function logout() {
    const token = state.token;
    if (token) {
      try {
        await fetch("/v1/agent/logout", { method: "POST", headers: { Authorization: "Bearer " + token } });
      } catch (_) {
        /* offline: nothing more we can do from here */
      }
    }
    signOut("You have signed out.");
  }

  function signOut(message) {
    clearTimeout(expiryTimer);
    state.token = null;
    state.agent = null;
    session.clear();
    disconnect();
    resetWorkspace();
    showLogin(message || "");
  }

  // ------------------------------------------------------------------------------- start
  let expiryTimer = null;

  function start(token, agent, expiresAt) {
    state.token = token;
    state.agent = agent;
    // The token stops working at its expiry: go back to the sign-in form then, not at the next click.
    clearTimeout(expiryTimer);
    const left = Date.parse(asText(expiresAt)) - Date.now();
    if (Number.isFinite(left) && left < 2 ** 31 - 1) {
      expiryTimer = setTimeout(() => signOut("Your session has expired. Please sign in again."), Math.max(0, left));
    }
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    const who = $("who");
    who.textContent = asText(agent.name);
    who.append(el("span", { class: "role", text: agent.role === "admin" ? "Admin" : "Agent" }));
    $("tab-analytics").hidden = agent.role !== "admin";
    connect();
    refreshQueue().catch(reportError);
    const wanted = location.hash === "#analytics" && agent.role === "admin" ? "analytics" : "conversations";
    showView(wanted);
  }

  function resetWorkspace() {
    state.conversations.clear();
    state.live = [];
    state.unread.clear();
    state.presence.clear();
    state.lastMessages.clear();
    select(null);
    renderQueue();
    $("queue-live").replaceChildren();
  }

  function showView(view) {
    state.view = view;
    $("conversations-view").hidden = view !== "conversations";
    $("analytics-view").hidden = view !== "analytics";
    for (const tab of document.querySelectorAll(".tab")) {
      if (tab.getAttribute("data-view") === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (view === "analytics") {
      if (location.hash !== "#analytics") history.replaceState(null, "", "#analytics");
      loadAnalytics();
    } else if (location.hash === "#analytics") {
      history.replaceState(null, "", location.pathname);
    }
  }

  // ------------------------------------------------------------------------------- live socket
  let socket = null;
  let reconnectTimer = null;
  let attempt = 0;

  function setConnection(stateName) {
    const node = $("connection");
    node.setAttribute("data-state", stateName);
    $("connection-text").textContent = stateName === "open" ? "Live" : stateName === "connecting" ? "Connecting…" : "Offline";
  }

  function connect() {
    if (!state.token) return;
    if (socket && (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN)) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setConnection("connecting");
    const url = location.origin.replace(/^http/i, "ws") + "/ws/agent?token=" + encodeURIComponent(state.token);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      opened = true;
      attempt = 0;
      setConnection("open");
      const pinger = setInterval(() => {
        if (socket !== ws || ws.readyState !== WebSocket.OPEN) return clearInterval(pinger);
        ws.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY_MS);
      // Catch up on what changed while the socket was down.
      refreshQueue().catch(() => {});
      if (state.selectedId) loadConversation(state.selectedId, { quiet: true }).catch(() => {});
    });
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (frame && typeof frame === "object") handleFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      setConnection("closed");
      if (!state.token) return;
      // A rejected token closes the socket before (or right after) it opens: ask REST whether we are still signed in.
      if (!opened || event.code === 4401 || event.code === 1008) {
        api("GET", "/v1/agent/me").then(scheduleReconnect, (failure) => {
          if (failure.status !== 401) scheduleReconnect();
        });
      } else {
        scheduleReconnect();
      }
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer || !state.token) return;
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function disconnect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket) {
      const ws = socket;
      socket = null;
      try {
        ws.close();
      } catch (_) {
        /* already closed */
      }
    }
    setConnection("closed");
  }

  function sendFrame(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "queue":
        if (Array.isArray(frame.conversations)) applyQueue(frame.conversations);
        break;
      case "message": {
        const id = asText(frame.conversation_id);
        const message = frame.message;
        if (!id || !message || typeof message !== "object") break;
        state.lastMessages.set(id, message);
        const summary = state.conversations.get(id);
        if (summary) summary.last_message = message;
        if (id === state.selectedId) {
          appendMessage(message);
          if (message.role === "user") setTyping(id, false);
        } else if (message.role === "user") {
          state.unread.add(id);
        }
        renderQueue();
        break;
      }
      case "presence": {
        const id = asText(frame.conversation_id);
        if (!id) break;
        const entry = state.presence.get(id) || { online: false, typingUntil: 0 };
        if (typeof frame.customer_online === "boolean") entry.online = frame.customer_online;
        entry.typingUntil = frame.typing === true ? Date.now() + TYPING_SHOWN_MS : 0;
        if (!entry.online) entry.typingUntil = 0;
        state.presence.set(id, entry);
        const summary = state.conversations.get(id);
        if (summary) summary.customer_online = entry.online;
        if (id === state.selectedId) renderCustomerState();
        renderQueue();
        break;
      }
      case "note": {
        const note = frame.note;
        if (asText(frame.conversation_id) !== state.selectedId || !note || typeof note !== "object") break;
        if (document.querySelector('#notes [data-note-id="' + CSS.escape(asText(note.id)) + '"]')) break;
        $("notes").append(noteItem(note));
        break;
      }
      case "error":
        if (frame.code === "idle_timeout") break; // the server closes an idle socket; we reconnect by ourselves
        if (frame.message) toast(asText(frame.message), "error");
        break;
      default:
        break; // unknown frames (pong, future ones) are ignored
    }
  }

  // ------------------------------------------------------------------------------- queue
  async function refreshQueue() {
    const data = await api("GET", "/v1/agent/conversations?status=waiting,assigned&limit=100");
    if (data && Array.isArray(data.conversations)) applyQueue(data.conversations);
  }

  /** A queue frame (or list) is the full picture of open conversations: replace ours with it. */
  function applyQueue(list) {
    const previous = state.conversations;
    state.conversations = new Map();
    for (const item of list) {
      if (!item || typeof item !== "object" || !item.id) continue;
      const id = asText(item.id);
      const known = state.lastMessages.get(id);
      if (known && (!item.last_message || asText(item.last_message.created_at) < asText(known.created_at))) item.last_message = known;
      state.conversations.set(id, item);
      const presence = state.presence.get(id) || { online: false, typingUntil: 0 };
      if (typeof item.customer_online === "boolean") presence.online = item.customer_online;
      state.presence.set(id, presence);
    }
    if (state.selectedId) {
      const fresh = state.conversations.get(state.selectedId);
      const before = state.selected;
      if (fresh) {
        const changed = !before || before.status !== fresh.status || assigneeId(before) !== assigneeId(fresh);
        state.selected = Object.assign({}, before || {}, fresh);
        if (changed) renderConversationHeader();
      } else if (before && (before.status === "waiting" || before.status === "assigned") && previous.has(state.selectedId)) {
        // It left the queue (closed or back with the bot): fetch its new state.
        loadConversation(state.selectedId, { quiet: true }).catch(() => {});
      }
    }
    renderQueue();
  }

  function assigneeId(conversation) {
    return conversation && conversation.assigned_agent ? conversation.assigned_agent.id : null;
  }

  function isMine(conversation) {
    return Boolean(state.agent && conversation && conversation.assigned_agent && conversation.assigned_agent.id === state.agent.id);
  }

  function queueItem(conversation, compact) {
    const id = asText(conversation.id);
    const status = asText(conversation.status);
    const presence = state.presence.get(id);
    const last = conversation.last_message;
    const since = status === "waiting" ? conversation.handoff_requested_at || conversation.updated_at : conversation.updated_at;
    const button = el(
      "button",
      {
        type: "button",
        class: "queue-item",
        "data-testid": "ac-queue-item",
        "data-conversation-id": id,
        "data-status": status,
        "data-flagged": conversation.flagged ? "true" : "false",
        "data-unread": state.unread.has(id) ? "true" : "false",
        "aria-current": id === state.selectedId ? "true" : "false",
        onclick: () => select(id),
      },
      [
        el("span", { class: "row" }, [
          el("span", { class: "online", "data-online": presence && presence.online ? "true" : "false", title: presence && presence.online ? "Customer online" : "Customer offline" }),
          el("span", { class: "name", text: "Customer " + shortId(id) }),
          conversation.flagged ? el("span", { class: "flag", text: "Overdue" }) : null,
          el("span", { class: "age", "data-since": asText(since), text: ago(since) }),
        ]),
        compact && status === "assigned" && conversation.assigned_agent
          ? el("span", { class: "reason", text: "With " + asText(conversation.assigned_agent.name) })
          : el("span", { class: "reason", text: reasonLabel(conversation.handoff_reason) || (status === "bot" ? "With the assistant" : "") }),
        last && last.text
          ? el("span", { class: "preview" }, [
              last.role === "user" ? null : el("span", { class: "preview-role", text: roleLabel(last) + ": " }),
              asText(last.text),
            ])
          : null,
      ]
    );
    return el("li", {}, [button]);
  }

  function renderQueue() {
    const all = Array.from(state.conversations.values());
    const waiting = all
      .filter((c) => c.status === "waiting")
      .sort((a, b) => asText(a.handoff_requested_at || a.updated_at).localeCompare(asText(b.handoff_requested_at || b.updated_at)));
    const mine = all.filter((c) => c.status === "assigned" && isMine(c)).sort((a, b) => asText(b.updated_at).localeCompare(asText(a.updated_at)));
    const others = all.filter((c) => c.status === "assigned" && !isMine(c));
    $("queue-waiting").replaceChildren(...waiting.map((c) => queueItem(c, false)));
    $("queue-mine").replaceChildren(...mine.map((c) => queueItem(c, false)));
    $("queue-others").replaceChildren(...others.map((c) => queueItem(c, true)));
    $("waiting-count").textContent = String(waiting.length);
    $("mine-count").textContent = String(mine.length);
    $("others-count").textContent = String(others.length);
    $("waiting-empty").hidden = waiting.length > 0;
    $("mine-empty").hidden = mine.length > 0;
    $("others-section").hidden = others.length === 0;
    const live = state.live.filter((c) => !state.conversations.has(asText(c.id)));
    $("queue-live").replaceChildren(...live.map((c) => queueItem(c, true)));
    document.title = (waiting.length ? "(" + waiting.length + ") " : "") + "Agent console · Kestrel Assist";
  }

  async function loadLive() {
    const button = $("live-load");
    button.disabled = true;
    try {
      const data = await api("GET", "/v1/agent/conversations?status=bot&limit=20");
      state.live = data && Array.isArray(data.conversations) ? data.conversations : [];
      button.textContent = "Refresh live conversations";
      renderQueue();
      if (!state.live.length) toast("No conversation is with the assistant right now.");
    } catch (failure) {
      reportError(failure);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------------------- conversation
  let loadToken = 0;

  function select(id) {
    if (id === state.selectedId && id) return;
    state.selectedId = id;
    state.selected = id ? state.conversations.get(id) || state.live.find((c) => c.id === id) || null : null;
    state.shownMessages = new Set();
    state.suggestions = [];
    state.activeSuggestion = null;
    if (id) state.unread.delete(id);
    $("transcript").replaceChildren();
    $("notes").replaceChildren();
    $("reply-input").value = "";
    $("note-input").value = "";
    renderSuggestions();
    $("empty-state").hidden = Boolean(id);
    $("conversation-pane").hidden = !id;
    renderQueue();
    if (!id) {
      renderConversationHeader();
      return;
    }
    renderConversationHeader();
    loadConversation(id).catch(reportError);
  }

  async function loadConversation(id, options) {
    const ticket = ++loadToken;
    const data = await api("GET", "/v1/agent/conversations/" + encodeURIComponent(id));
    if (ticket !== loadToken || id !== state.selectedId || !data) return;
    state.selected = Object.assign({}, state.selected || {}, data.conversation || {});
    if (data.conversation && typeof data.conversation.customer_online === "boolean") {
      const presence = state.presence.get(id) || { online: false, typingUntil: 0 };
      presence.online = data.conversation.customer_online;
      state.presence.set(id, presence);
    }
    const stick = isNearBottom();
    for (const message of data.messages || []) appendMessage(message, true);
    if (!(options && options.quiet) || stick) scrollTranscript();
    const notes = $("notes");
    notes.replaceChildren(...(data.notes || []).map(noteItem));
    renderConversationHeader();
  }

  function renderConversationHeader() {
    const c = state.selected;
    if (!c) return;
    const status = asText(c.status);
    $("conv-title").textContent = "Customer " + shortId(c.id);
    $("conv-title").title = asText(c.id);
    const badge = $("conv-status");
    badge.textContent = status === "bot" ? "With assistant" : status;
    badge.setAttribute("data-status", status);
    $("conv-reason").textContent = reasonLabel(c.handoff_reason);
    $("conv-agent").textContent = c.assigned_agent ? "Agent: " + (isMine(c) ? "you" : asText(c.assigned_agent.name)) : "";
    const mine = status === "assigned" && isMine(c);
    const open = status === "waiting" || status === "assigned" || status === "bot";
    $("claim").hidden = !(status === "waiting" || status === "bot");
    $("claim").textContent = status === "bot" ? "Take over" : "Claim";
    $("return").hidden = !(mine || status === "waiting");
    $("close").hidden = !(mine || status === "waiting");
    $("return").disabled = !open;
    $("close").disabled = !open;
    const input = $("reply-input");
    input.disabled = !mine;
    input.placeholder = mine
      ? "Reply to the customer…"
      : status === "closed"
        ? "This conversation is closed."
        : status === "assigned"
          ? "Another agent is handling this conversation."
          : "Claim the conversation to reply…";
    $("suggestions-load").disabled = !(mine || status === "waiting");
    $("note-input").disabled = false;
    updateReplyState();
    updateNoteState();
    renderCustomerState();
  }

  function renderCustomerState() {
    const id = state.selectedId;
    const node = $("customer-state");
    const presence = (id && state.presence.get(id)) || { online: false, typingUntil: 0 };
    const typing = presence.online && presence.typingUntil > Date.now();
    node.setAttribute("data-online", presence.online ? "true" : "false");
    node.setAttribute("data-typing", typing ? "true" : "false");
    $("customer-state-text").textContent = typing ? "Customer is typing…" : presence.online ? "Customer online" : "Customer offline";
  }

  function setTyping(id, typing) {
    const presence = state.presence.get(id);
    if (!presence) return;
    presence.typingUntil = typing ? Date.now() + TYPING_SHOWN_MS : 0;
    if (id === state.selectedId) renderCustomerState();
  }

  function roleLabel(message) {
    switch (message.role) {
      case "user":
        return "Customer";
      case "assistant":
        return "Assistant";
      case "agent":
        return state.agent && message.agent_name === state.agent.name ? asText(message.agent_name) + " (you)" : asText(message.agent_name) || "Agent";
      default:
        return "System";
    }
  }

  function sourceList(sources) {
    const list = Array.isArray(sources) ? sources.filter((s) => s && typeof s === "object" && (s.title || s.id)) : [];
    if (!list.length) return null;
    return el(
      "ul",
      { class: "sources", "data-testid": "ac-sources", "aria-label": "Sources" },
      list.map((source) => {
        const label = asText(source.title) || asText(source.id);
        const link = isHttpUrl(source.url)
          ? el("a", { href: source.url.trim(), target: "_blank", rel: "noopener", "data-testid": "ac-source", text: label })
          : el("span", { "data-testid": "ac-source", text: label });
        const score = typeof source.score === "number" && source.score ? el("span", { class: "score", text: source.score.toFixed(2) }) : null;
        return el("li", {}, [link, score]);
      })
    );
  }

  function messageNode(message) {
    const role = ["user", "assistant", "agent", "system"].includes(message.role) ? message.role : "system";
    const node = el("article", {
      class: "msg msg-" + role,
      "data-testid": "ac-transcript-message",
      "data-role": role,
      "data-message-id": asText(message.id),
    });
    node.append(
      el("div", { class: "msg-head" }, [
        el("span", { class: "who-label", text: roleLabel(message) }),
        el("time", { datetime: asText(message.created_at), text: clock(message.created_at) }),
      ]),
      el("div", { class: "msg-body", text: asText(message.text) })
    );
    if (role === "assistant") {
      const kind = asText(message.kind);
      const meta = el("div", { class: "answer-meta" });
      if (kind) meta.append(el("span", { class: "chip chip-kind", "data-kind": kind, "data-testid": "ac-answer-kind", text: KIND_LABELS[kind] || kind }));
      const intent = message.intent && typeof message.intent === "object" ? message.intent : null;
      if (intent && intent.name) {
        const confidence = typeof intent.confidence === "number" ? " · " + intent.confidence.toFixed(2) : "";
        meta.append(el("span", { class: "chip", "data-testid": "ac-answer-intent", title: "Intent and confidence", text: "Intent: " + asText(intent.name) + confidence }));
      } else {
        meta.append(el("span", { class: "chip", "data-testid": "ac-answer-intent", text: "No intent" }));
      }
      if (typeof message.latency_ms === "number" && message.latency_ms > 0) meta.append(el("span", { class: "chip", text: message.latency_ms + " ms" }));
      if (message.handoff) meta.append(el("span", { class: "chip", text: "Asked for handoff" }));
      node.append(meta);
      const sources = sourceList(message.sources);
      if (sources) node.append(sources);
    }
    return node;
  }

  function isNearBottom() {
    const box = $("transcript");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function scrollTranscript() {
    const box = $("transcript");
    box.scrollTop = box.scrollHeight;
  }

  /** Add one message to the transcript once, in created_at order (history and live frames overlap). */
  function appendMessage(message, batch) {
    const id = asText(message.id);
    if (id && state.shownMessages.has(id)) return;
    if (id) state.shownMessages.add(id);
    const box = $("transcript");
    const stick = isNearBottom();
    const node = messageNode(message);
    const created = asText(message.created_at);
    let before = null;
    if (created) {
      for (let child = box.lastElementChild; child; child = child.previousElementSibling) {
        const time = child.querySelector("time");
        if (time && time.getAttribute("datetime") > created) before = child;
        else break;
      }
    }
    box.insertBefore(node, before);
    if (!batch && stick) scrollTranscript();
  }

  function noteItem(note) {
    return el("li", { class: "note", "data-testid": "ac-note", "data-note-id": asText(note.id) }, [
      el("div", { class: "note-head", text: asText(note.agent_name) + " · " + clock(note.created_at) }),
      el("div", { class: "note-text", text: asText(note.text) }),
    ]);
  }

  // ------------------------------------------------------------------------------- actions
  async function act(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (failure) {
      reportError(failure);
    } finally {
      button.disabled = false;
      renderConversationHeader();
    }
  }

  function claim() {
    const id = state.selectedId;
    if (!id) return;
    return act($("claim"), async () => {
      try {
        const conversation = await api("POST", "/v1/agent/conversations/" + encodeURIComponent(id) + "/claim");
        if (id !== state.selectedId) return;
        state.selected = Object.assign({}, state.selected || {}, conversation || {});
        toast("You are now chatting with the customer.");
        $("reply-input").focus();
      } catch (failure) {
        if (failure.code === "already_assigned") toast("Another agent has already claimed this conversation.", "error");
        else throw failure;
        await loadConversation(id, { quiet: true });
      }
      refreshQueue().catch(() => {});
    });
  }

  function lifecycle(action, doneMessage) {
    const id = state.selectedId;
    if (!id) return;
    return act($(action), async () => {
      const conversation = await api("POST", "/v1/agent/conversations/" + encodeURIComponent(id) + "/" + action);
      if (id !== state.selectedId) return;
      if (conversation && typeof conversation === "object" && conversation.status) {
        state.selected = Object.assign({}, state.selected || {}, conversation);
      } else {
        await loadConversation(id, { quiet: true });
      }
      state.activeSuggestion = null;
      markSuggestions(null);
      toast(doneMessage);
      refreshQueue().catch(() => {});
    });
  }

  async function sendReply(event) {
    event.preventDefault();
    const id = state.selectedId;
    const input = $("reply-input");
    const text = input.value.trim();
    if (!id || !text || countChars(text) > MAX_CHARS || input.disabled) return;
    const button = $("reply-send");
    button.disabled = true;
    const body = { text };
    const suggestion = state.activeSuggestion;
    if (suggestion) body.suggestion_id = suggestion.id;
    try {
      const message = await api("POST", "/v1/agent/conversations/" + encodeURIComponent(id) + "/messages", body);
      if (id === state.selectedId) {
        if (message && typeof message === "object") appendMessage(message);
        scrollTranscript();
        if (input.value.trim() === text) input.value = "";
        state.activeSuggestion = null;
        markSuggestions(suggestion ? suggestion.id : null, "sent");
      }
    } catch (failure) {
      if (failure.code === "not_assigned_to_you") {
        toast("This conversation is not assigned to you any more.", "error");
        loadConversation(id, { quiet: true }).catch(() => {});
      } else {
        reportError(failure);
      }
    } finally {
      updateReplyState();
    }
  }

  function updateReplyState() {
    const input = $("reply-input");
    const text = input.value;
    const count = countChars(text);
    $("reply-counter").textContent = count.toLocaleString("en-US") + " / " + MAX_CHARS.toLocaleString("en-US");
    $("reply-send").disabled = input.disabled || !text.trim() || count > MAX_CHARS;
    if (state.activeSuggestion && !text.trim()) {
      // The agent cleared the box: whatever they write next is their own reply.
      state.activeSuggestion = null;
      markSuggestions(null);
    }
    const banner = $("suggestion-banner");
    banner.hidden = !state.activeSuggestion;
    if (state.activeSuggestion) $("suggestion-outcome").textContent = text.trim() === state.activeSuggestion.text.trim() ? "sent as is" : "edited";
  }

  function updateNoteState() {
    const input = $("note-input");
    $("note-add").disabled = input.disabled || !input.value.trim();
  }

  async function addNote(event) {
    event.preventDefault();
    const id = state.selectedId;
    const input = $("note-input");
    const text = input.value.trim();
    if (!id || !text) return;
    const button = $("note-add");
    button.disabled = true;
    try {
      const note = await api("POST", "/v1/agent/conversations/" + encodeURIComponent(id) + "/notes", { text });
      if (id === state.selectedId && note) {
        // The live "note" frame may have added it already.
        if (!document.querySelector('#notes [data-note-id="' + CSS.escape(asText(note.id)) + '"]')) $("notes").append(noteItem(note));
        input.value = "";
      }
    } catch (failure) {
      reportError(failure);
    } finally {
      updateNoteState();
    }
  }

  let lastTyping = 0;
  function agentTyping() {
    const now = Date.now();
    if (!state.selectedId || now - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = now;
    sendFrame({ type: "typing", conversation_id: state.selectedId });
  }

  // ------------------------------------------------------------------------------- suggestions
  async function loadSuggestions() {
    const id = state.selectedId;
    if (!id) return;
    const button = $("suggestions-load");
    button.disabled = true;
    const box = $("suggestions");
    box.setAttribute("aria-busy", "true");
    box.replaceChildren(el("p", { class: "muted small", "data-testid": "ac-suggestions-loading" }, [el("span", { class: "spinner", "aria-hidden": "true" }), " Reading the knowledge base…"]));
    try {
      const data = await api("POST", "/v1/agent/conversations/" + encodeURIComponent(id) + "/suggestions");
      if (id !== state.selectedId) return;
      state.suggestions = data && Array.isArray(data.suggestions) ? data.suggestions.slice(0, 3) : [];
      state.activeSuggestion = null;
      renderSuggestions(true);
    } catch (failure) {
      if (id === state.selectedId) {
        box.replaceChildren(el("p", { class: "alert alert-error", text: failure.message || "Suggestions are not available." }));
      }
      if (failure.status === 401) return;
    } finally {
      box.removeAttribute("aria-busy");
      button.disabled = false;
      renderConversationHeader();
      updateReplyState();
    }
  }

  function renderSuggestions(loaded) {
    const box = $("suggestions");
    if (!state.suggestions.length) {
      box.replaceChildren(loaded ? el("p", { class: "muted small", text: "No suggestion for the latest message. Write your own reply." }) : "");
      return;
    }
    box.replaceChildren(
      ...state.suggestions.map((suggestion, index) => {
        const kind = asText(suggestion.kind);
        const card = el("article", {
          class: "suggestion",
          "data-testid": "ac-suggestion",
          "data-suggestion-id": asText(suggestion.id),
          "data-kind": kind,
          "aria-label": "Suggestion " + (index + 1),
        });
        card.append(
          el("div", { class: "suggestion-head" }, [
            el("span", { class: "suggestion-kind", text: kind === "generated" ? "Draft by the assistant" : kind === "faq" ? "Curated FAQ answer" : kind || "Suggestion" }),
            kind === "generated" ? el("span", { text: "grounding-checked" }) : null,
          ]),
          el("div", { class: "suggestion-text", "data-testid": "ac-suggestion-text", text: asText(suggestion.text) }),
          sourceList(suggestion.sources),
          el("button", {
            type: "button",
            class: "btn btn-small btn-secondary",
            "data-testid": "ac-suggestion-insert",
            "aria-label": "Insert suggestion " + (index + 1) + " into the reply box",
            text: "Insert",
            onclick: () => insertSuggestion(suggestion),
          })
        );
        return card;
      })
    );
  }

  function insertSuggestion(suggestion) {
    const input = $("reply-input");
    if (input.disabled) {
      toast("Claim the conversation before replying.", "error");
      return;
    }
    input.value = asText(suggestion.text);
    state.activeSuggestion = { id: asText(suggestion.id), text: asText(suggestion.text) };
    markSuggestions(state.activeSuggestion.id, "inserted");
    updateReplyState();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function markSuggestions(activeId, mark) {
    for (const card of document.querySelectorAll("#suggestions .suggestion")) {
      if (activeId && card.getAttribute("data-suggestion-id") === activeId) card.setAttribute("data-state", mark);
      else if (card.getAttribute("data-state") === "inserted") card.removeAttribute("data-state");
    }
  }

  // ------------------------------------------------------------------------------- analytics
  const METRICS = [
    ["conversations", "Conversations", (a) => number(a.conversations), () => "started in the period"],
    ["handoffs", "Handoffs", (a) => number(handoffCount(a)), () => "to a person, all reasons"],
    ["containment_rate", "Containment", (a) => percent(a.containment_rate), () => "closed without a human"],
    ["handoff_rate", "Handoff rate", (a) => percent(a.handoff_rate), () => "conversations handed to an agent"],
    ["feedback_ratio", "Positive feedback", (a) => percent(a.feedback && a.feedback.ratio), (a) => number(a.feedback && a.feedback.up) + " up · " + number(a.feedback && a.feedback.down) + " down"],
    ["suggestion_use_rate", "Suggestion use", (a) => percent(a.suggestions && a.suggestions.use_rate), (a) => number(a.suggestions && a.suggestions.shown) + " shown"],
    ["latency_p50", "Latency p50", (a) => (a.latency_ms && typeof a.latency_ms.p50 === "number" ? number(Math.round(a.latency_ms.p50)) + " ms" : "–"), () => "per answer"],
    ["latency_p95", "Latency p95", (a) => (a.latency_ms && typeof a.latency_ms.p95 === "number" ? number(Math.round(a.latency_ms.p95)) + " ms" : "–"), () => "per answer"],
  ];

  function handoffCount(a) {
    return Object.values(a.handoff_reasons || {}).reduce((sum, count) => sum + (Number(count) || 0), 0);
  }

  function rawMetric(a, key) {
    const feedback = a.feedback || {};
    const suggestions = a.suggestions || {};
    const latency = a.latency_ms || {};
    const values = {
      conversations: a.conversations,
      handoffs: handoffCount(a),
      containment_rate: a.containment_rate,
      handoff_rate: a.handoff_rate,
      feedback_ratio: feedback.ratio,
      feedback_up: feedback.up,
      feedback_down: feedback.down,
      suggestion_use_rate: suggestions.use_rate,
      suggestions_shown: suggestions.shown,
      suggestions_sent: suggestions.sent,
      suggestions_edited: suggestions.edited,
      suggestions_ignored: suggestions.ignored,
      latency_p50: latency.p50,
      latency_p95: latency.p95,
    };
    const value = values[key];
    return typeof value === "number" && Number.isFinite(value) ? String(value) : "";
  }

  function metricCard(a, [key, label, format, detail]) {
    return el("div", { class: "metric", "data-testid": "ac-metric", "data-metric": key, "data-value": rawMetric(a, key) }, [
      el("div", { class: "metric-label", text: label }),
      el("div", { class: "metric-value", text: format(a) }),
      el("div", { class: "metric-detail", text: detail(a) }),
    ]);
  }

  /** A bar's filled part. Its width is set through CSSOM (element.style), which the console's CSP
   *  (style-src without 'unsafe-inline') allows; a style="" attribute would be a CSP violation. */
  function barFill(share) {
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = (share * 100).toFixed(1) + "%";
    return fill;
  }

  function bars(target, entries, labeler, metricPrefix) {
    const total = entries.reduce((sum, [, count]) => sum + (Number(count) || 0), 0);
    if (!entries.length) {
      target.replaceChildren(el("p", { class: "muted small", text: "Nothing in this period." }));
      return;
    }
    target.replaceChildren(
      ...entries.map(([key, count]) => {
        const share = total ? (Number(count) || 0) / total : 0;
        return el(
          "div",
          { class: "bar-row", "data-testid": "ac-metric", "data-metric": metricPrefix + asText(key), "data-value": String(Number(count) || 0) },
          [
            el("span", { text: labeler(key) }),
            el("span", { class: "num", text: number(Number(count) || 0) + (total ? " · " + Math.round(share * 100) + "%" : "") }),
            el("span", { class: "bar", "aria-hidden": "true" }, [barFill(share)]),
          ]
        );
      })
    );
  }

  let csvUrl = null;

  async function loadAnalytics() {
    if (!state.agent || state.agent.role !== "admin") return;
    const days = $("analytics-days").value;
    const error = $("analytics-error");
    const refresh = $("analytics-refresh");
    refresh.disabled = true;
    try {
      const a = await api("GET", "/v1/analytics?days=" + encodeURIComponent(days));
      error.hidden = true;
      const period = $("analytics-days").selectedOptions[0];
      $("analytics-period").textContent = (period ? period.textContent : "") + " · updated " + new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      $("metrics").replaceChildren(...METRICS.map((spec) => metricCard(a, spec)));
      const reasons = Object.entries(a.handoff_reasons || {}).sort((x, y) => y[1] - x[1]);
      bars($("breakdown-reasons"), reasons, reasonLabel, "handoff_reason:");
      const kinds = Object.entries(a.answer_kinds || {}).sort((x, y) => y[1] - x[1]);
      bars($("breakdown-kinds"), kinds, (k) => KIND_LABELS[k] || k, "answer_kind:");
      const f = a.feedback || {};
      bars(
        $("breakdown-feedback"),
        [
          ["up", f.up || 0],
          ["down", f.down || 0],
        ],
        (k) => (k === "up" ? "Thumbs up" : "Thumbs down"),
        "feedback_"
      );
      const s = a.suggestions || {};
      bars(
        $("breakdown-suggestions"),
        [
          ["sent", s.sent || 0],
          ["edited", s.edited || 0],
          ["ignored", s.ignored || 0],
        ],
        (k) => ({ sent: "Sent as is", edited: "Edited, then sent", ignored: "Ignored" })[k] || k,
        "suggestions_"
      );
      const rows = Array.isArray(a.top_unanswered) ? a.top_unanswered : [];
      $("unanswered").replaceChildren(
        ...(rows.length
          ? rows.map((row) =>
              el("tr", { "data-testid": "ac-unanswered-row" }, [
                el("td", { text: asText(row.text) }),
                el("td", { text: row.kind === "thumbs_down" || row.kind === "down" ? "Thumbs down" : KIND_LABELS[row.kind] || asText(row.kind) }),
                el("td", { class: "num", text: number(row.count) }),
              ])
            )
          : [el("tr", {}, [el("td", { colspan: "3", class: "muted", text: "No unanswered or thumbs-down question in this period." })])])
      );
    } catch (failure) {
      if (failure.status === 401) return;
      error.textContent = failure.message || "Analytics could not be loaded.";
      error.hidden = false;
    } finally {
      refresh.disabled = false;
    }
    loadCsv(days).catch(() => {});
  }

  /** The CSV needs the agent token, so it is fetched here and offered as a blob link. */
  async function loadCsv(days) {
    const link = $("analytics-csv");
    const response = await fetch("/v1/analytics/unanswered.csv?days=" + encodeURIComponent(days), {
      headers: { Authorization: "Bearer " + state.token },
    });
    if (!response.ok) {
      link.setAttribute("aria-disabled", "true");
      return;
    }
    const blob = await response.blob();
    if (csvUrl) URL.revokeObjectURL(csvUrl);
    csvUrl = URL.createObjectURL(new Blob([blob], { type: "text/csv" }));
    link.href = csvUrl;
    link.setAttribute("aria-disabled", "false");
  }

  // ------------------------------------------------------------------------------- wiring
  function wire() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.getAttribute("data-view")));
    $("claim").addEventListener("click", claim);
    $("return").addEventListener("click", () => lifecycle("return", "The conversation is back with the assistant."));
    $("close").addEventListener("click", () => lifecycle("close", "The conversation is closed."));
    $("reply-form").addEventListener("submit", sendReply);
    const reply = $("reply-input");
    reply.addEventListener("input", () => {
      updateReplyState();
      if (reply.value.trim()) agentTyping();
    });
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("reply-form").requestSubmit();
      }
    });
    $("suggestion-discard").addEventListener("click", () => {
      reply.value = "";
      state.activeSuggestion = null;
      markSuggestions(null);
      updateReplyState();
      reply.focus();
    });
    $("suggestions-load").addEventListener("click", loadSuggestions);
    $("note-form").addEventListener("submit", addNote);
    $("note-input").addEventListener("input", updateNoteState);
    $("live-load").addEventListener("click", loadLive);
    $("analytics-refresh").addEventListener("click", loadAnalytics);
    $("analytics-days").addEventListener("change", loadAnalytics);
    $("analytics-csv").addEventListener("click", (event) => {
      if ($("analytics-csv").getAttribute("aria-disabled") === "true") event.preventDefault();
    });
    // Waiting times and typing indicators age without any frame arriving.
    setInterval(() => {
      for (const node of document.querySelectorAll(".queue-item .age")) node.textContent = ago(node.getAttribute("data-since"));
      renderCustomerState();
    }, 1000 * 5);
  }

  function boot() {
    wire();
    const saved = session.load();
    if (!saved) {
      showLogin("");
      return;
    }
    state.token = saved.token;
    // Check the stored token before showing anything: it may have expired or the server's key changed.
    api("GET", "/v1/agent/me").then(
      (me) => {
        useLimits(me);
        const agent = me && me.agent ? me.agent : me;
        start(saved.token, agent && agent.id ? agent : saved.agent, saved.expires_at);
      },
      (failure) => {
        if (failure.status !== 401) start(saved.token, saved.agent, saved.expires_at);
      }
    );
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot, { once: true });
  else boot();
})();
