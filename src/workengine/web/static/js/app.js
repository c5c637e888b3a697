// The dashboard's single page: finds out who is looking, then shows the view the address names
// and follows links without reloading.
import * as api from "./api.js";
import { fill, h, link } from "./dom.js";
import { onConnection } from "./live.js";
import * as orchestrator from "./views/orchestrator.js";
import * as overview from "./views/overview.js";
import * as stats from "./views/stats.js";
import * as task from "./views/task.js";

const ROUTES = [
  [/^\/$/, overview],
  [/^\/orchestrators\/([^/]+)$/, orchestrator],
  [/^\/orchestrators\/([^/]+)\/stats$/, stats],
  [/^\/tasks\/([^/]+)$/, task],
];

const main = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
let leave = null;
let session = null;

function showCrumbs(parts) {
  const items = [link("/", "Overview")];
  for (const [text, href] of parts) items.push(h("span", { class: "sep" }, "/"), href ? link(href, text) : h("span", {}, text));
  fill(crumbs, items);
}

function route() {
  if (leave) leave();
  leave = null;
  window.scrollTo(0, 0);
  const path = window.location.pathname;
  for (const [pattern, view] of ROUTES) {
    const found = pattern.exec(path);
    if (found) {
      const params = found.slice(1).map(decodeURIComponent);
      leave = view.mount(main, params, { session, crumbs: showCrumbs });
      return;
    }
  }
  fill(main, h("div", { class: "problem" }, "No such page. ", link("/", "Back to the overview")));
}

function drawWho() {
  const who = document.getElementById("who");
  const parts = [];
  if (session.read_only_reason) parts.push(h("span", { class: "pill warn", title: session.read_only_reason }, "read-only"));
  if (session.signed_in) {
    parts.push(h("span", { class: "pill" }, "admin"),
      h("button", { type: "button", class: "ghost small", onclick: signOut }, "Sign out"));
  } else if (!session.authentication && session.can_act) {
    parts.push(h("span", { class: "pill muted", title: "authentication is off; the server listens on this machine only" }, "open"));
  }
  fill(who, parts);
}

async function signOut() {
  await fetch("/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": session.csrf_token } });
  window.location.assign("/signin");
}

function drawConnection(state) {
  const element = document.getElementById("connection");
  element.className = `connection ${state}`;
  element.textContent = state === "live" ? "live" : state === "connecting" ? "reconnecting…" : "";
  element.title = state === "live" ? "updates arrive as they happen" : "";
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-link]");
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href);
  if (url.origin !== window.location.origin) return;
  event.preventDefault();
  if (url.pathname !== window.location.pathname) window.history.pushState(null, "", url.pathname);
  route();
});
window.addEventListener("popstate", route);

async function start() {
  try {
    session = await api.session();
  } catch (error) {
    fill(main, h("div", { class: "problem" }, `The dashboard cannot start: ${error.message}`));
    return;
  }
  if (session === null) {
    window.location.assign("/signin");
    return;
  }
  api.useCsrfToken(session.csrf_token);
  drawWho();
  onConnection(drawConnection);
  route();
}

start();
