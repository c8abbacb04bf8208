// perdure's web UI: hash routes (#/runs, #/runs/<id>, #/definitions, #/workers), the
// API token (asked for when the API answers 401, kept in localStorage) and the token's
// scope, shown in the header; a read token gets no action buttons.

import { api, events, setToken, token } from "./api.js";
import { fill, h } from "./dom.js";
import { session } from "./session.js";
import { definitionsView } from "./views/definitions.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";
import { workersView } from "./views/workers.js";

const ROUTES = [
  { pattern: /^\/runs\/?$/, view: runsView, nav: "runs", title: "Runs" },
  { pattern: /^\/runs\/(.+)$/, view: runView, nav: "runs", title: "Run" },
  {
    pattern: /^\/definitions\/?$/,
    view: definitionsView,
    nav: "definitions",
    title: "Definitions",
  },
  {
    pattern: /^\/definitions\/(.+)$/,
    view: definitionsView,
    nav: "definitions",
    title: "Definition",
  },
  { pattern: /^\/workers\/?$/, view: workersView, nav: "workers", title: "Workers" },
];

const view = document.getElementById("view");
const scopeLabel = document.getElementById("scope");
const dialog = document.getElementById("token-dialog");
const tokenForm = document.getElementById("token-form");
const tokenInput = document.getElementById("token-input");
const tokenReason = document.getElementById("token-reason");
let cleanup = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = hash.split("?");
  for (const r of ROUTES) {
    const match = path.match(r.pattern);
    if (match) {
      let arg = null;
      try {
        arg = match[1] === undefined ? null : decodeURIComponent(match[1]);
      } catch {
        arg = match[1]; // not percent-encoded: take it as written
      }
      return { ...r, arg, params: new URLSearchParams(query) };
    }
  }
  return null;
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const found = route();
  if (!found) {
    location.replace("#/runs");
    return;
  }
  for (const link of document.querySelectorAll("nav.main a")) {
    if (link.dataset.nav === found.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${found.title}${found.arg ? ` ${found.arg}` : ""} · perdure`;
  fill(view);
  cleanup = found.view({ root: view, arg: found.arg, params: found.params }) || null;
}

function showScope() {
  document.body.classList.toggle("read-only", session.scope === "read");
  let text;
  if (!session.auth) text = "no authentication";
  else if (session.scope === "admin") text = "admin token";
  else if (session.scope === "read") text = "read-only token";
  else text = "no token";
  fill(scopeLabel, h("span", { class: `scope scope-${session.scope || "none"}` }, text));
}

async function loadScope() {
  try {
    const who = await api("whoami");
    session.scope = who.scope === "admin" || who.scope === "read" ? who.scope : null;
    session.auth = who.auth !== false;
  } catch {
    session.scope = null; // a 401 has opened the token prompt
  }
  showScope();
}

function askForToken(reason) {
  fill(tokenReason, reason || "Enter an API token (ask your operator for one).");
  if (dialog.open) return; // keep what is being typed
  tokenInput.value = "";
  dialog.showModal();
  tokenInput.focus();
}

events.addEventListener("unauthorized", (event) => {
  if (event.detail.token !== token()) return; // refused a token replaced since
  session.scope = null;
  showScope();
  askForToken(`The server refused the request: ${event.detail.message}`);
});

tokenForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = tokenInput.value.trim();
  if (!value) return;
  setToken(value);
  dialog.close();
  await loadScope();
  render();
});

document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
document.getElementById("token-forget").addEventListener("click", async () => {
  setToken("");
  dialog.close();
  await loadScope();
  render();
});
document
  .getElementById("token-button")
  .addEventListener("click", () =>
    askForToken(token() ? "Replace the token this browser keeps." : "Enter an API token."),
  );

window.addEventListener("hashchange", () => {
  render();
  view.focus({ preventScroll: true }); // screen readers start on the new page's content
});
await loadScope();
render();
