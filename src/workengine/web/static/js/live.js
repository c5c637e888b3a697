// The live stream (Server-Sent Events): each event's id is its cursor, so the browser's own
// reconnection (a network blip, a server restart) resumes exactly where the page was. A
// `reset` (the cursor can no longer be resumed from) asks the view to reload.

const listeners = new Set();
let open = 0;
let waiting = 0;

/** Connection state for the header's indicator: "live", "connecting" or "idle". */
export function onConnection(listener) {
  listeners.add(listener);
  listener(state());
}

function state() {
  if (waiting) return "connecting";
  return open ? "live" : "idle";
}

function announce() {
  for (const listener of listeners) listener(state());
}

/**
 * Follows `target` ({task_id}, {orchestrator_id}, or {} for every task) from `cursor`:
 * onEvent(event) for each task event, onReset() when the view must reload. Returns a function
 * that stops it.
 */
export function follow({ target = {}, cursor = "0", onEvent, onReset }) {
  let source = null;
  let last = cursor;
  let connected = false;
  let stopped = false;
  let retry = null;

  const setConnected = (value) => {
    if (value === connected) return;
    connected = value;
    open += value ? 1 : -1;
    waiting += value ? -1 : 1;
    announce();
  };

  const connect = () => {
    const query = new URLSearchParams({ ...target, after: last });
    source = new EventSource(`/api/events?${query}`);
    source.onopen = () => setConnected(true);
    source.addEventListener("task", (message) => {
      last = message.lastEventId || last;
      onEvent(JSON.parse(message.data));
    });
    source.addEventListener("bookmark", (message) => {
      last = message.lastEventId || last;
    });
    source.addEventListener("reset", () => {
      stop();
      onReset();
    });
    source.onerror = () => {
      setConnected(false);
      // The browser retries by itself after a network error; after an HTTP error it gives
      // up (CLOSED): then start again from the last cursor seen.
      if (source.readyState === EventSource.CLOSED && !stopped) {
        retry = setTimeout(reconnect, 2000);
      }
    };
  };

  // An HTTP error may mean the session ended (signed out, expired, the server restarted):
  // then sign in again instead of knocking on /api/events forever.
  const reconnect = async () => {
    if (stopped) return;
    try {
      const answer = await fetch("/api/session", { credentials: "same-origin" });
      if (answer.status === 401) {
        window.location.assign("/signin");
        return;
      }
    } catch (error) {
      // The server is away: try the stream again, as the browser does after a network error.
    }
    connect();
  };

  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(retry);
    if (source) source.close();
    if (connected) open -= 1;
    else waiting -= 1;
    announce();
  };

  waiting += 1;
  announce();
  connect();
  return stop;
}
