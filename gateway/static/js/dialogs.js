// Confirmation and rename dialogs (native <dialog>, no window.confirm), and a small toast.

import { $, clearFormErrors, showFormErrors } from "./util.js";

/** Ask before a destructive action; resolves true when confirmed. */
export function confirmAction({ title, text, confirm = "Confirm" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Ask for a new title; `save(title)` may throw an ApiError, shown in the dialog. */
export function renameDialog(current, save) {
  const dialog = $("#rename-dialog");
  const form = $("#rename-form");
  const input = $("#rename-input");
  clearFormErrors(form);
  input.value = current || "";
  dialog.showModal();
  input.select();
  const onSubmit = async (event) => {
    event.preventDefault();
    const title = input.value.trim();
    if (!title) {
      showFormErrors(form, { message: "", fields: { title: ["Enter a title."] } }, { title: "rename-input" });
      return;
    }
    try {
      await save(title);
      dialog.close();
    } catch (error) {
      showFormErrors(form, error, { title: "rename-input" });
    }
  };
  form.addEventListener("submit", onSubmit);
  dialog.addEventListener("close", () => form.removeEventListener("submit", onSubmit), { once: true });
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = $("#toast");
  box.textContent = message;
  box.className = `toast toast-${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 4000);
}

export function initDialogs() {
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  // A click on the backdrop (outside the dialog box) closes it, like the Escape key.
  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.addEventListener("click", (event) => {
      if (event.target !== dialog) return;
      const box = dialog.getBoundingClientRect();
      const inside = event.clientX >= box.left && event.clientX <= box.right
        && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
  }
}
