// KeyLM Free: the usage meter, the "connect a key" reminder, the exhausted state, and the
// "confirm your email" banner when the server asks for a confirmed email first.

import { get, post } from "./api.js";
import { toast } from "./dialogs.js";
import { emit, hasAnyActiveKey, state } from "./state.js";
import { $, busy, formatLocalTime, formatNumber, show } from "./util.js";

let resetTimer = null;

export async function loadUsage() {
  try {
    state.usage = await get("/api/usage/free");
  } catch (error) {
    if (error.status === 401) throw error;
    state.usage = state.usage || null;
    $("#free-meter-detail").textContent = "Free usage is unavailable right now.";
    return;
  }
  renderUsage();
  emit("usage-changed");
  // Ask again just after the daily reset, so a tab left open shows the new day's quota.
  clearTimeout(resetTimer);
  const resetsAt = Date.parse(state.usage.resetsAt || "");
  if (resetsAt && resetsAt > Date.now()) {
    resetTimer = setTimeout(() => loadUsage().catch(() => {}), Math.min(resetsAt - Date.now() + 2000, 2 ** 31 - 1));
  }
}

/** Note an exhausted quota learnt from a 429 free_quota_exhausted, until the next GET says otherwise. */
export function markExhausted(error) {
  const usage = state.usage || { user: {}, global: {} };
  state.usage = {
    ...usage,
    available: false,
    resetsAt: (error.details && error.details.resetsAt) || usage.resetsAt,
  };
  renderUsage();
  emit("usage-changed");
  loadUsage().catch(() => {});
}

/** Note a 403 email_not_verified: the banner asks the user to confirm their email. */
export function markUnverified() {
  if (state.user) state.user = { ...state.user, emailVerified: false };
  if (state.usage) state.usage = { ...state.usage, requiresVerifiedEmail: true };
  renderBanners();
}

export function initEmailVerification() {
  const button = $("#verify-resend");
  button.addEventListener("click", async () => {
    try {
      await busy(button, () => post("/api/auth/email-verification/request"));
      toast(`A new confirmation link is on its way to ${state.user ? state.user.email : "your email"}.`);
    } catch (error) {
      if (error.status !== 401) toast(error.message, "error");
    }
  });
}

export function freeAvailable() {
  return !state.usage || state.usage.available !== false;
}

export function renderUsage() {
  const usage = state.usage;
  const meter = $("#free-meter");
  if (!usage) {
    show(meter, false);
    return;
  }
  show(meter, true);
  const user = usage.user || {};
  const global = usage.global || {};
  const limit = Number(user.limit) || 0;
  const remaining = Math.max(Number(user.remaining) || 0, 0);
  const available = usage.available !== false;
  const resetAt = formatLocalTime(usage.resetsAt);
  $("#free-meter-count").textContent = limit ? `${remaining} of ${limit} left` : "";
  const bar = $("#free-meter-bar");
  bar.max = limit || 1;
  bar.value = available ? remaining : 0;
  bar.low = Math.max(1, Math.round((limit || 1) * 0.2));
  bar.optimum = limit || 1;
  bar.setAttribute("aria-valuetext", `${remaining} of ${limit} free requests left today`);
  meter.classList.toggle("exhausted", !available);

  const parts = [];
  if (!available) parts.push(Number(global.remaining) <= 0 ? "The shared free pool is used up." : "Used up for today.");
  if (global.remaining !== undefined) parts.push(`Shared pool: ${formatNumber(global.remaining)} left.`);
  if (usage.tokens && usage.tokens.remaining !== undefined) parts.push(`Your tokens: ${formatNumber(usage.tokens.remaining)} left.`);
  if (resetAt) parts.push(`Resets at ${resetAt}.`);
  $("#free-meter-detail").textContent = parts.join(" ");

  $("#exhausted-text").textContent = resetAt
    ? `It resets at ${resetAt} (your time).`
    : "It resets at midnight UTC.";
  renderBanners();
}

/** The reminder stays up after 5 free requests in a day until a key is connected; the exhausted banner shows
 * wherever KeyLM Free would answer (a free thread, or the new-chat screen set to Free). */
export function renderBanners() {
  const usage = state.usage;
  const reminder = Boolean(usage && usage.showKeyReminder) && !hasAnyActiveKey();
  show($("#reminder-banner"), reminder);
  const freeContext = state.current
    ? state.current.thread.mode === "free"
    : ($("#setup-provider") && $("#setup-provider").value === "free");
  show($("#exhausted-banner"), Boolean(usage) && usage.available === false && freeContext);
  const unverified = Boolean(usage && usage.requiresVerifiedEmail && state.user && state.user.emailVerified === false);
  if (unverified) {
    $("#verify-text").textContent = `Open the link we mailed to ${state.user.email}; it works once.`;
  }
  show($("#verify-banner"), unverified);
}
