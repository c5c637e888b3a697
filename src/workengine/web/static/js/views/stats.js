// Statistics, as GetExecutionStats gives them, for the tasks created in a chosen period, with
// the distribution of completion times.
import * as api from "../api.js";
import { legend, stackedBars } from "../charts.js";
import { badge, card, duration, empty, fill, h, link, number } from "../dom.js";
import { showing } from "./common.js";

const PERIODS = [["hour", "Last hour", 3600], ["day", "24 hours", 86400], ["week", "7 days", 7 * 86400], ["all", "All time", 0]];

export function mount(main, params, context) {
  const id = params[0];
  context.crumbs([[id, `/orchestrators/${encodeURIComponent(id)}`], ["Statistics", null]]);
  let period = "day";
  const body = h("div");
  const chips = h("div", { class: "chips", role: "group", "aria-label": "Period" }, PERIODS.map(([value, label]) =>
    h("button", { type: "button", class: value === period ? "chip on" : "chip", dataset: { period: value }, onclick: (e) => {
      period = value;
      for (const chip of chips.children) chip.classList.toggle("on", chip === e.currentTarget);
      load();
    } }, label)));
  main.replaceChildren(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Statistics"), h("div", { class: "muted" }, "of ", link(`/orchestrators/${encodeURIComponent(id)}`, id), "'s tasks created in the period")),
      h("div", { class: "head-side" }, chips)),
    body);
  const load = () => showing(body, async () => {
    const seconds = PERIODS.find(([value]) => value === period)[2];
    const start = seconds ? new Date(Date.now() - seconds * 1000).toISOString() : "";
    draw(body, await api.get(`/api/orchestrators/${encodeURIComponent(id)}/stats`, { start_time: start }));
  });
  load();
  // Statistics have no stream of their own: they are read again every 10 s.
  const refreshing = setInterval(load, 10000);
  return () => clearInterval(refreshing);
}

function draw(element, stats) {
  const figure = (label, value, className = "") =>
    h("div", { class: `figure ${className}` }, h("div", { class: "figure-value" }, value), h("div", { class: "figure-label" }, label));
  const rows = (counts, show) => Object.entries(counts).map(([name, count]) =>
    h("div", { class: "share" }, h("span", {}, show(name)), h("span", { class: "num" }, number(count)),
      h("div", { class: "share-bar" }, shareFill(count, stats.total))));
  fill(element,
    h("div", { class: "figures" },
      figure("Tasks", number(stats.total)),
      figure("Completed", number(stats.completed), "good"),
      figure("Failed", number(stats.failed), stats.failed ? "warn" : ""),
      figure("Success rate", stats.completed + stats.failed ? `${stats.success_rate_percent.toFixed(1)}%` : "–"),
      figure("Average", duration(stats.average_seconds)),
      figure("p50", duration(stats.p50_seconds)),
      figure("p95", duration(stats.p95_seconds))),
    h("div", { class: "grid-2 wide-left" },
      card("Completion times", histogram(stats.completion_histogram)),
      h("div", {},
        card("By status", stats.total ? rows(stats.by_status, (s) => badge(s)) : empty("No task in this period.")),
        card("By priority", stats.total ? rows(stats.by_priority, (p) => p.toLowerCase()) : empty("No task in this period.")))));
}

function shareFill(count, total) {
  const fillElement = h("div", { class: "share-fill" });
  fillElement.style.width = `${total ? (100 * count) / total : 0}%`;
  return fillElement;
}

const MIN_BARS = 12;

function histogram(found) {
  if (!found.length) return empty("No task completed in this period.");
  // A few bars would each fill a sixth of the card: padded with empty doublings around them,
  // the chart keeps its time scale and its bars their width.
  const bars = found.slice();
  while (bars.length < MIN_BARS) {
    const first = bars[0].up_to_seconds;
    if (bars.length % 2 && first > 0.001) bars.unshift({ up_to_seconds: first / 2, tasks: 0 });
    else bars.push({ up_to_seconds: bars[bars.length - 1].up_to_seconds * 2, tasks: 0 });
  }
  const label = (bar, index) => (index === 0 && bar.up_to_seconds <= 0.001 ? "<1 ms" : `≤${duration(bar.up_to_seconds)}`);
  const chartBars = bars.map((bar, index) => ({
    label: label(bar, index),
    parts: [{ value: bar.tasks, className: "fill-done", name: "tasks" }],
  }));
  const axis = [label(bars[0], 0), bars.length > 2 ? label(bars[Math.floor(bars.length / 2)], Math.floor(bars.length / 2)) : "", label(bars[bars.length - 1], bars.length - 1)];
  return h("div", {},
    stackedBars(chartBars, { axis, height: 140 }),
    legend([["fill-done", "tasks completed in that time (start to completion), each bar twice as long as the one before"]]));
}
