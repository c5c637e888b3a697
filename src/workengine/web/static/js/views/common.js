// What every view shares: keeping its JSON current with the live stream, paging, errors.
import { ApiError } from "../api.js";
import { after, h } from "../dom.js";
import { follow } from "../live.js";

const REMEMBERED_EVENTS = 5000;

/**
 * Keeps a view current. `load()` returns the view's JSON with the cursor it reflects; the
 * stream follows from there. Events go to `onEvent` as they come; when `reloads(event)` says
 * the JSON is stale, it is loaded again (at most every `every` ms), and the events newer than
 * its cursor are applied on top of it, so the view never steps back in time.
 */
export class Live {
  constructor({ target = {}, load, onData, onEvent = () => {}, reloads = () => true, every = 1000 }) {
    Object.assign(this, { target, load, onData, onEvent, reloads, every });
    this.recent = [];
    this.timer = null;
    this.loading = null;
    this.closed = false;
  }

  async start() {
    const data = await this.load();
    if (this.closed) return;
    this.onData(data);
    this.stop = follow({
      target: this.target,
      cursor: data.cursor || "0",
      onEvent: (event) => this.event(event),
      onReset: () => this.restart(),
    });
  }

  event(event) {
    this.recent.push(event);
    if (this.recent.length > REMEMBERED_EVENTS) this.recent.splice(0, this.recent.length - REMEMBERED_EVENTS);
    this.onEvent(event);
    if (this.reloads(event)) this.soon();
  }

  /** A reload within `every` ms (one for any number of requests meanwhile). */
  soon() {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload();
    }, this.every);
  }

  async reload() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const data = await this.load();
        if (this.closed) return;
        this.onData(data);
        for (const event of this.recent) if (after(event.cursor, data.cursor)) this.onEvent(event);
        this.recent = this.recent.filter((event) => after(event.cursor, data.cursor));
      } catch (error) {
        console.warn("reload failed", error);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async restart() {
    if (this.stop) this.stop();
    this.recent = [];
    if (!this.closed) await this.start();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.stop) this.stop();
  }
}

/**
 * Page-token paging with a way back: `load(token)` returns {next_page_token, ...}; the pager's
 * element shows "Previous" and "Next" as far as they go.
 */
export class Pager {
  constructor(load, onChange = null) {
    this.loadPage = load;
    // What a click on Previous or Next runs (a view's reload); loading the page by default.
    this.onChange = onChange || (() => this.load());
    this.tokens = [""];
    this.next = "";
    this.element = h("div", { class: "pager" });
  }

  get token() {
    return this.tokens[this.tokens.length - 1];
  }

  async load() {
    const data = await this.loadPage(this.token);
    this.next = data.next_page_token || "";
    this.draw();
    return data;
  }

  first() {
    this.tokens = [""];
    return this.load();
  }

  /** Whether there is more than one page (else the pager need not show). */
  get paging() {
    return this.tokens.length > 1 || Boolean(this.next);
  }

  draw() {
    const page = this.tokens.length;
    this.element.replaceChildren(
      h("button", { type: "button", class: "ghost", disabled: page === 1, onclick: () => { this.tokens.pop(); this.onChange(); } }, "← Previous"),
      h("span", { class: "muted" }, `page ${page}`),
      h("button", { type: "button", class: "ghost", disabled: !this.next, onclick: () => { this.tokens.push(this.next); this.onChange(); } }, "Next →"),
    );
  }
}

export function problem(error) {
  const message = error instanceof ApiError ? error.message : String(error);
  return h("div", { class: "problem", role: "alert" }, message);
}

/** Runs `work`, showing its error (if any) in `where` instead of leaving the view blank. */
export async function showing(where, work) {
  try {
    return await work();
  } catch (error) {
    where.replaceChildren(problem(error));
    return undefined;
  }
}

export const FINISHED = new Set(["DONE", "FAILED", "CANCELLED"]);
