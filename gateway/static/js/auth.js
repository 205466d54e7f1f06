// Sign in, sign up, forgot password and the reset page (/reset?token=...).

import { post } from "./api.js";
import { $, busy, clearFormErrors, show, showFormErrors } from "./util.js";

const TITLES = {
  login: ["Sign in", "Chat with any model: start free, bring your own key when you want more."],
  register: ["Create your account", "Start on KeyLM Free right away; connect your own keys any time."],
  forgot: ["Reset your password", ""],
  reset: ["Choose a new password", ""],
};

let onSignedIn = () => {};

export function showAuthPanel(panel, notice = "") {
  show($("#app-view"), false);
  show($("#auth-view"), true);
  for (const form of document.querySelectorAll("#auth-view form[data-panel]")) {
    const visible = form.dataset.panel === panel;
    form.hidden = !visible;
    if (!visible) clearFormErrors(form);
  }
  const [title, subtitle] = TITLES[panel];
  $("#auth-title").textContent = title;
  $("#auth-subtitle").textContent = subtitle;
  show($("#auth-subtitle"), Boolean(subtitle));
  const box = $("#auth-notice");
  box.textContent = notice;
  show(box, Boolean(notice));
  document.title = `${title} · KeyLM`;
  const first = document.querySelector(`#auth-view form[data-panel="${panel}"] input`);
  if (first) first.focus();
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function localCheck(form, checks) {
  const fields = {};
  for (const [name, ok, message] of checks) if (!ok) fields[name] = [message];
  if (!Object.keys(fields).length) return true;
  showFormErrors(form, { message: "Please fix the highlighted fields.", fields });
  return false;
}

export function initAuth({ signedIn }) {
  onSignedIn = signedIn;
  for (const button of document.querySelectorAll("#auth-view [data-goto]")) {
    button.addEventListener("click", () => {
      if (button.dataset.goto !== "reset" && location.pathname === "/reset") history.replaceState(null, "", "/");
      showAuthPanel(button.dataset.goto);
    });
  }

  const login = $("#login-form");
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email, password } = formValues(login);
    if (!localCheck(login, [
      ["email", email.trim(), "Enter your email."],
      ["password", password, "Enter your password."],
    ])) return;
    clearFormErrors(login);
    try {
      const body = await busy(login.querySelector("[type=submit]"), () =>
        post("/api/auth/login", { email: email.trim(), password }, { quiet401: true }));
      login.reset();
      onSignedIn(body.user);
    } catch (error) {
      showFormErrors(login, error, { email: "login-email", password: "login-password" });
    }
  });

  const register = $("#register-form");
  register.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email, password } = formValues(register);
    if (!localCheck(register, [
      ["email", /.+@.+/.test(email.trim()), "Enter a valid email address."],
      ["password", password.length >= 8, "Use at least 8 characters."],
    ])) return;
    clearFormErrors(register);
    try {
      const body = await busy(register.querySelector("[type=submit]"), () =>
        post("/api/auth/register", { email: email.trim(), password }, { quiet401: true }));
      register.reset();
      onSignedIn(body.user, { isNew: true });
    } catch (error) {
      showFormErrors(register, error, { email: "register-email", password: "register-password" });
    }
  });

  const forgot = $("#forgot-form");
  forgot.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email } = formValues(forgot);
    if (!localCheck(forgot, [["email", /.+@.+/.test(email.trim()), "Enter a valid email address."]])) return;
    clearFormErrors(forgot);
    try {
      await busy(forgot.querySelector("[type=submit]"), () =>
        post("/api/auth/password-reset/request", { email: email.trim() }, { quiet401: true }));
      forgot.reset();
      showAuthPanel("login", "If an account exists for that email, a reset link is on its way. It works once.");
    } catch (error) {
      showFormErrors(forgot, error, { email: "forgot-email" });
    }
  });

  const reset = $("#reset-form");
  reset.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { password, confirm } = formValues(reset);
    const token = new URLSearchParams(location.search).get("token") || "";
    if (!localCheck(reset, [
      ["password", password.length >= 8, "Use at least 8 characters."],
      ["confirm", password === confirm, "The two passwords do not match."],
    ])) return;
    if (!token) {
      showFormErrors(reset, { message: "This reset link is incomplete. Ask for a new one from the sign-in page." });
      return;
    }
    clearFormErrors(reset);
    try {
      await busy(reset.querySelector("[type=submit]"), () =>
        post("/api/auth/password-reset/confirm", { token, password }, { quiet401: true }));
      reset.reset();
      history.replaceState(null, "", "/");
      showAuthPanel("login", "Your password has been changed. Sign in with the new one.");
    } catch (error) {
      showFormErrors(reset, error, { password: "reset-password" });
    }
  });
}
