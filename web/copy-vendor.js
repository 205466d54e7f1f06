#!/usr/bin/env node
// Copy the web client's front-end libraries from web/node_modules into gateway/static/vendor/
// (git-ignored). Run after `npm ci --prefix web`. No bundler: each file is a ready ES module or CSS.
"use strict";

const fs = require("fs");
const path = require("path");

const modules = path.join(__dirname, "node_modules");
const vendor = path.join(__dirname, "..", "gateway", "static", "vendor");

// [source under node_modules, destination under vendor]. ES modules get a .js name so every
// server maps them to a JavaScript MIME type (the gateway sends `nosniff`).
const FILES = [
  ["marked/lib/marked.esm.js", "marked.esm.js"],
  ["marked/LICENSE", "LICENSE.marked"],
  ["dompurify/dist/purify.es.mjs", "purify.es.js"],
  ["dompurify/LICENSE", "LICENSE.dompurify"],
  ["@highlightjs/cdn-assets/es/highlight.min.js", "highlight.min.js"],
  ["@highlightjs/cdn-assets/styles/github.min.css", "hljs-light.css"],
  ["@highlightjs/cdn-assets/styles/github-dark.min.css", "hljs-dark.css"],
  ["@highlightjs/cdn-assets/LICENSE", "LICENSE.highlightjs"],
  // The API reference page (/api/docs): a classic script that defines window.SwaggerUIBundle.
  ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui.css", "swagger-ui.css"],
  ["swagger-ui-dist/LICENSE", "LICENSE.swagger-ui"],
  ["swagger-ui-dist/NOTICE", "NOTICE.swagger-ui"],
];

// Source-map comments point at files we do not ship; drop them so browsers do not ask for them.
const SOURCE_MAP = /\n\/\/# sourceMappingURL=\S+\s*$/;
const CSS_SOURCE_MAP = /\n\/\*# sourceMappingURL=\S+\s*\*\/\s*$/;

fs.rmSync(vendor, { recursive: true, force: true });
fs.mkdirSync(vendor, { recursive: true });
for (const [from, to] of FILES) {
  const source = path.join(modules, from);
  if (!fs.existsSync(source)) {
    console.error(`copy-vendor: missing ${source}; run \`npm ci --prefix web\` first`);
    process.exit(1);
  }
  let text = fs.readFileSync(source, "utf8");
  if (to.endsWith(".js")) text = text.replace(SOURCE_MAP, "\n");
  if (to.endsWith(".css")) text = text.replace(CSS_SOURCE_MAP, "\n");
  fs.writeFileSync(path.join(vendor, to), text);
}
console.log(`copy-vendor: ${FILES.length} files -> ${path.relative(process.cwd(), vendor) || vendor}`);
