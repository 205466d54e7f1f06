// KeyLM web client: entry point. Decides between the sign-in screens and the chat workspace.

import { get, post, setUnauthenticatedHandler } from "./js/api.js";
import { initAuth, showAuthPanel } from "./js/auth.js";
import { initChat, loadThreads, route, showAppError, stopStreaming } from "./js/chat.js";
import { initDialogs, toast } from "./js/dialogs.js";
import { initKeys, loadAllKeys, loadProviders } from "./js/keys.js";
import { loadMarkdown } from "./js/markdown.js";
import { resetState, state } from "./js/state.js";
import { initEmailVerification, loadUsage, renderBanners } from "./js/usage.js";
import { $, show } from "./js/util.js";

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function signedOut(notice) {
  stopStreaming();
  closeDialogs();
  resetState();
  $("#messages").replaceChildren();
  $("#thread-list").replaceChildren();
  $("#account-email").textContent = "";
  history.replaceState(null, "", "/");
  showAuthPanel("login", notice);
}

async function enterApp(user) {
  state.user = user;
  // The workspace shows once threads, keys and usage are in: nothing can be typed into a half-built page.
  show($("#auth-view"), false);
  show($("#boot"), true);
  $("#account-email").textContent = user.email;
  $("#account-email").title = user.email;
  const results = await Promise.allSettled([loadThreads(), loadUsage(), loadAllKeys()]);
  show($("#boot"), false);
  if (!state.user) return; // a 401 on the way in sent us back to sign-in
  show($("#app-view"), true);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) showAppError(failed.reason.message || "Some of your data could not be loaded.");
  renderBanners();
  route();
}

async function signOut() {
  try {
    await post("/api/auth/logout", undefined, { quiet401: true });
  } catch (error) {
    if (error.status !== 401) {
      toast(error.message, "error");
      return;
    }
  }
  signedOut("You are signed out.");
}

async function boot() {
  initDialogs();
  initAuth({ signedIn: (user) => enterApp(user) });
  // Every provider list, tab and hint is built from the registry: load it before drawing any.
  await loadProviders().catch(() => showAppError("The provider list could not be loaded; reload the page."));
  initKeys();
  initChat();
  initEmailVerification();
  $("#sign-out").addEventListener("click", signOut);
  setUnauthenticatedHandler(() => {
    if (state.user) signedOut("Your session has ended. Sign in again to continue.");
  });

  const markdown = loadMarkdown();
  if (location.pathname === "/reset") {
    await markdown;
    show($("#boot"), false);
    const token = new URLSearchParams(location.search).get("token");
    showAuthPanel("reset", token ? "" : "This reset link is incomplete. Ask for a new one below.");
    return;
  }
  // A confirmation link (/verify-email?token=...) works with or without a session: confirm, then boot.
  let confirmed = null;
  if (location.pathname === "/verify-email") {
    confirmed = await confirmEmail(new URLSearchParams(location.search).get("token") || "");
    history.replaceState(null, "", "/");
  }
  let user = null;
  try {
    const body = await get("/api/auth/me", { quiet401: true });
    user = body.user;
  } catch (error) {
    if (error.status !== 401) {
      await markdown;
      show($("#boot"), false);
      showAuthPanel("login", error.message);
      return;
    }
  }
  await markdown;
  if (user) {
    await enterApp(user);
    if (confirmed) toast(confirmed.message, confirmed.ok ? "info" : "error");
  } else {
    show($("#boot"), false);
    showAuthPanel("login", confirmed ? confirmed.message : "");
  }
}

async function confirmEmail(token) {
  if (!token) return { ok: false, message: "This confirmation link is incomplete. Ask for a new one after signing in." };
  try {
    await post("/api/auth/email-verification/confirm", { token }, { quiet401: true });
    return { ok: true, message: "Your email is confirmed: KeyLM Free is yours to use." };
  } catch (error) {
    return { ok: false, message: error.message };
  }
}

boot();
