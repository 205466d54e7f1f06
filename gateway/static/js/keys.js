// The API-keys dialog: add (validated on submit), list with masks and times, re-validate, revoke.
// The plaintext leaves the form the moment it is submitted and is never shown again.

import { del, get, post } from "./api.js";
import { confirmAction, toast } from "./dialogs.js";
import { emit, on, state } from "./state.js";
import {
  $, clearFormErrors, el, formatAge, formatDateTime, PROVIDERS, providerBadge, providerInfo, providerName,
  providerNames, setProviders, show, showFormErrors,
} from "./util.js";

let currentProvider = "";

const STATUS_TEXT = { active: "Active", invalid: "Invalid", revoked: "Revoked" };

/** Load the provider registry's public list (before anything draws a provider). */
export async function loadProviders() {
  const body = await get("/api/providers");
  setProviders(body.providers || []);
  currentProvider = PROVIDERS[0] || "";
  renderProviderTabs();
  $("#reminder-providers").textContent = providerNames();
}

function renderProviderTabs() {
  $("#provider-tabs").replaceChildren(...PROVIDERS.map((provider) => el(
    "button",
    { type: "button", role: "tab", class: "tab", id: `tab-${provider}`, dataset: { provider }, "aria-controls": "key-panel" },
    providerBadge(provider), providerName(provider),
  )));
}

/** Load every provider's keys (one small call each); a provider that fails keeps its old list. */
export async function loadAllKeys() {
  const results = await Promise.allSettled(
    PROVIDERS.map((p) => get(`/api/providers/${p}/keys`).then((body) => [p, body.keys || []])),
  );
  for (const result of results) {
    if (result.status === "fulfilled") {
      const [provider, keys] = result.value;
      state.keys[provider] = keys;
    }
  }
  state.keysLoaded = true;
  emit("keys-changed");
  const failed = results.find((r) => r.status === "rejected");
  if (failed && failed.reason && failed.reason.status !== 401) throw failed.reason;
}

async function reloadProvider(provider) {
  const body = await get(`/api/providers/${provider}/keys`);
  state.keys[provider] = body.keys || [];
  emit("keys-changed", { provider });
}

function upsertKey(key) {
  const list = state.keys[key.provider] || [];
  const index = list.findIndex((k) => k.id === key.id);
  if (index === -1) list.unshift(key);
  else list[index] = key;
  state.keys[key.provider] = list;
  emit("keys-changed", { provider: key.provider });
}

export function openKeys(provider) {
  const dialog = $("#keys-dialog");
  selectProvider(provider || currentProvider);
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
  reloadProvider(currentProvider).catch(() => {});
}

function selectProvider(provider) {
  currentProvider = provider;
  for (const tab of document.querySelectorAll("#keys-dialog [role=tab]")) {
    const selected = tab.dataset.provider === provider;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  $("#key-panel").setAttribute("aria-labelledby", `tab-${provider}`);
  $("#key-input-label").textContent = `${providerName(provider)} API key`;
  const info = providerInfo(provider) || {};
  $("#key-input").placeholder = info.keyPlaceholder || "";
  const where = $("#key-input-where");
  if (info.keyUrl) {
    where.replaceChildren("Create one at ", el("a", { href: info.keyUrl, target: "_blank", rel: "noopener noreferrer" }, new URL(info.keyUrl).host), ".");
  } else {
    where.replaceChildren();
  }
  const form = $("#key-form");
  clearFormErrors(form);
  $("#key-form-status").textContent = "";
  renderKeyList();
}

function renderKeyList() {
  const list = $("#key-list");
  const keys = state.keys[currentProvider] || [];
  list.replaceChildren(...keys.map(renderKey));
  show($("#key-list-empty"), keys.length === 0);
}

function timeLine(label, value) {
  return value ? el("span", { title: formatDateTime(value) }, `${label} ${formatAge(value)}`) : null;
}

function renderKey(key) {
  const name = key.label ? `${key.label} (${key.keyMask})` : key.keyMask;
  const item = el("li", { class: `key-item status-${key.status}`, dataset: { keyId: key.id }, "aria-label": `Key ${name}` },
    el("div", { class: "key-main" },
      el("code", { class: "key-mask" }, key.keyMask),
      key.label ? el("span", { class: "key-label" }, key.label) : null,
      el("span", { class: `badge badge-${key.status}` }, STATUS_TEXT[key.status] || key.status),
    ),
    el("div", { class: "key-times small muted" },
      timeLine("Validated", key.lastValidatedAt),
      key.lastUsedAt ? timeLine("Used", key.lastUsedAt) : el("span", {}, "Not used yet"),
      timeLine("Added", key.createdAt),
    ),
  );
  if (key.status !== "revoked") {
    const revalidate = el("button", {
      type: "button", class: "btn btn-ghost small", "aria-label": `Re-validate key ${name}`,
    }, el("span", { class: "spinner", "aria-hidden": "true", hidden: true }), el("span", { class: "btn-text" }, "Re-validate"));
    revalidate.addEventListener("click", () => revalidateKey(key, revalidate));
    const revoke = el("button", {
      type: "button", class: "btn btn-ghost btn-danger-text small", "aria-label": `Revoke key ${name}`,
    }, "Revoke");
    revoke.addEventListener("click", () => revokeKey(key, name));
    item.append(el("div", { class: "key-actions" }, revalidate, revoke));
  }
  return item;
}

function spin(button, on, text) {
  button.disabled = on;
  button.setAttribute("aria-busy", String(on));
  const spinner = button.querySelector(".spinner");
  if (spinner) spinner.hidden = !on;
  if (text) button.querySelector(".btn-text").textContent = text;
}

async function revalidateKey(key, button) {
  spin(button, true, "Checking…");
  try {
    const body = await post(`/api/providers/${key.provider}/keys/${key.id}/validate`);
    upsertKey(body.key);
    toast(body.key.status === "active" ? "The key is valid." : "The provider refused this key; it is marked invalid.");
  } catch (error) {
    toast(error.message, "error");
    spin(button, false, "Re-validate");
  }
}

async function revokeKey(key, name) {
  const ok = await confirmAction({
    title: "Revoke this key?",
    text: `${providerName(key.provider)} key ${name} will be destroyed and never used again. Threads that use it stop working.`,
    confirm: "Revoke key",
  });
  if (!ok) return;
  try {
    await del(`/api/providers/${key.provider}/keys/${key.id}`);
    await reloadProvider(key.provider).catch(() => upsertKey({ ...key, status: "revoked" }));
    toast("Key revoked.");
  } catch (error) {
    toast(error.message, "error");
  }
}

export function initKeys() {
  const dialog = $("#keys-dialog");
  on("keys-changed", refreshKeysDialog);
  dialog.addEventListener("close", () => {
    $("#key-input").value = "";
  });
  const tabs = Array.from(dialog.querySelectorAll("[role=tab]"));
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      selectProvider(tab.dataset.provider);
      reloadProvider(tab.dataset.provider).catch(() => {});
    });
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  }

  const form = $("#key-form");
  const submit = $("#key-submit");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("#key-input");
    const apiKey = input.value.trim();
    const label = $("#key-label").value.trim();
    // The plaintext goes no further than this request: out of the form before we even send it.
    input.value = "";
    if (!apiKey) {
      showFormErrors(form, { message: "Paste an API key first.", fields: { apiKey: ["Paste an API key."] } },
        { apiKey: "key-input" });
      return;
    }
    clearFormErrors(form);
    const provider = currentProvider;
    const status = $("#key-form-status");
    status.textContent = `Checking the key with ${providerName(provider)}…`;
    spin(submit, true, "Validating…");
    try {
      const body = await post(`/api/providers/${provider}/keys`, label ? { apiKey, label } : { apiKey });
      $("#key-label").value = "";
      upsertKey(body.key);
      status.textContent = `Key ${body.key.keyMask} is ${STATUS_TEXT[body.key.status] || body.key.status}.`;
      toast(`${providerName(provider)} key connected.`);
      reloadProvider(provider).catch(() => {});
    } catch (error) {
      status.textContent = "";
      showFormErrors(form, Object.assign(error, {
        message: `${error.message}${error.code === "key_invalid" || error.code === "upstream_unavailable" ? " The key was not saved." : ""}`,
      }), { apiKey: "key-input", label: "key-label" });
    } finally {
      spin(submit, false, "Validate and save");
    }
  });
}

export function refreshKeysDialog() {
  if ($("#keys-dialog").open) renderKeyList();
}
