// Overview: the queue at a glance, throughput over the last hour, every orchestrator with its
// counts, and the tasks running now with live progress bars.
import * as api from "../api.js";
import { legend, stackedBars } from "../charts.js";
import { badge, card, duration, empty, fill, h, link, number, progressBar, setProgress, since, table, ago, time, timeLeft } from "../dom.js";
import { Live, Pager, problem } from "./common.js";

const STATUSES = ["TODO", "IN_PROGRESS", "BLOCKED", "DONE", "FAILED", "CANCELLED"];
const COLUMN = { TODO: "Ready", IN_PROGRESS: "Running", BLOCKED: "Blocked", DONE: "Done", FAILED: "Failed", CANCELLED: "Cancelled" };

export function mount(main, _params, context) {
  context.crumbs([]);
  const figures = h("div", { class: "figures" });
  const throughput = h("div");
  const orchestrators = h("div");
  const running = new RunningList();
  const runningCount = h("span", { class: "muted" });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Overview")),
    h("div", { class: "grid-2 top-row" }, figures, card("Finished in the last hour", throughput)),
    card("Orchestrators", orchestrators),
    card(null, h("h2", {}, "Running now ", runningCount), running.element),
  );
  let live = null;
  const pager = new Pager((token) => api.get("/api/overview", { page_token: token }), () => live.reload());
  live = new Live({
    target: {},
    load: () => pager.load(),
    onData: (data) => {
      drawFigures(figures, data.queue);
      drawThroughput(throughput, data.throughput);
      drawOrchestrators(orchestrators, data.orchestrators, pager);
      runningCount.textContent = runningSummary(data);
      running.replace(data.running);
    },
    onEvent: (event) => running.show(event.task),
    // Counts and throughput change when a task starts, finishes or is created, not on progress.
    reloads: (event) => event.kind !== "PROGRESS" && event.kind !== "SNAPSHOT",
    every: 2000,
  });
  live.start().catch((error) => main.replaceChildren(problem(error)));
  // "Running for" and the time left move with the clock; counts and throughput are read again
  // now and then.
  const ticking = setInterval(() => running.tick(), 1000);
  const refreshing = setInterval(() => live.soon(), 15000);
  return () => {
    live.close();
    running.close();
    clearInterval(ticking);
    clearInterval(refreshing);
  };
}

/**
 * The running tasks, one row each, updated in place: events only mark a task as changed, and
 * the rows are drawn once per animation frame, however many events came (100 tasks reporting
 * every second are 100 events a second).
 */
class RunningList {
  constructor() {
    this.rows = new Map(); // task id -> its row
    this.pending = new Map(); // task id -> newest summary not drawn yet
    this.frame = 0;
    this.list = h("ul", { class: "running-list" });
    this.none = empty("Nothing is running.");
    this.element = h("div", { class: "running" }, this.none, this.list);
  }

  replace(tasks) {
    this.rows.clear();
    this.pending.clear();
    fill(this.list, tasks.map((task) => {
      const row = runningRow(task);
      this.rows.set(task.id, row);
      return row;
    }));
    this.draw();
  }

  show(task) {
    this.pending.set(task.id, task);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    for (const task of this.pending.values()) {
      const row = this.rows.get(task.id);
      if (task.status !== "IN_PROGRESS") {
        if (row) row.remove();
        this.rows.delete(task.id);
      } else if (row) {
        updateRunning(row, task);
      } else {
        const made = runningRow(task);
        this.rows.set(task.id, made);
        this.list.append(made);
      }
    }
    this.pending.clear();
    this.none.hidden = this.rows.size > 0;
    this.list.hidden = this.rows.size === 0;
  }

  tick() {
    for (const row of this.rows.values()) {
      row.querySelector(".for").textContent = since(row.dataset.started);
      drawLeft(row);
    }
  }

  close() {
    cancelAnimationFrame(this.frame);
  }
}

function runningSummary(data) {
  const total = data.queue.counts.IN_PROGRESS ?? data.running.length;
  return total > data.running.length ? `(${number(total)}; the ${data.running.length} running longest shown)` : `(${number(total)})`;
}

function drawFigures(figures, queue) {
  const figure = (label, value, note, className = "") =>
    h("div", { class: `figure ${className}` }, h("div", { class: "figure-value" }, value), h("div", { class: "figure-label" }, label), note ? h("div", { class: "figure-note" }, note) : null);
  const age = queue.oldest_ready_age_seconds;
  fill(figures,
    figure("Ready", number(queue.counts.TODO), "waiting for a claim"),
    figure("Running", number(queue.counts.IN_PROGRESS), "in progress now", "accent"),
    figure("Blocked", number(queue.counts.BLOCKED), "on dependencies or retry"),
    figure("Oldest ready", age === null ? "–" : duration(age), age === null ? "nothing is waiting" : "waiting since it became ready", age > 600 ? "warn" : ""));
}

function drawThroughput(element, throughput) {
  const minutes = throughput.minutes;
  const completed = minutes.reduce((sum, m) => sum + m.completed, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  const bars = minutes.map((m) => ({
    label: time(m.minute),
    parts: [
      { value: m.completed, className: "fill-done", name: "completed" },
      { value: m.failed, className: "fill-failed", name: "failed" },
    ],
  }));
  const partial = throughput.counted_since !== throughput.since
    ? h("p", { class: "muted small" }, `Counted since ${time(throughput.counted_since)}: the hour held more events than one read visits.`)
    : null;
  fill(element,
    h("div", { class: "throughput-totals" },
      h("span", {}, h("strong", {}, number(completed)), " completed"),
      h("span", {}, h("strong", { class: failed ? "text-failed" : "" }, number(failed)), " failed")),
    stackedBars(bars, { axis: ["60 min ago", "30 min ago", "now"], height: 90, unit: "/min" }),
    legend([["fill-done", "completed"], ["fill-failed", "failed"]]),
    partial);
}

function drawOrchestrators(element, orchestrators, pager) {
  if (!orchestrators.length) {
    fill(element, empty("No orchestrator is registered yet: RegisterOrchestrator (or `workengine orchestrator register`) adds one."));
    return;
  }
  const headings = ["Orchestrator", ["Status", "wide-only"], ...STATUSES.map((s) => [COLUMN[s], `num ${s === "TODO" || s === "IN_PROGRESS" || s === "BLOCKED" ? "" : "wide-only"}`]), ["Heartbeat", "wide-only"], ""];
  const rows = orchestrators.map((o) => h("tr", { dataset: { orchestrator: o.id } },
    h("td", {}, link(`/orchestrators/${encodeURIComponent(o.id)}`, h("strong", {}, o.display_name || o.id)),
      h("div", { class: "muted small mono" }, o.id, " ", badge(o.status, "narrow-only"))),
    h("td", { class: "wide-only" }, badge(o.status)),
    STATUSES.map((s) => h("td", { class: `num ${s === "TODO" || s === "IN_PROGRESS" || s === "BLOCKED" ? "" : "wide-only"}`, dataset: { status: s } }, number(o.counts[s]))),
    h("td", { class: "wide-only muted" }, ago(o.last_heartbeat_at)),
    h("td", { class: "actions" }, link(`/orchestrators/${encodeURIComponent(o.id)}`, "Queue"), link(`/orchestrators/${encodeURIComponent(o.id)}/stats`, "Stats"))));
  fill(element, table(headings, rows, { class: "orchestrators" }), pager.paging ? pager.element : null);
}

function runningRow(task) {
  const bar = progressBar(task.progress);
  const row = h("li", { class: "running-task", dataset: { task: task.id, started: task.started_at || "" } },
    h("div", { class: "running-head" },
      link(`/tasks/${encodeURIComponent(task.id)}`, task.title || task.id),
      h("span", { class: "running-figures" }, h("span", { class: "eta" }), h("span", { class: "percent" }))),
    bar,
    h("div", { class: "running-meta" },
      h("span", { class: "message" }),
      h("span", { class: "muted small" },
        link(`/orchestrators/${encodeURIComponent(task.orchestrator_id)}`, task.orchestrator_id),
        " · attempt ", h("span", { class: "attempt" }), " · ", h("span", { class: "for" }, since(task.started_at)))));
  updateRunning(row, task);
  return row;
}

function updateRunning(row, task) {
  setProgress(row.querySelector(".bar"), task.progress);
  row.querySelector(".percent").textContent = `${task.progress}%`;
  row.querySelector(".message").textContent = task.progress_message || "";
  row.querySelector(".attempt").textContent = String(task.attempt);
  if (task.started_at) row.dataset.started = task.started_at;
  row.dataset.eta = task.estimated_completion_at || "";
  drawLeft(row);
}

/** The time left until the row's ETA, counted now (the list's clock calls it every second). */
function drawLeft(row) {
  const eta = row.querySelector(".eta");
  eta.textContent = timeLeft(row.dataset.eta);
  eta.title = row.dataset.eta ? `estimated to finish at ${time(row.dataset.eta)}` : "";
}
