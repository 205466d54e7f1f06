// Model output is untrusted. It is rendered as markdown (marked), then sanitised (DOMPurify) before it
// touches the DOM, and code blocks are highlighted (highlight.js, which escapes what it colours).
// If the vendored libraries are missing (web/ not installed), replies are shown as plain text.

let libs = null;
let loading = null;

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  // Nothing interactive, nothing that loads from elsewhere, no inline style (the CSP forbids it anyway).
  FORBID_TAGS: ["style", "img", "form", "input", "button", "textarea", "select", "option", "video", "audio",
    "source", "picture", "iframe", "object", "embed", "link", "meta", "base", "svg", "math"],
  FORBID_ATTR: ["style", "srcset", "action", "formaction", "background", "poster"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
};

/** Load marked, DOMPurify and highlight.js once; resolves to null when they are not installed. */
export function loadMarkdown() {
  if (!loading) {
    loading = Promise.all([
      import("/static/vendor/marked.esm.js"),
      import("/static/vendor/purify.es.js"),
      import("/static/vendor/highlight.min.js"),
    ])
      .then(([markedModule, purifyModule, hljsModule]) => {
        const { Marked } = markedModule;
        const marked = new Marked({ gfm: true, breaks: false, async: false });
        const DOMPurify = purifyModule.default;
        DOMPurify.addHook("afterSanitizeAttributes", (node) => {
          if (node.tagName === "A") {
            const href = node.getAttribute("href") || "";
            if (href.startsWith("#")) {
              node.removeAttribute("target");
            } else if (href) {
              node.setAttribute("target", "_blank");
              node.setAttribute("rel", "noopener noreferrer nofollow");
            }
          }
        });
        const hljs = hljsModule.default;
        hljs.configure({ ignoreUnescapedHTML: true });
        libs = { marked, DOMPurify, hljs };
        return libs;
      })
      .catch((error) => {
        console.warn("KeyLM: markdown libraries not available, showing plain text", error);
        libs = null;
        return null;
      });
  }
  return loading;
}

/** Safe HTML (a DocumentFragment) for a markdown string; plain text if the libraries are missing. */
export function renderMarkdownInto(container, text, { highlight = true } = {}) {
  if (!libs) {
    container.classList.add("plain");
    container.textContent = text;
    return;
  }
  container.classList.remove("plain");
  const html = libs.marked.parse(text || "");
  const fragment = libs.DOMPurify.sanitize(html, { ...PURIFY_CONFIG, RETURN_DOM_FRAGMENT: true });
  container.replaceChildren(fragment);
  for (const pre of container.querySelectorAll("pre")) {
    pre.classList.add("code-block");
  }
  if (highlight) highlightCode(container);
}

/** Colour the code blocks inside a rendered reply. */
export function highlightCode(container) {
  if (!libs) return;
  for (const code of container.querySelectorAll("pre code")) {
    if (code.dataset.highlighted) continue;
    try {
      libs.hljs.highlightElement(code);
    } catch {
      // an unknown language: leave the block as plain text
    }
  }
}
