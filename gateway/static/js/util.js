// Small DOM and formatting helpers. Text always goes in through textContent, never innerHTML.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Build an element: el("button", {class: "btn", type: "button", "aria-label": "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(node, visible = true) {
  if (node) node.hidden = !visible;
}

// Filled once at boot from GET /api/providers (the server's provider registry), in display order.
export const PROVIDERS = [];
const PROVIDER_INFO = {};

/** Replace the provider list with the registry's public metadata. */
export function setProviders(list) {
  PROVIDERS.splice(0, PROVIDERS.length, ...list.map((p) => p.id));
  for (const id of Object.keys(PROVIDER_INFO)) delete PROVIDER_INFO[id];
  for (const p of list) PROVIDER_INFO[p.id] = p;
}

export const providerInfo = (provider) => PROVIDER_INFO[provider] || null;
export const providerName = (provider) => (PROVIDER_INFO[provider] || {}).name || provider || "";

/** A list of names the way a sentence says it: "A, B or C". */
export function providerNames(joiner = "or") {
  const names = PROVIDERS.map(providerName);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} ${joiner} ${names[names.length - 1]}` : names.join("");
}

/** A small round badge with the provider's monogram and colour (decorative: CSS draws the letter,
 * so a label or tab that holds the badge still reads as the provider's name alone). */
export function providerBadge(provider) {
  const info = PROVIDER_INFO[provider] || {};
  const badge = el("span", { class: "provider-monogram", "aria-hidden": "true", dataset: { monogram: info.monogram || "?" } });
  if (info.color) badge.style.backgroundColor = info.color;
  return badge;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
});
const relative = typeof Intl.RelativeTimeFormat === "function"
  ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
  : null;

export function parseDate(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "3:00 PM" today, "Nov 28, 3:00 PM" otherwise, in the user's own time zone. */
export function formatLocalTime(value) {
  const date = parseDate(value);
  if (!date) return "";
  const now = new Date();
  return date.toDateString() === now.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

export function formatDateTime(value) {
  const date = parseDate(value);
  return date ? dateTimeFormat.format(date) : "";
}

/** "just now", "5 minutes ago", "2 hours ago", "yesterday". */
export function formatAge(value, now = Date.now()) {
  const date = parseDate(value);
  if (!date) return "";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (!relative) return formatDateTime(value);
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

export function formatNumber(value) {
  return typeof value === "number" ? value.toLocaleString() : "";
}

export function newRequestId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain-HTTP deployments on a LAN address fall back here.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Put an ApiError's messages on a form: the general message on top, details.fields under their inputs. */
export function showFormErrors(form, error, fieldIds = {}) {
  clearFormErrors(form);
  const fields = flattenFields((error && error.fields) || {});
  const unplaced = [];
  for (const [name, text] of Object.entries(fields)) {
    const inputId = fieldIds[name];
    const input = inputId ? document.getElementById(inputId) : form.querySelector(`[name="${CSS.escape(name)}"]`);
    const slot = input ? document.getElementById(`${input.id}-error`) : null;
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
      input.setAttribute("aria-invalid", "true");
      const describedBy = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!describedBy.includes(slot.id)) input.setAttribute("aria-describedby", [...describedBy, slot.id].join(" "));
    } else {
      unplaced.push(name === "_schema" ? text : `${name}: ${text}`);
    }
  }
  const box = form.querySelector(".form-error");
  if (box) {
    const parts = [error ? error.message : ""];
    if (unplaced.length) parts.push(unplaced.join(" "));
    box.textContent = parts.filter(Boolean).join(" ");
    box.hidden = !box.textContent;
  }
}

/** {settings: {temperature: ["..."]}} -> {"settings.temperature": "..."} (marshmallow nests its messages). */
export function flattenFields(fields, prefix = "") {
  const flat = {};
  for (const [name, value] of Object.entries(fields || {})) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (Array.isArray(value)) {
      flat[key] = value.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(" ");
    } else if (value && typeof value === "object") {
      Object.assign(flat, flattenFields(value, key));
    } else {
      flat[key] = String(value);
    }
  }
  return flat;
}

export function clearFormErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const box = form.querySelector(".form-error");
  if (box) {
    box.textContent = "";
    box.hidden = true;
  }
}

/** Disable a form's submit button while `work` runs. */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
