// The client's state, in one place, and a tiny event bus so the panels can follow each other.

import { PROVIDERS } from "./util.js";

export const state = {
  user: null,
  usage: null, // GET /api/usage/free
  keys: Object.fromEntries(PROVIDERS.map((p) => [p, []])), // provider -> [Key]
  keysLoaded: false,
  models: {}, // `${provider}:${keyId}` -> ModelList
  threads: [],
  nextCursor: null,
  current: null, // {thread, messages} of the open thread, or null on the new-chat screen
  streaming: null, // {controller, threadId, stopped}
};

export function resetState() {
  state.user = null;
  state.usage = null;
  state.keys = Object.fromEntries(PROVIDERS.map((p) => [p, []]));
  state.keysLoaded = false;
  state.models = {};
  state.threads = [];
  state.nextCursor = null;
  state.current = null;
  state.streaming = null;
}

export function activeKeys(provider) {
  return (state.keys[provider] || []).filter((key) => key.status === "active");
}

export function hasAnyActiveKey() {
  return PROVIDERS.some((p) => activeKeys(p).length > 0);
}

const bus = new EventTarget();
export const on = (name, handler) => bus.addEventListener(name, (event) => handler(event.detail));
export const emit = (name, detail) => bus.dispatchEvent(new CustomEvent(name, { detail }));
