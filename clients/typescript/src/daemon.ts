// A WorkEngine daemon in TypeScript, over stubs generated from ../../protos (src/gen) and
// Connect's gRPC transport (real gRPC over HTTP/2, so it talks to the Python grpcio server).
//
// It registers its orchestrator (or finds it), then loops: ClaimNextTask (long-polling
// `--wait` seconds), subscribes to WatchTaskProgress for the claimed task, reports progress,
// completes the task with an output naming this daemon, and prints one JSON line per task
// with the events its subscription saw. With --exit-when-idle it stops after a claim that
// found nothing; otherwise it runs until SIGINT/SIGTERM.
//
//   npx tsx src/daemon.ts --target 127.0.0.1:50051 --orchestrator fleet --name ts-1 --exit-when-idle
//
// When WORKENGINE_TOKEN is set, every call carries `authorization: Bearer $WORKENGINE_TOKEN`
// (a server with authentication on needs it: the orchestrator's token, or the admin's).

import { parseArgs } from "node:util";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CompletionStatus,
  WorkEngineService,
} from "./gen/workengine/v1/work_engine_service_pb.js";
import { TaskEventKind, type TaskEvent } from "./gen/workengine/v1/task_pb.js";

type WorkEngine = Client<typeof WorkEngineService>;

const { values: options } = parseArgs({
  options: {
    target: { type: "string", default: "127.0.0.1:50051" },
    orchestrator: { type: "string", default: "fleet" },
    name: { type: "string", default: "typescript-daemon" },
    wait: { type: "string", default: "1" },
    "work-seconds": { type: "string", default: "0" },
    "exit-when-idle": { type: "boolean", default: false },
  },
});

const deadlineMs = 10_000;
const waitSeconds = Number(options.wait);
const workMs = Number(options["work-seconds"]) * 1000;
let stopping = false;
process.on("SIGINT", () => (stopping = true));
process.on("SIGTERM", () => (stopping = true));

/** A google.protobuf.Duration from seconds (int64 seconds are a bigint in protobuf-es). */
function duration(seconds: number): { seconds: bigint; nanos: number } {
  const whole = Math.floor(seconds);
  return { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

async function ensureOrchestrator(client: WorkEngine, id: string): Promise<void> {
  try {
    await client.getOrchestrator({ orchestratorId: id }, { timeoutMs: deadlineMs });
  } catch (error) {
    if (ConnectError.from(error).code !== Code.NotFound) throw error;
    try {
      await client.registerOrchestrator({ orchestratorId: id, displayName: id }, { timeoutMs: deadlineMs });
    } catch (raced) {
      // Another daemon registered it between our two calls: fine.
      if (ConnectError.from(raced).code !== Code.AlreadyExists) throw raced;
    }
  }
}

/**
 * Subscribes to a task's events. Resolves once the first event (the snapshot) arrived, so no
 * later event can be missed; `rest` then collects events until the stream ends by itself
 * (after DONE, FAILED or CANCELLED) or `signal` aborts it. `rest` never rejects: an aborted or
 * broken subscription just ends the list.
 */
async function watch(
  client: WorkEngine,
  taskId: string,
  signal: AbortSignal,
): Promise<{ rest: Promise<TaskEvent[]> }> {
  const stream = client.watchTaskProgress({ target: { case: "taskId", value: taskId } }, { signal });
  const iterator = stream[Symbol.asyncIterator]();
  const events: TaskEvent[] = [];
  const first = await iterator.next();
  if (!first.done && first.value.event) events.push(first.value.event);
  const rest = (async () => {
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        if (next.value.event) events.push(next.value.event);
      }
    } catch {
      // Aborted by us, or the server went away: the events so far are what we saw.
    }
    return events;
  })();
  return { rest };
}

const transient = new Set([Code.Unavailable, Code.Canceled, Code.DeadlineExceeded]);
const maxBackoffMs = 5_000;

/**
 * Calls until it gets an answer, backing off while the server is restarting or unreachable:
 * for the claim, and for reports on work already done (progress and completion are safe to
 * repeat). Any other error goes to the caller. Resolves to undefined once stopping.
 */
async function persist<T>(call: () => Promise<T>): Promise<T | undefined> {
  let backoffMs = 200;
  while (!stopping) {
    try {
      return await call();
    } catch (error) {
      const failure = ConnectError.from(error);
      if (!transient.has(failure.code)) throw error;
      console.error(`${options.name}: ${Code[failure.code]}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, backoffMs * (0.5 + Math.random())));
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    }
  }
  return undefined;
}

async function work(client: WorkEngine): Promise<number> {
  let processed = 0;
  while (!stopping) {
    const claimed = await persist(() =>
      client.claimNextTask(
        { orchestratorId: options.orchestrator, wait: duration(waitSeconds) },
        { timeoutMs: deadlineMs + waitSeconds * 1000 },
      ),
    );
    if (claimed === undefined) break;
    const task = claimed.context?.task;
    if (!task) {
      if (options["exit-when-idle"]) break;
      continue;
    }
    const attempt = claimed.attempt;
    const abort = new AbortController();
    const watched = await watch(client, task.id, abort.signal).catch(() => undefined);
    try {
      await persist(() =>
        client.updateTaskProgress(
          { taskId: task.id, attempt, progress: 50, message: `${options.name} is halfway` },
          { timeoutMs: deadlineMs },
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, workMs)); // stands in for the real work
      const completed = await persist(() =>
        client.completeTask(
          {
            taskId: task.id,
            attempt,
            status: CompletionStatus.COMPLETED,
            result: { output: { by: "typescript", daemon: options.name, title: task.title } },
          },
          { timeoutMs: deadlineMs },
        ),
      );
      if (completed === undefined) break; // stopping before the completion was accepted
    } catch (error) {
      // Cancelled, or handed to a newer attempt, while we worked: drop it and go on.
      const failure = ConnectError.from(error);
      if (failure.code !== Code.FailedPrecondition) throw error;
      console.error(`${options.name}: gave up ${task.id}: ${failure.rawMessage}`);
      abort.abort();
      continue;
    }
    // The task watch ends by itself after COMPLETED; give it a moment, then stop waiting.
    const settle = setTimeout(() => abort.abort(), 5_000);
    const events = watched ? await watched.rest : [];
    clearTimeout(settle);
    processed += 1;
    console.log(
      JSON.stringify({ task: task.id, attempt, events: events.map((event) => TaskEventKind[event.kind]) }),
    );
  }
  return processed;
}

async function main(): Promise<void> {
  const token = process.env.WORKENGINE_TOKEN;
  const bearer: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return await next(request);
  };
  const transport = createGrpcTransport({
    baseUrl: `http://${options.target}`,
    interceptors: token ? [bearer] : [],
  });
  const client = createClient(WorkEngineService, transport);
  await ensureOrchestrator(client, options.orchestrator);
  console.error(`${options.name}: ready`);
  const processed = await work(client);
  console.error(`${options.name}: processed ${processed} tasks`);
}

main().catch((error: unknown) => {
  const failure = ConnectError.from(error);
  console.error(`error: ${Code[failure.code]}: ${failure.rawMessage}`);
  process.exit(1);
});
