// An orchestrator: its queue as ExplainSelection ranks it (what claims will take, in order, and
// why), its blocked tasks with what they wait on, and all its tasks page by page.
import * as api from "../api.js";
import { badge, card, dateTime, empty, fill, h, link, number, shortDate, table } from "../dom.js";
import { Live, Pager, problem, showing } from "./common.js";

const STEP = 25;
const MAX_RANKED = 1000;
const BUCKET = { OVERDUE: "overdue", DUE_TODAY: "due today", DUE_SOON: "due within 72 h", LATER: "later or none" };
const FILTERS = [["", "All"], ["TODO", "Ready"], ["IN_PROGRESS", "Running"], ["BLOCKED", "Blocked"], ["DONE", "Done"], ["FAILED", "Failed"], ["CANCELLED", "Cancelled"]];

export function mount(main, params, context) {
  const id = params[0];
  const path = `/api/orchestrators/${encodeURIComponent(id)}`;
  context.crumbs([[id, `/orchestrators/${encodeURIComponent(id)}`]]);
  const head = h("div", { class: "page-head" });
  const queue = h("div");
  const blocked = h("div");
  const all = h("div");
  main.replaceChildren(head,
    card(null, h("div", { class: "card-head" }, h("h2", {}, "Queue"), h("span", { class: "muted small" }, "in the order claims will take them")), queue),
    h("div", { class: "grid-2 wide-left" },
      card("Blocked", blocked),
      card("All tasks", all)));

  let limit = STEP;
  const loadHead = () => showing(head, async () => drawHead(head, (await api.get(path)).orchestrator));
  const blockedPager = new Pager((token) => api.get(`${path}/blocked`, { page_token: token }), () => drawBlocked());
  const drawBlocked = () => showing(blocked, async () => {
    const data = await blockedPager.load();
    fill(blocked, data.tasks.length ? blockedTable(data.tasks) : empty("No task is blocked."), blockedPager.paging ? blockedPager.element : null);
  });
  const tasks = tasksList(path, all);

  const live = new Live({
    target: { orchestrator_id: id },
    load: () => api.get(`${path}/queue`, { limit }),
    onData: (data) => drawQueue(queue, data, limit, () => {
      limit = Math.min(MAX_RANKED, limit + STEP);
      live.reload();
    }),
    reloads: (event) => event.kind !== "PROGRESS",
    every: 1000,
  });
  // The lists beside the queue follow the same events, a little less eagerly.
  let others = null;
  const original = live.onEvent;
  live.onEvent = (event) => {
    original(event);
    if (event.kind === "PROGRESS" || others) return;
    others = setTimeout(() => {
      others = null;
      loadHead();
      drawBlocked();
      tasks.reload();
    }, 2000);
  };
  loadHead();
  drawBlocked();
  tasks.reload();
  live.start().catch((error) => queue.replaceChildren(problem(error)));
  return () => {
    live.close();
    clearTimeout(others);
  };
}

function drawHead(head, o) {
  const counts = ["TODO", "IN_PROGRESS", "BLOCKED", "DONE", "FAILED", "CANCELLED"]
    .map((s) => h("span", { class: "count" }, badge(s), " ", number(o.counts[s])));
  fill(head,
    h("div", {},
      h("h1", {}, o.display_name || o.id, " ", badge(o.status)),
      h("div", { class: "muted" }, h("span", { class: "mono" }, o.id), o.role ? ` · ${o.role}` : "", ` · time zone ${o.timezone}`)),
    h("div", { class: "head-side" },
      h("div", { class: "counts" }, counts),
      link(`/orchestrators/${encodeURIComponent(o.id)}/stats`, "Statistics →")));
}

function drawQueue(element, data, limit, more) {
  if (!data.ranked.length) {
    fill(element, empty("No task is ready: nothing for a claim to take now."));
    return;
  }
  const rows = data.ranked.map((r) => h("tr", { dataset: { task: r.task.id } },
    h("td", { class: "num rank" }, String(r.rank)),
    h("td", {}, link(`/tasks/${encodeURIComponent(r.task.id)}`, r.task.title || r.task.id), h("div", { class: "muted small mono wide-only" }, r.task.id)),
    h("td", { class: "wide-only" }, badge(r.task.priority), h("div", { class: "muted small" }, `weight ${r.priority_weight}`)),
    h("td", {}, h("span", { class: `deadline deadline-${r.deadline_bucket.toLowerCase()}` }, BUCKET[r.deadline_bucket] || r.deadline_bucket),
      h("div", { class: "muted small" }, r.local_due ? `${dateTime(r.local_due, data.timezone)} ${data.timezone}` : "no due time")),
    h("td", { class: "num" }, h("div", { class: "score" }, number(r.score)),
      h("div", { class: "muted small nowrap", title: "priority weight × deadline boost" }, `${r.priority_weight} × ${r.deadline_boost}`))));
  const full = data.ranked.length < limit;
  fill(element,
    h("p", { class: "muted small" }, "Score = priority weight × deadline boost; equal scores go by due time, then age, then id."),
    table(["#", "Task", ["Priority", "wide-only"], "Deadline", ["Score", "num"]], rows, { class: "queue" }),
    full ? h("p", { class: "muted small" }, `${data.ranked.length} ready.`)
      : limit >= MAX_RANKED ? h("p", { class: "muted small" }, `The first ${MAX_RANKED} ready tasks are shown (ExplainSelection's limit); the rest are in "All tasks".`)
        : h("button", { type: "button", class: "ghost", onclick: more }, `Show ${STEP} more`));
}

function blockedTable(tasks) {
  const rows = tasks.map((t) => {
    const why = t.why || {};
    const waits = why.blocked_on && why.blocked_on.length
      ? h("div", { class: "waits" }, "waits on ", why.blocked_on.map((d, i) => [i ? ", " : "", link(`/tasks/${encodeURIComponent(d)}`, d)]))
      : h("div", { class: "waits" }, why.detail || t.status_reason || "blocked");
    return h("tr", { dataset: { task: t.id } },
      h("td", {}, link(`/tasks/${encodeURIComponent(t.id)}`, t.title || t.id), waits,
        t.retry_at ? h("div", { class: "muted small" }, `retries at ${dateTime(t.retry_at)}`) : null),
      h("td", { class: "num" }, t.unmet_dependency_count ? `${t.unmet_dependency_count} unmet` : "–"));
  });
  return table(["Task", ["Dependencies", "num"]], rows);
}

function tasksList(path, element) {
  let status = "";
  const body = h("div");
  const pager = new Pager((token) => api.get(`${path}/tasks`, { status, page_token: token, page_size: 25 }), () => draw());
  const chips = h("div", { class: "chips", role: "group", "aria-label": "Status" }, FILTERS.map(([value, label]) =>
    h("button", { type: "button", class: value === status ? "chip on" : "chip", dataset: { status: value }, onclick: (e) => {
      status = value;
      for (const chip of chips.children) chip.classList.toggle("on", chip === e.currentTarget);
      pager.tokens = [""];
      draw();
    } }, label)));
  element.replaceChildren(chips, body);
  const draw = () => showing(body, async () => {
    const data = await pager.load();
    const rows = data.tasks.map((t) => h("tr", {},
      h("td", {}, link(`/tasks/${encodeURIComponent(t.id)}`, t.title || t.id)),
      h("td", {}, badge(t.status)),
      h("td", { class: "muted small wide-only nowrap" }, shortDate(t.created_at))));
    fill(body, rows.length ? table(["Task", "Status", ["Created", "wide-only"]], rows) : empty("No task here."), pager.paging ? pager.element : null);
  });
  return { reload: draw };
}

