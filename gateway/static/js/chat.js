// Threads (list, open, rename, delete), the new-chat setup, and streaming replies.

import { api, ApiError, del, get, patch, post } from "./api.js";
import { confirmAction, renameDialog, toast } from "./dialogs.js";
import { openKeys } from "./keys.js";
import { renderMarkdownInto } from "./markdown.js";
import { readEvents } from "./sse.js";
import { activeKeys, on, state } from "./state.js";
import { freeAvailable, loadUsage, markExhausted, markUnverified, renderBanners } from "./usage.js";
import {
  $, clearFormErrors, el, formatAge, formatDateTime, formatLocalTime, formatNumber, newRequestId,
  PROVIDERS, providerInfo, providerName, show, showFormErrors,
} from "./util.js";

const PAGE_SIZE = 30;
const LAST_CHOICE = "keylm.lastChoice";
const SETUP_FIELDS = {
  provider: "setup-provider",
  model: "setup-model",
  keyId: "setup-key",
  systemPrompt: "setup-system",
  "settings.temperature": "setup-temperature",
  "settings.maxTokens": "setup-max-tokens",
};

// ---------------------------------------------------------------------------------------------
// Thread list
// ---------------------------------------------------------------------------------------------

export async function loadThreads({ more = false } = {}) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (more && state.nextCursor) params.set("cursor", state.nextCursor);
  const body = await get(`/api/threads?${params}`);
  const page = body.threads || [];
  state.threads = more ? [...state.threads, ...page.filter((t) => !state.threads.some((s) => s.id === t.id))] : page;
  state.nextCursor = body.nextCursor || null;
  renderThreadList();
}

function threadTitle(thread) {
  return thread.title || "Untitled chat";
}

function threadModelText(thread) {
  return thread.mode === "free" ? "KeyLM Free" : `${providerName(thread.provider)} · ${thread.model}`;
}

function sortThreads() {
  state.threads.sort((a, b) => (b.updatedAt || "").localeCompare(a.updatedAt || ""));
}

function renderThreadList() {
  sortThreads();
  const list = $("#thread-list");
  const currentId = state.current && state.current.thread.id;
  list.replaceChildren(...state.threads.map((thread) => {
    const title = threadTitle(thread);
    const link = el("a", {
      class: "thread-link",
      href: `#/t/${thread.id}`,
      "aria-current": thread.id === currentId ? "page" : null,
      title: `${title} (${threadModelText(thread)})`,
    },
    el("span", { class: "thread-name" }, title),
    el("span", { class: "thread-sub" }, threadModelText(thread)));
    link.addEventListener("click", () => closeSidebar());
    const rename = el("button", { type: "button", class: "icon-btn small", "aria-label": `Rename ${title}` },
      svgIcon("M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4"));
    rename.addEventListener("click", () => renameThread(thread));
    const remove = el("button", { type: "button", class: "icon-btn small", "aria-label": `Delete ${title}` },
      svgIcon("M5 7h14M10 11v6M14 11v6M7 7l1 13h8l1-13M9 7V4h6v3"));
    remove.addEventListener("click", () => deleteThread(thread));
    return el("li", { class: thread.id === currentId ? "thread-item current" : "thread-item", dataset: { threadId: thread.id } },
      link, el("div", { class: "thread-actions" }, rename, remove));
  }));
  show($("#thread-empty"), state.threads.length === 0);
  show($("#thread-more"), Boolean(state.nextCursor));
}

function svgIcon(path) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", path);
  svg.append(p);
  return svg;
}

function rememberThread(thread) {
  const index = state.threads.findIndex((t) => t.id === thread.id);
  if (index === -1) state.threads.unshift(thread);
  else state.threads[index] = { ...state.threads[index], ...thread };
  if (state.current && state.current.thread.id === thread.id) {
    state.current.thread = { ...state.current.thread, ...thread };
    renderThreadHeader();
  }
  renderThreadList();
}

function renameThread(thread) {
  renameDialog(thread.title || "", async (title) => {
    const body = await patch(`/api/threads/${thread.id}`, { title });
    rememberThread((body && body.thread) || { ...thread, title });
    toast("Conversation renamed.");
  });
}

async function deleteThread(thread) {
  const ok = await confirmAction({
    title: "Delete this conversation?",
    text: `“${threadTitle(thread)}” and all its messages will be deleted. This cannot be undone.`,
    confirm: "Delete",
  });
  if (!ok) return;
  try {
    if (state.streaming && state.streaming.threadId === thread.id) stopStreaming();
    await del(`/api/threads/${thread.id}`);
  } catch (error) {
    if (error.status !== 404) {
      toast(error.message, "error");
      return;
    }
  }
  state.threads = state.threads.filter((t) => t.id !== thread.id);
  renderThreadList();
  if (state.current && state.current.thread.id === thread.id) {
    history.replaceState(null, "", "/");
    showSetup();
  }
  toast("Conversation deleted.");
}

// ---------------------------------------------------------------------------------------------
// Routing: "#/t/<id>" is an open thread, anything else is the new-chat screen.
// ---------------------------------------------------------------------------------------------

export function route() {
  const match = location.hash.match(/^#\/t\/([A-Za-z0-9_-]{1,64})$/);
  if (match) {
    if (state.current && state.current.thread.id === match[1]) return;
    openThread(match[1]);
  } else if (state.current || $("#setup").hidden) {
    showSetup();
  }
}

let openToken = 0;

export async function openThread(threadId) {
  const token = ++openToken;
  hideAppError();
  show($("#setup"), false);
  $("#messages").replaceChildren();
  show($("#thread-info"), false);
  show($("#thread-loading"), true);
  try {
    const body = await get(`/api/threads/${threadId}`);
    if (token !== openToken) return;
    state.current = { thread: body.thread, messages: body.messages || [] };
    rememberThread(body.thread);
    renderThread();
  } catch (error) {
    if (token !== openToken) return;
    if (error.status === 404) {
      toast("That conversation does not exist any more.", "error");
      history.replaceState(null, "", "/");
      showSetup();
    } else if (error.status !== 401) {
      showAppError(error.message);
    }
  } finally {
    if (token === openToken) show($("#thread-loading"), false);
  }
}

function renderThreadHeader() {
  const current = state.current;
  const badges = $("#chat-badges");
  if (!current) {
    $("#chat-title").textContent = "New chat";
    badges.replaceChildren();
    $("#chat-usage").textContent = "";
    document.title = "KeyLM";
    return;
  }
  const { thread } = current;
  $("#chat-title").textContent = threadTitle(thread);
  document.title = `${threadTitle(thread)} · KeyLM`;
  badges.replaceChildren(...[
    thread.mode === "free" ? el("span", { class: "badge badge-free" }, "KeyLM Free") : null,
    el("span", { class: "badge badge-provider", title: "Provider (locked for this thread)" },
      svgIcon("M7 11V8a5 5 0 0 1 10 0v3M6 11h12v9H6z"), providerName(thread.provider) || "—"),
    el("span", { class: "badge badge-model", title: "Model (locked for this thread)" }, thread.model || "—"),
  ].filter(Boolean));
  badges.setAttribute("aria-label", `Locked to ${providerName(thread.provider)} model ${thread.model}`);
  const total = thread.usage && thread.usage.totalTokens;
  $("#chat-usage").textContent = typeof total === "number" && total > 0 ? `${formatNumber(total)} tokens used` : "";
}

function renderThread() {
  const { thread, messages } = state.current;
  renderThreadHeader();
  renderThreadList();
  renderBanners();
  const info = [];
  if (thread.systemPrompt) info.push(el("details", { class: "system-prompt" },
    el("summary", {}, "System prompt"), el("p", {}, thread.systemPrompt)));
  const settings = thread.settings || {};
  const settingText = [
    settings.temperature !== undefined && settings.temperature !== null ? `temperature ${settings.temperature}` : "",
    settings.maxTokens ? `max ${formatNumber(settings.maxTokens)} tokens` : "",
    settings.topP !== undefined && settings.topP !== null ? `top-p ${settings.topP}` : "",
  ].filter(Boolean).join(" · ");
  if (settingText) info.push(el("p", { class: "settings-line" }, `Settings: ${settingText}`));
  info.push(el("p", { class: "settings-line" }, `Started ${formatDateTime(thread.createdAt)}`));
  $("#thread-info").replaceChildren(...info);
  show($("#thread-info"), true);

  const list = $("#messages");
  const live = state.streaming && state.streaming.threadId === thread.id ? state.streaming : null;
  const nodes = [];
  for (const message of messages) {
    if (live && (message.id === live.userId || message.id === live.assistantId)) continue;
    nodes.push(message.role === "user" ? userMessageEl(message) : assistantMessageEl(message));
  }
  if (live) nodes.push(live.userEl, live.assistantEl);
  list.replaceChildren(...nodes);
  if (!messages.length && !live) {
    list.append(el("li", { class: "empty-thread muted" }, "No messages yet. Say hello below."));
  }
  setComposerMode();
  scrollToBottom(true);
  focusComposer();
}

/** Focus the message box, except on touch screens, where that would pop the keyboard up every time. */
function focusComposer() {
  if (window.matchMedia("(pointer: fine)").matches) $("#composer-input").focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

function userMessageEl(message) {
  return el("li", { class: "msg msg-user", dataset: { role: "user", messageId: message.id || "" } },
    el("div", { class: "bubble" }, message.content || ""),
    el("div", { class: "msg-meta" }));
}

function assistantMessageEl(message) {
  const body = el("div", { class: "msg-body markdown" });
  const li = el("li", {
    class: "msg msg-assistant",
    dataset: { role: "assistant", messageId: message.id || "", status: message.status || "complete" },
    "aria-label": "Reply",
  },
  el("div", { class: "avatar", "aria-hidden": "true" }, "K"),
  el("div", { class: "msg-main" }, body, el("div", { class: "msg-meta" })));
  renderMarkdownInto(body, message.content || "");
  updateAssistantMeta(li, {
    status: message.status,
    model: message.model,
    usage: message.usage,
    error: message.error,
    finishReason: message.finishReason,
  });
  return li;
}

const STATUS_LABELS = {
  streaming: "Generating…",
  stopped: "Stopped",
  failed: "Failed",
};

/** The line under a reply: which model answered, its tokens, and how it ended. */
function updateAssistantMeta(li, { status, model, usage, error, finishReason, onRetry }) {
  li.dataset.status = status || "complete";
  li.classList.toggle("is-streaming", status === "streaming");
  const meta = li.querySelector(".msg-meta");
  const parts = [];
  if (model) parts.push(el("span", { class: "meta-model", title: "Model that answered" }, model));
  if (usage && (usage.promptTokens != null || usage.outputTokens != null || usage.totalTokens != null)) {
    parts.push(el("span", { class: "meta-tokens", "aria-label": "Token usage" },
      `Prompt ${formatNumber(usage.promptTokens ?? 0)} · Output ${formatNumber(usage.outputTokens ?? 0)} · Total ${formatNumber(usage.totalTokens ?? 0)} tokens`));
  }
  if (status && STATUS_LABELS[status]) {
    parts.push(el("span", { class: `meta-status status-${status}` }, STATUS_LABELS[status]));
  }
  if (finishReason === "length" || finishReason === "max_tokens") {
    parts.push(el("span", { class: "meta-status" }, "Cut at the token limit"));
  }
  if (error && error.message) parts.push(el("span", { class: "meta-error", role: "alert" }, error.message));
  if (onRetry) {
    const retry = el("button", { type: "button", class: "btn btn-ghost small retry-btn", "aria-label": "Retry this message" }, "Retry");
    retry.addEventListener("click", onRetry, { once: true });
    parts.push(retry);
  }
  meta.replaceChildren(...parts);
}

function markUserFailed(li, error, onRetry) {
  li.classList.add("not-sent");
  const meta = li.querySelector(".msg-meta");
  const parts = [el("span", { class: "meta-error", role: "alert" }, `Not sent: ${error.message}`)];
  if (onRetry) {
    const retry = el("button", { type: "button", class: "btn btn-ghost small retry-btn", "aria-label": "Retry this message" }, "Retry");
    retry.addEventListener("click", onRetry, { once: true });
    parts.push(retry);
  }
  if (error.code === "free_quota_exhausted" || error.code === "key_not_active") {
    const keys = el("button", { type: "button", class: "link" }, "Connect a key");
    keys.addEventListener("click", () => openKeys());
    parts.push(keys);
  }
  meta.replaceChildren(...parts);
}

function scrollToBottom(force = false) {
  const scroller = $("#scroller");
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  if (force || nearBottom) scroller.scrollTop = scroller.scrollHeight;
}

// ---------------------------------------------------------------------------------------------
// Sending and streaming
// ---------------------------------------------------------------------------------------------

function scheduleRender(stream) {
  if (stream.renderQueued) return;
  stream.renderQueued = true;
  const run = () => {
    stream.renderQueued = false;
    if (stream.terminal) return; // the final render (highlighted) has already happened
    const body = stream.assistantEl.querySelector(".msg-body");
    renderMarkdownInto(body, stream.text, { highlight: false });
    scrollToBottom();
  };
  // A frame when the tab is visible; a timer otherwise (frames pause in background tabs).
  if (document.visibilityState === "visible") requestAnimationFrame(run);
  else setTimeout(run, 50);
}

function finalRender(stream) {
  renderMarkdownInto(stream.assistantEl.querySelector(".msg-body"), stream.text, { highlight: true });
  scrollToBottom();
}

async function sendMessage(thread, content, clientRequestId = newRequestId()) {
  const emptyNote = $("#messages .empty-thread");
  if (emptyNote) emptyNote.remove();
  const stream = {
    threadId: thread.id,
    free: thread.mode === "free",
    controller: new AbortController(),
    clientRequestId,
    content,
    text: "",
    usage: null,
    // Free threads may be answered by a fallback model: show a model only once the server names it.
    model: thread.mode === "free" ? null : thread.model,
    stopped: false,
    created: false,
    terminal: false,
    userEl: userMessageEl({ content }),
    assistantEl: assistantMessageEl({ status: "streaming", content: "", model: null }),
  };
  stream.assistantEl.querySelector(".msg-body").append(el("span", { class: "typing", "aria-label": "Waiting for the reply" },
    el("span"), el("span"), el("span")));
  $("#messages").append(stream.userEl, stream.assistantEl);
  scrollToBottom(true);
  state.streaming = stream;
  setComposerMode();
  const retry = () => {
    stream.userEl.remove();
    stream.assistantEl.remove();
    const current = state.current && state.current.thread.id === thread.id ? state.current.thread : thread;
    sendMessage(current, content, clientRequestId);
  };

  try {
    const response = await api("POST", `/api/threads/${thread.id}/messages`, {
      body: { content, clientRequestId },
      signal: stream.controller.signal,
      raw: true,
    });
    if (!(response.headers.get("Content-Type") || "").includes("text/event-stream")) {
      throw new ApiError({ status: response.status, code: "unexpected_response", message: "The server answered without a reply stream.", retryable: true });
    }
    for await (const { event, data } of readEvents(response)) {
      handleStreamEvent(stream, event, data, retry);
      if (stream.terminal) break;
    }
    if (!stream.terminal) {
      throw new ApiError({ code: "stream_cut", message: "The connection closed before the reply finished.", retryable: true });
    }
  } catch (error) {
    if (stream.stopped || (error && error.name === "AbortError")) {
      finishStopped(stream);
    } else if (!stream.created) {
      stream.assistantEl.remove();
      if (error.code === "free_quota_exhausted") markExhausted(error);
      if (error.code === "email_not_verified") markUnverified();
      const canRetry = error.code !== "free_quota_exhausted" && error.status !== 404 && error.status !== 401;
      markUserFailed(stream.userEl, error, canRetry ? retry : null);
    } else {
      finalRender(stream);
      updateAssistantMeta(stream.assistantEl, {
        status: "failed", model: stream.model, usage: stream.usage, error, onRetry: retry,
      });
    }
  } finally {
    if (state.streaming === stream) state.streaming = null;
    setComposerMode();
    afterSend(stream);
  }
}

function handleStreamEvent(stream, event, data, retry) {
  switch (event) {
    case "message.created": {
      stream.created = true;
      stream.userId = data.userMessage && data.userMessage.id;
      stream.assistantId = data.assistantMessage && data.assistantMessage.id;
      stream.userEl.dataset.messageId = stream.userId || "";
      stream.assistantEl.dataset.messageId = stream.assistantId || "";
      if (data.assistantMessage && data.assistantMessage.model) stream.model = data.assistantMessage.model;
      updateAssistantMeta(stream.assistantEl, { status: "streaming", model: stream.model });
      break;
    }
    case "delta": {
      if (data && typeof data.text === "string" && data.text) {
        stream.text += data.text;
        scheduleRender(stream);
      }
      break;
    }
    case "usage": {
      stream.usage = data;
      updateAssistantMeta(stream.assistantEl, { status: "streaming", model: stream.model, usage: stream.usage });
      break;
    }
    case "done": {
      const message = (data && data.message) || {};
      stream.terminal = true;
      if (typeof message.content === "string") stream.text = message.content;
      stream.model = message.model || stream.model;
      stream.usage = message.usage || stream.usage;
      finalRender(stream);
      updateAssistantMeta(stream.assistantEl, {
        status: message.status || "complete", model: stream.model, usage: stream.usage, finishReason: message.finishReason,
      });
      break;
    }
    case "error": {
      const message = (data && data.message) || {};
      const error = (data && data.error) || { message: "The reply failed." };
      stream.terminal = true;
      if (typeof message.content === "string") stream.text = message.content;
      stream.model = message.model || stream.model;
      stream.usage = message.usage || stream.usage;
      finalRender(stream);
      if (error.code === "free_quota_exhausted") markExhausted(error);
      const status = message.status || "failed";
      updateAssistantMeta(stream.assistantEl, {
        status, model: stream.model, usage: stream.usage, error,
        onRetry: status === "failed" ? retry : null,
      });
      break;
    }
    default:
      break; // unknown events are for newer clients
  }
}

function finishStopped(stream) {
  stream.terminal = true;
  stream.assistantEl.querySelector(".typing")?.remove();
  finalRender(stream);
  updateAssistantMeta(stream.assistantEl, { status: "stopped", model: stream.model, usage: stream.usage });
}

export function stopStreaming() {
  const stream = state.streaming;
  if (!stream) return;
  stream.stopped = true;
  stream.controller.abort();
}

/** After a reply: move the thread to the top, refresh its totals and, for Free, the meter. */
async function afterSend(stream) {
  const thread = state.threads.find((t) => t.id === stream.threadId);
  if (thread) {
    thread.updatedAt = new Date().toISOString();
    renderThreadList();
  }
  const tasks = [];
  if (stream.free) tasks.push(loadUsage().catch(() => {}));
  tasks.push(get(`/api/threads/${stream.threadId}`).then((body) => {
    if (state.current && state.current.thread.id === stream.threadId && !state.streaming) {
      state.current.messages = body.messages || state.current.messages;
    }
    rememberThread(body.thread);
  }).catch(() => {}));
  await Promise.all(tasks);
}

// ---------------------------------------------------------------------------------------------
// The new-chat setup: KeyLM Free, or a provider with an active key and one of its models.
// ---------------------------------------------------------------------------------------------

export function showSetup() {
  openToken++;
  state.current = null;
  hideAppError();
  renderThreadHeader();
  renderThreadList();
  $("#messages").replaceChildren();
  show($("#thread-info"), false);
  show($("#thread-loading"), false);
  show($("#setup"), true);
  clearFormErrors($("#setup-form"));
  refreshSetupProviders();
  setComposerMode();
  focusComposer();
}

function lastChoice() {
  try {
    return JSON.parse(localStorage.getItem(LAST_CHOICE) || "{}") || {};
  } catch {
    return {};
  }
}

function saveChoice(choice) {
  try {
    localStorage.setItem(LAST_CHOICE, JSON.stringify({ ...lastChoice(), ...choice }));
  } catch {
    // private mode: no memory of the last choice, which is fine
  }
}

export function refreshSetupProviders() {
  const select = $("#setup-provider");
  const previous = select.value || lastChoice().provider || "";
  const freeModel = state.usage && state.usage.model ? ` (${state.usage.model})` : "";
  const options = [el("option", { value: "free" },
    `KeyLM Free${freeModel}${freeAvailable() ? "" : " — used up today"}`)];
  for (const provider of PROVIDERS) {
    const ready = activeKeys(provider).length > 0;
    options.push(el("option", { value: provider }, ready ? `${providerName(provider)} (your key)` : `${providerName(provider)} — connect a key`));
  }
  select.replaceChildren(...options);
  const firstActive = PROVIDERS.find((p) => activeKeys(p).length > 0);
  let choice = previous;
  if (!choice || (choice !== "free" && !PROVIDERS.includes(choice))) choice = "free";
  if (choice === "free" && !freeAvailable() && firstActive) choice = firstActive;
  if (choice !== "free" && !activeKeys(choice).length && previous !== choice) choice = "free";
  select.value = choice;
  onProviderChange();
}

function onProviderChange() {
  const provider = $("#setup-provider").value;
  const hint = $("#setup-provider-hint");
  clearFormErrors($("#setup-form"));
  show($("#setup-key-row"), false);
  show($("#setup-model-row"), false);
  if (provider === "free") {
    const usage = state.usage;
    if (usage && usage.available === false) {
      hint.replaceChildren(`Used up for today; it resets at ${formatLocalTime(usage.resetsAt)}. `, keysLink("Connect your own key"), " to keep chatting.");
    } else if (usage) {
      hint.replaceChildren(`The shared free model ${usage.model || ""}: ${usage.user ? usage.user.remaining : "?"} free requests left today. No key needed.`);
    } else {
      hint.replaceChildren("The shared free model. No key needed.");
    }
  } else {
    saveChoice({ provider });
    const keys = activeKeys(provider);
    if (!keys.length) {
      hint.replaceChildren(`Add your ${providerName(provider)} key to choose a model. `, keysLink("Add a key", provider));
    } else {
      const extra = (providerInfo(provider) || {}).hint;
      hint.replaceChildren(`Billed to your ${providerName(provider)} key.${extra ? ` ${extra}` : ""}`);
      const keySelect = $("#setup-key");
      const previousKey = keySelect.value;
      keySelect.replaceChildren(...keys.map((key) =>
        el("option", { value: key.id }, key.label ? `${key.label} (${key.keyMask})` : key.keyMask)));
      if (keys.some((k) => k.id === previousKey)) keySelect.value = previousKey;
      show($("#setup-key-row"), keys.length > 1);
      show($("#setup-model-row"), true);
      loadModels(provider, keySelect.value);
    }
  }
  if (provider === "free") saveChoice({ provider });
  renderBanners();
  setComposerMode();
}

function keysLink(text, provider) {
  const button = el("button", { type: "button", class: "link" }, text);
  button.addEventListener("click", () => openKeys(provider));
  return button;
}

let modelsToken = 0;

async function loadModels(provider, keyId, { refresh = false } = {}) {
  const token = ++modelsToken;
  const select = $("#setup-model");
  const meta = $("#setup-model-meta");
  const refreshButton = $("#setup-model-refresh");
  const cached = state.models[`${provider}:${keyId}`];
  if (cached && !refresh) {
    renderModels(cached);
    return;
  }
  select.disabled = true;
  refreshButton.disabled = true;
  refreshButton.setAttribute("aria-busy", "true");
  meta.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), refresh ? " Refreshing the model list…" : " Loading models…");
  try {
    const list = refresh
      ? await post(`/api/providers/${provider}/models/refresh`, { keyId })
      : await get(`/api/providers/${provider}/models?${new URLSearchParams({ keyId })}`);
    if (token !== modelsToken) return;
    state.models[`${provider}:${keyId}`] = list;
    renderModels(list);
    if (refresh) toast(list.stale ? "Could not refresh; showing the saved list." : "Model list refreshed.", list.stale ? "error" : "info");
  } catch (error) {
    if (token !== modelsToken) return;
    const old = state.models[`${provider}:${keyId}`];
    if (old) renderModels(old);
    else select.replaceChildren();
    meta.replaceChildren(el("span", { class: "meta-error" }, error.message));
  } finally {
    if (token === modelsToken) {
      select.disabled = false;
      refreshButton.disabled = false;
      refreshButton.removeAttribute("aria-busy");
      setComposerMode();
    }
  }
}

function renderModels(list) {
  const select = $("#setup-model");
  const provider = list.provider || $("#setup-provider").value;
  const models = list.models || [];
  const previous = select.value || (lastChoice().models || {})[provider];
  select.replaceChildren(...models.map((model) => el("option", { value: model.id },
    model.displayName && model.displayName !== model.id ? `${model.displayName} (${model.id})` : model.id)));
  if (models.some((m) => m.id === previous)) select.value = previous;
  select.disabled = false;
  const meta = $("#setup-model-meta");
  const parts = [`${models.length} model${models.length === 1 ? "" : "s"} · updated ${formatAge(list.fetchedAt)}`];
  const nodes = [el("span", { title: `Fetched ${formatDateTime(list.fetchedAt)}; cached until ${formatDateTime(list.expiresAt)}` }, parts[0])];
  if (list.stale) {
    nodes.push(" ", el("span", { class: "badge badge-stale", title: "The provider could not be reached; this is the last list we saved." }, "Stale"));
  }
  if (!models.length) nodes.push(" · no chat models for this key");
  meta.replaceChildren(...nodes);
  setComposerMode();
}

function setupErrors(error) {
  const form = $("#setup-form");
  showFormErrors(form, error, SETUP_FIELDS);
  const flat = Object.keys((error && error.fields) || {});
  if (flat.some((f) => f === "systemPrompt" || f === "settings")) form.querySelector("details").open = true;
}

async function createThreadFromSetup(firstMessage) {
  const provider = $("#setup-provider").value;
  const body = provider === "free" ? { mode: "free" } : { mode: "byok", provider };
  if (provider !== "free") {
    if (!activeKeys(provider).length) {
      throw new ApiError({ code: "key_not_active", message: `Add your ${providerName(provider)} key first.` });
    }
    const model = $("#setup-model").value;
    if (!model) throw new ApiError({ code: "validation_error", message: "Choose a model first.", details: { fields: { model: ["Choose a model."] } } });
    body.model = model;
    body.keyId = $("#setup-key").value || undefined;
    saveChoice({ provider, models: { ...(lastChoice().models || {}), [provider]: model } });
  }
  const oneLine = firstMessage.replace(/\s+/g, " ").trim();
  body.title = oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
  const systemPrompt = $("#setup-system").value.trim();
  if (systemPrompt) body.systemPrompt = systemPrompt;
  const settings = {};
  const temperature = $("#setup-temperature").value.trim();
  const maxTokens = $("#setup-max-tokens").value.trim();
  const fields = {};
  if (temperature) {
    const t = Number(temperature);
    if (!Number.isFinite(t) || t < 0 || t > 2) fields["settings.temperature"] = ["Use a number from 0 to 2."];
    else settings.temperature = t;
  }
  if (maxTokens) {
    const m = Number(maxTokens);
    if (!Number.isInteger(m) || m < 1) fields["settings.maxTokens"] = ["Use a whole number of at least 1."];
    else settings.maxTokens = m;
  }
  if (Object.keys(fields).length) {
    throw new ApiError({ code: "validation_error", message: "Some settings are invalid.", details: { fields } });
  }
  if (Object.keys(settings).length) body.settings = settings;
  const created = await post("/api/threads", body);
  return created.thread;
}

// ---------------------------------------------------------------------------------------------
// Composer
// ---------------------------------------------------------------------------------------------

export function setComposerMode() {
  const streamingHere = Boolean(state.streaming) &&
    (!state.current || state.current.thread.id === state.streaming.threadId);
  show($("#send-btn"), !streamingHere);
  show($("#stop-btn"), streamingHere);
  const input = $("#composer-input");
  let placeholder = "Message KeyLM…";
  if (state.current) {
    const thread = state.current.thread;
    placeholder = thread.mode === "free" ? "Message KeyLM Free…" : `Message ${thread.model}…`;
  } else {
    const provider = $("#setup-provider").value;
    if (provider && provider !== "free" && !activeKeys(provider).length) {
      placeholder = `Add your ${providerName(provider)} key to chat…`;
    }
  }
  input.placeholder = placeholder;
}

async function onComposerSubmit(event) {
  event.preventDefault();
  const input = $("#composer-input");
  const content = input.value.trim();
  if (!content) return;
  if (state.streaming) {
    toast("Wait for the reply to finish, or stop it first.");
    return;
  }
  const sendButton = $("#send-btn");
  let thread = state.current && state.current.thread;
  if (!thread) {
    if (!$("#thread-loading").hidden) {
      toast("The conversation is still loading.");
      return;
    }
    if ($("#setup").hidden || !$("#setup-provider").value) {
      showSetup(); // never create a thread from a setup the user cannot see
      return;
    }
    clearFormErrors($("#setup-form"));
    sendButton.disabled = true;
    try {
      thread = await createThreadFromSetup(content);
    } catch (error) {
      if (error.status !== 401) setupErrors(error);
      if (error.code === "free_quota_exhausted") markExhausted(error);
      return;
    } finally {
      sendButton.disabled = false;
    }
    openToken++;
    state.current = { thread, messages: [] };
    history.pushState(null, "", `#/t/${thread.id}`);
    show($("#setup"), false);
    $("#messages").replaceChildren();
    rememberThread(thread);
    renderThread();
  }
  input.value = "";
  sendMessage(thread, content);
}

// ---------------------------------------------------------------------------------------------
// Errors, sidebar, wiring
// ---------------------------------------------------------------------------------------------

export function showAppError(message) {
  $("#app-error-text").textContent = message;
  show($("#app-error"), true);
}

function hideAppError() {
  show($("#app-error"), false);
}

function openSidebar() {
  $("#app-view").classList.add("sidebar-open");
  show($("#sidebar-scrim"), true);
  $("#sidebar-open").setAttribute("aria-expanded", "true");
  $("#new-chat").focus();
}

function closeSidebar() {
  if (!$("#app-view").classList.contains("sidebar-open")) return;
  $("#app-view").classList.remove("sidebar-open");
  show($("#sidebar-scrim"), false);
  $("#sidebar-open").setAttribute("aria-expanded", "false");
}

export function initChat() {
  $("#composer").addEventListener("submit", onComposerSubmit);
  if (!(window.CSS && CSS.supports("field-sizing", "content"))) {
    // Browsers without CSS field-sizing: grow the box with its text (CSSOM styles are allowed by the CSP).
    const input = $("#composer-input");
    input.addEventListener("input", () => {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 220)}px`;
    });
  }
  $("#composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      $("#composer").requestSubmit();
    }
  });
  $("#stop-btn").addEventListener("click", stopStreaming);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if ($("#app-view").classList.contains("sidebar-open")) closeSidebar();
    else if (state.streaming) stopStreaming();
  });
  $("#new-chat").addEventListener("click", () => {
    closeSidebar();
    if (location.hash) history.pushState(null, "", "/");
    showSetup();
  });
  $("#thread-more").addEventListener("click", () => loadThreads({ more: true }).catch((e) => toast(e.message, "error")));
  $("#setup-provider").addEventListener("change", onProviderChange);
  $("#setup-key").addEventListener("change", () => loadModels($("#setup-provider").value, $("#setup-key").value));
  $("#setup-model").addEventListener("change", () => {
    const provider = $("#setup-provider").value;
    saveChoice({ models: { ...(lastChoice().models || {}), [provider]: $("#setup-model").value } });
  });
  $("#setup-model-refresh").addEventListener("click", () =>
    loadModels($("#setup-provider").value, $("#setup-key").value, { refresh: true }));
  $("#setup-form").addEventListener("submit", (event) => event.preventDefault());
  $("#app-error-close").addEventListener("click", hideAppError);
  $("#sidebar-open").addEventListener("click", openSidebar);
  $("#sidebar-close").addEventListener("click", closeSidebar);
  $("#sidebar-scrim").addEventListener("click", closeSidebar);
  for (const button of document.querySelectorAll("[data-action=open-keys]")) {
    button.addEventListener("click", () => openKeys());
  }
  window.addEventListener("hashchange", route);
  window.addEventListener("popstate", route);
  on("keys-changed", () => {
    if (!state.current && !$("#setup").hidden) refreshSetupProviders();
    renderBanners();
  });
  on("usage-changed", () => {
    if (!state.current && !$("#setup").hidden) refreshSetupProviders();
  });
}
