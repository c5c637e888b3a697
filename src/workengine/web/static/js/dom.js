// Building the page safely, and showing values the way a person reads them.
// Text always goes in as text (never as HTML), so a task title can never become markup.

/** An element: h("a", {href: "/x", class: "link"}, "text", child, [more, children]). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, attributes set as given. */
export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A link the single page follows without reloading. */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

export function badge(status, extra = "") {
  const text = String(status).replaceAll("_", " ").toLowerCase();
  return h("span", { class: `badge badge-${String(status).toLowerCase()} ${extra}`.trim() }, text);
}

/** A progress bar; its parts are found again by class to update it in place. */
export function progressBar(percent) {
  const bar = h("div", { class: "bar-fill" });
  const element = h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 }, bar);
  setProgress(element, percent);
  return element;
}

export function setProgress(element, percent) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  element.setAttribute("aria-valuenow", String(value));
  // Through the CSSOM: the content security policy refuses inline style attributes.
  element.firstChild.style.width = `${value}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 0.001) return "<1 ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/**
 * The time left until an ETA, as `workengine watch` shows it (values.show_time_left): "~40 s
 * left", "~3 min left", "~2 h 5 min left", "~1 d 4 h left"; rounded half up to the unit shown
 * and never negative (an ETA passed is "~0 s left"). "" without an ETA.
 */
export function timeLeft(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.parse(iso) - now) / 1000);
  // Math.round rounds halves up, as the Python side does on purpose.
  if (Math.round(seconds) < 60) return `~${Math.round(seconds)} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `~${minutes} min left`;
  if (minutes < 24 * 60) {
    const rest = minutes % 60;
    return `~${Math.floor(minutes / 60)} h${rest ? ` ${rest} min` : ""} left`;
  }
  const hours = Math.round(seconds / 3600);
  return `~${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ""} left`;
}

export function since(iso, now = Date.now()) {
  if (!iso) return "–";
  return duration((now - Date.parse(iso)) / 1000);
}

export function ago(iso) {
  return iso ? `${since(iso)} ago` : "never";
}

/** A moment in the browser's time zone, or in `timeZone` (an IANA name) when given. */
export function dateTime(iso, timeZone = undefined) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone });
}

export function shortDate(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function time(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function number(value) {
  return new Intl.NumberFormat().format(value ?? 0);
}

/** Cursors are 64-bit: compared as BigInt, never as (rounding) numbers. */
export function after(cursor, other) {
  return BigInt(cursor || "0") > BigInt(other || "0");
}

export function table(headings, rows, options = {}) {
  const head = h("thead", {}, h("tr", {}, headings.map((heading) => {
    const [text, className] = Array.isArray(heading) ? heading : [heading, ""];
    return h("th", { class: className || null, scope: "col" }, text);
  })));
  const body = h("tbody", {}, rows);
  return h("div", { class: "table-wrap" }, h("table", { class: options.class || null }, head, body));
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}
