// A task: what it is, where it stands (live), what it waits on and what waits on it, every
// attempt, and its event timeline; Cancel and Retry for whoever may act.
import * as api from "../api.js";
import { badge, card, dateTime, duration, empty, fill, h, link, progressBar, setProgress, table, time, timeLeft } from "../dom.js";
import { FINISHED, Live, problem } from "./common.js";

const CANCELLABLE = new Set(["TODO", "IN_PROGRESS", "BLOCKED"]);
const HISTORY_PAGE = 100;

export function mount(main, params, context) {
  const id = params[0];
  const path = `/api/tasks/${encodeURIComponent(id)}`;
  const head = h("div", { class: "page-head" });
  const status = h("div");
  const fields = h("div");
  const links = h("div");
  const attempts = h("div");
  const result = h("div");
  const timeline = new Timeline(`${path}/events`);
  main.replaceChildren(head, status,
    h("div", { class: "grid-2 wide-left" },
      h("div", {}, card("Details", fields), result),
      h("div", {}, card("Dependencies", links), card("Attempts", attempts))),
    card("Timeline", timeline.element));
  let task = null;
  const live = new Live({
    target: { task_id: id },
    load: () => api.get(path),
    onData: (data) => {
      task = data.task;
      context.crumbs([[task.orchestrator_id, `/orchestrators/${encodeURIComponent(task.orchestrator_id)}`], [task.title || task.id, null]]);
      drawHead(head, task, context.session, () => live.reload());
      drawStatus(status, task);
      drawFields(fields, task);
      drawLinks(links, data);
      drawAttempts(attempts, data.attempts);
      drawResult(result, task);
    },
    onEvent: (event) => {
      timeline.add(event, true);
      if (!task) return;
      task = { ...task, ...event.task };
      drawStatus(status, task);
    },
    // Progress moves the bar (above); anything else changes the attempts or the fields.
    reloads: (event) => event.kind !== "PROGRESS",
    every: 500,
  });
  live.start()
    .then(() => timeline.older(0))
    .catch((error) => main.replaceChildren(problem(error)));
  // "running for" and the time left move with the clock.
  const ticking = setInterval(() => {
    if (task && task.status === "IN_PROGRESS") drawStatus(status, task);
  }, 1000);
  return () => {
    live.close();
    clearInterval(ticking);
  };
}

/**
 * The task's events, newest first: live ones arrive at the top, older pages load at the
 * bottom. An event shown once is never shown again (the live stream and the pages overlap).
 */
class Timeline {
  constructor(url) {
    this.url = url;
    this.shown = new Set();
    this.list = h("ol", { class: "timeline" });
    this.none = empty("No events yet (or the retention pruned them).");
    this.more = h("div");
    this.element = h("div", {}, this.list, this.none, this.more);
  }

  add(event, atTop) {
    const key = `${event.cursor}/${event.kind}/${event.task.id}`;
    if (event.kind === "SNAPSHOT" || this.shown.has(key)) return;
    this.shown.add(key);
    const entry = timelineEntry(event);
    if (atTop) this.list.prepend(entry);
    else this.list.append(entry);
    this.none.hidden = true;
  }

  async older(before) {
    const data = await api.get(this.url, { before, limit: HISTORY_PAGE });
    for (const event of data.events) this.add(event, false);
    this.none.hidden = this.shown.size > 0;
    fill(this.more, data.next_before
      ? h("button", { type: "button", class: "ghost", onclick: () => this.older(data.next_before) }, "Older events")
      : null);
  }
}

function drawHead(head, task, session, changed) {
  const actions = [];
  if (session.can_act) {
    if (CANCELLABLE.has(task.status)) actions.push(action("Cancel", "danger", `Cancel "${task.title || task.id}"?`, `/api/tasks/${encodeURIComponent(task.id)}/cancel`, changed));
    if (task.status === "FAILED") actions.push(action("Retry", "primary", null, `/api/tasks/${encodeURIComponent(task.id)}/retry`, changed));
  }
  fill(head,
    h("div", {},
      h("h1", {}, task.title || task.id),
      h("div", { class: "muted" }, h("span", { class: "mono" }, task.id), " · ",
        link(`/orchestrators/${encodeURIComponent(task.orchestrator_id)}`, task.orchestrator_id), ` · workspace ${task.workspace_id}`)),
    h("div", { class: "head-side actions" }, actions, h("span", { class: "action-problem", role: "alert" })));
}

function action(label, kind, question, url, changed) {
  return h("button", { type: "button", class: kind, dataset: { action: label.toLowerCase() }, onclick: async (e) => {
    if (question && !window.confirm(question)) return;
    const button = e.currentTarget;
    const problemAt = button.parentElement.querySelector(".action-problem");
    button.disabled = true;
    problemAt.textContent = "";
    try {
      await api.post(url);
      changed();
    } catch (error) {
      problemAt.textContent = error.message;
      button.disabled = false;
    }
  } }, label);
}

function drawStatus(element, task) {
  const bar = element.querySelector(".bar") || progressBar(task.progress);
  setProgress(bar, task.progress);
  const finished = FINISHED.has(task.status);
  const running = task.status === "IN_PROGRESS";
  fill(element, h("section", { class: `card status-card status-${task.status.toLowerCase()}` },
    h("div", { class: "status-line" },
      badge(task.status, "big"),
      h("span", { class: "percent" }, `${task.progress}%`),
      running && task.estimated_completion_at
        ? h("span", { class: "eta", title: `estimated to finish at ${dateTime(task.estimated_completion_at)}` }, timeLeft(task.estimated_completion_at))
        : null,
      h("span", { class: "message" }, task.progress_message || (finished ? task.status_reason : "") || "")),
    bar,
    h("div", { class: "muted small" },
      running ? `attempt ${task.attempt} of ${task.max_attempts} · running for ${duration((Date.now() - Date.parse(task.started_at)) / 1000)}` : "",
      task.status === "BLOCKED" && task.unmet_dependency_count ? `waiting on ${task.unmet_dependency_count} unfinished ${task.unmet_dependency_count === 1 ? "dependency" : "dependencies"}` : "",
      task.status === "BLOCKED" && task.retry_at ? `retries at ${dateTime(task.retry_at)}` : "",
      finished && task.completed_at ? `finished ${dateTime(task.completed_at)}` : "")));
}

function drawFields(element, task) {
  const rows = [
    ["Priority", task.priority],
    ["Due", task.due_at ? dateTime(task.due_at) : "no due time"],
    ["Created", dateTime(task.created_at)],
    ["Started", dateTime(task.started_at)],
    ["Finished", dateTime(task.completed_at)],
    ["Attempts", `${task.attempt} of ${task.max_attempts} (${task.failure_count} failed, ${task.lease_expiry_count} lost leases)`],
    ["Lease", task.lease_expires_at ? `until ${time(task.lease_expires_at)}` : "–"],
    ["Tags", task.tags.length ? task.tags.map((tag) => h("span", { class: "tag" }, tag)) : "–"],
    ["Channel", task.channel_id || "–"],
  ];
  fill(element,
    h("dl", { class: "fields" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
    task.description ? h("div", { class: "description" }, task.description) : null,
    Object.keys(task.metadata || {}).length ? h("details", {}, h("summary", {}, "Metadata"), h("pre", {}, JSON.stringify(task.metadata, null, 2))) : null);
}

function drawLinks(element, data) {
  const item = (d) => h("li", {}, badge(d.status), " ", link(`/tasks/${encodeURIComponent(d.id)}`, d.title || d.id));
  const more = data.dependents_total > data.dependents.length ? h("p", { class: "muted small" }, `and ${data.dependents_total - data.dependents.length} more`) : null;
  fill(element,
    h("h3", {}, "Waits on"),
    data.dependencies.length ? h("ul", { class: "links" }, data.dependencies.map(item)) : empty("Nothing."),
    h("h3", {}, "Needed by"),
    data.dependents.length ? h("ul", { class: "links" }, data.dependents.map(item)) : empty("Nothing."),
    more);
}

function drawAttempts(element, attempts) {
  if (!attempts.length) {
    fill(element, empty("Not started yet."));
    return;
  }
  const rows = attempts.slice().reverse().map((a) => h("tr", {},
    h("td", { class: "num" }, String(a.attempt)),
    h("td", {}, a.identity || h("span", { class: "muted" }, "unnamed")),
    h("td", { class: "small wide-only" }, dateTime(a.started_at)),
    h("td", { class: "num small" }, a.ended_at ? duration((Date.parse(a.ended_at) - Date.parse(a.started_at)) / 1000) : "running"),
    h("td", {}, badge(a.outcome), a.reason ? h("div", { class: "muted small" }, a.reason) : null)));
  fill(element, table([["#", "num"], "Who", ["Started", "wide-only"], ["Took", "num"], "Outcome"], rows));
}

function drawResult(element, task) {
  const result = task.result;
  if (!result) {
    element.replaceChildren();
    return;
  }
  fill(element, card("Result",
    result.error ? h("div", { class: "problem" }, result.error) : null,
    Object.keys(result.output || {}).length ? h("pre", {}, JSON.stringify(result.output, null, 2)) : null,
    result.artifacts.map((a) => h("details", {}, h("summary", {}, `artifact: ${a.type}`), h("pre", {}, a.content)))));
}

function timelineEntry(event) {
  const detail = event.kind === "PROGRESS" ? progressDetail(event) : event.message;
  return h("li", { class: `event event-${event.kind.toLowerCase()}`, dataset: { cursor: event.cursor, kind: event.kind } },
    h("span", { class: "event-time", title: dateTime(event.occurred_at) }, time(event.occurred_at)),
    badge(event.kind),
    h("span", { class: "event-detail" }, detail || "", event.attempt ? h("span", { class: "muted small" }, ` attempt ${event.attempt}`) : null));
}

/** "40% · ~3 min left · drafting": the time left as it stood at the report (counted from the
 * event's time, so that the history does not change as it is read). */
function progressDetail(event) {
  const left = event.estimated_completion_at ? timeLeft(event.estimated_completion_at, Date.parse(event.occurred_at)) : "";
  return [`${event.progress}%`, left, event.message].filter(Boolean).join(" · ");
}
