// A WorkEngine daemon in TypeScript, over stubs generated from ../../protos (src/gen) and
// Connect's gRPC transport (real gRPC over HTTP/2, so it talks to the Python grpcio server).
// It does what examples/python_daemon.py does (the model), plus a WatchTaskProgress subscription.
//
// It registers its orchestrator (or finds it), then loops: ClaimNextTask (long-polling
// `--wait` seconds, naming itself with `identity`), prints on stderr what the context recalls
// of past executions (history and estimate), subscribes to WatchTaskProgress for the claimed
// task, reports progress, works while heartbeating every third of the lease, completes the task
// with an output naming this daemon (or fails it, with a lesson, when its metadata says "fail",
// as the Python daemon does), and prints one JSON line per task with the events its
// subscription saw. A heartbeat, progress report or completion refused with
// FAILED_PRECONDITION means the attempt is no longer ours (cancelled, lease lost, superseded):
// it stops that work at once, logs the google.rpc.ErrorInfo reason and claims again. With
// --exit-when-idle it stops after a claim that found nothing; otherwise it runs until SIGINT or
// SIGTERM, which stop the claiming but let the task in hand finish and be reported (not left to
// its lease), then exit 0.
//
//   npx tsx src/daemon.ts --target 127.0.0.1:50051 --orchestrator fleet --name ts-1 --exit-when-idle
//
// `--lease-duration SECONDS` asks for that lease on each claim (default: the task's or the
// server's). `--log PATH` appends one JSON line per claim, completion (or failure) and give-up
// to PATH (written before the work starts, straight to the kernel, so it survives a SIGKILL).
//
// When WORKENGINE_TOKEN is set, every call carries `authorization: Bearer $WORKENGINE_TOKEN`
// (a server with authentication on needs it: the orchestrator's token, or the admin's).

import { closeSync, openSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { durationMs, timestampMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CompletionStatus,
  WorkEngineService,
} from "./gen/workengine/v1/work_engine_service_pb.js";
import {
  AttemptOutcome,
  PastExecutionSource,
  SimilarityGroup,
  TaskEventKind,
  type ExecutionEstimate,
  type Task,
  type TaskContext,
  type TaskEvent,
} from "./gen/workengine/v1/task_pb.js";

type WorkEngine = Client<typeof WorkEngineService>;

const { values: options } = parseArgs({
  options: {
    target: { type: "string", default: "127.0.0.1:50051" },
    orchestrator: { type: "string", default: "fleet" },
    name: { type: "string", default: "typescript-daemon" }, // also the identity claims carry
    wait: { type: "string", default: "1" },
    "work-seconds": { type: "string", default: "0" },
    "lease-duration": { type: "string" },
    log: { type: "string" },
    "exit-when-idle": { type: "boolean", default: false },
  },
});

const deadlineMs = 10_000;
const waitSeconds = Number(options.wait);
const workMs = Number(options["work-seconds"]) * 1000;
const leaseOption = options["lease-duration"] === undefined ? undefined : Number(options["lease-duration"]);
if (leaseOption !== undefined && !(leaseOption > 0)) {
  console.error(`error: --lease-duration must be a positive number of seconds`);
  process.exit(2);
}
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
 * The google.rpc.ErrorInfo reason of a refusal (LEASE_EXPIRED, TASK_CANCELLED,
 * ATTEMPT_SUPERSEDED, ...), or its message when it carries none.
 */
function errorReason(failure: ConnectError): string {
  for (const detail of failure.details) {
    if (!("type" in detail) || detail.type !== "google.rpc.ErrorInfo") continue;
    // Read by hand: src/gen holds only WorkEngine's own protos, and `reason` (field 1) is all
    // this needs from google/rpc/error_details.proto.
    const reader = new BinaryReader(detail.value);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) return reader.string();
      reader.skip(wireType, field);
    }
  }
  return failure.rawMessage;
}

/** The attempt is no longer ours (a FAILED_PRECONDITION refusal): stop working on it. */
class Lost extends Error {
  constructor(
    readonly reason: string,
    readonly failure?: ConnectError,
  ) {
    super(reason);
  }
}

/** Asked to stop while a call could not get through: stop instead of retrying it. */
class Stopped extends Error {}

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
 * repeat). A refusal (FAILED_PRECONDITION) throws Lost with its reason; other errors go to the
 * caller. Once asked to stop, it still makes the call (a task claimed or worked on is
 * reported, not left to its lease) but no longer retries it (Stopped).
 */
async function persist<T>(call: () => Promise<T>): Promise<T> {
  let backoffMs = 200;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const failure = ConnectError.from(error);
      if (failure.code === Code.FailedPrecondition) throw new Lost(errorReason(failure), failure);
      if (!transient.has(failure.code)) throw error;
      if (stopping) throw new Stopped();
      console.error(`${options.name}: ${Code[failure.code]}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, backoffMs * (0.5 + Math.random())));
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    }
  }
}

/**
 * Keeps one attempt's lease while it works: calls Heartbeat every third of the lease. A
 * refusal (FAILED_PRECONDITION) aborts `lost` and records its reason; a transient error is
 * tried again at the next beat, which still leaves two beats before the lease ends.
 */
class Heartbeat {
  readonly lost = new AbortController();
  reason = "";
  private readonly done = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(client: WorkEngine, taskId: string, attempt: number, leaseSeconds: number) {
    // Whole milliseconds: Connect writes timeoutMs into the grpc-timeout header as is, and the
    // server rejects a fractional one (INTERNAL), which would silently cost every beat.
    const periodMs = Math.round(Math.max(leaseSeconds / 3, 0.1) * 1000);
    const beat = async (): Promise<void> => {
      try {
        await client.heartbeat({ taskId, attempt }, { timeoutMs: periodMs, signal: this.done.signal });
      } catch (error) {
        const failure = ConnectError.from(error);
        if (failure.code === Code.FailedPrecondition && !this.done.signal.aborted) {
          this.reason = errorReason(failure);
          this.lost.abort();
          return;
        }
      }
      if (!this.done.signal.aborted) this.timer = setTimeout(beat, periodMs);
    };
    this.timer = setTimeout(beat, periodMs);
  }

  stop(): void {
    this.done.abort();
    clearTimeout(this.timer);
  }
}

/** The lease the claim granted, which sets the heartbeat's pace. */
function leaseSeconds(task: Task): number {
  if (task.startTime && task.leaseExpireTime) {
    return (timestampMs(task.leaseExpireTime) - timestampMs(task.startTime)) / 1000;
  }
  // A started task always carries both; should one be missing, beat for the lease asked for,
  // else for the server's default (5 min): too often is harmless, too rarely loses the task.
  return leaseOption ?? 300;
}

/**
 * Stands in for the agent's real work: `ms` of it, abandoned (false) as soon as `lost` aborts.
 * Real work checks the signal the same way, between steps.
 */
function doTheWork(ms: number, lost: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (lost.aborted) return resolve(false);
    const onLost = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      lost.removeEventListener("abort", onLost);
      resolve(true);
    }, ms);
    lost.addEventListener("abort", onLost, { once: true });
  });
}

/**
 * The stand-in work's failure on a task whose metadata says "fail": that error, and the
 * metadata's "lesson", if any, for the next attempt at this and similar work.
 */
function simulatedFailure(task: Task): { error: string; lessons: string[] } | undefined {
  const fail = task.metadata?.fail;
  if (fail === undefined) return undefined;
  const lesson = task.metadata?.lesson;
  return { error: String(fail), lessons: lesson === undefined ? [] : [String(lesson)] };
}

/** A google.protobuf.Duration as "12.3s". */
function seconds(value: Duration | undefined): string {
  return `${((value ? durationMs(value) : 0) / 1000).toFixed(1)}s`;
}

/** One line per past execution in the context: how this and similar work went before. */
function describeHistory(context: TaskContext): string[] {
  return context.history.map((past) => {
    const what = `${past.taskId} ${JSON.stringify(past.title)} #${past.attempt}`;
    const outcome = `${AttemptOutcome[past.outcome]} in ${seconds(past.duration)}`;
    let line = `${PastExecutionSource[past.source]} ${what}: ${outcome}`;
    if (past.error || past.outputExcerpt) line += `, ${past.error || past.outputExcerpt}`;
    if (past.lessons.length) line += `; lessons: ${past.lessons.join(" / ")}`;
    return line;
  });
}

/** The expected run time and failure share, each with the group and samples it rests on. */
function describeEstimate(estimate: ExecutionEstimate): string {
  // Every completed attempt is a finished one too: without a failure share, nothing has enough.
  if (estimate.failureGroup === SimilarityGroup.UNSPECIFIED) {
    const widest = estimate.groups[estimate.groups.length - 1];
    const samples = `${widest?.completed ?? 0} completed / ${widest?.finished ?? 0} finished`;
    return `too few samples (${samples} in the widest group; ${estimate.minSamples} needed)`;
  }
  let runTime = "run time: too few samples";
  if (estimate.durationGroup !== SimilarityGroup.UNSPECIFIED) {
    const percentiles = `p50 ${seconds(estimate.p50Duration)}, p90 ${seconds(estimate.p90Duration)}`;
    const samples = `${SimilarityGroup[estimate.durationGroup]}, ${estimate.durationSamples} completed`;
    runTime = `${percentiles} (${samples})`;
  }
  const failures = `(${SimilarityGroup[estimate.failureGroup]}, ${estimate.failureSamples} finished)`;
  return `${runTime}; failure share ${Math.round((estimate.failureShare ?? 0) * 100)}% ${failures}`;
}

/** What the server remembers of this work (on stderr: stdout is one JSON line per task). */
function printContext(context: TaskContext, attempt: number): void {
  const name = options.name;
  console.error(`${name}: claimed ${context.task?.id} #${attempt}; history:`);
  const lines = describeHistory(context);
  for (const line of lines.length ? lines : ["(none)"]) console.error(`${name}:   ${line}`);
  // Unset only when the claim asked for no history.
  if (context.estimate) console.error(`${name}:   estimate: ${describeEstimate(context.estimate)}`);
}

/**
 * Reports progress, works while heartbeating, completes (or fails, when the stand-in work
 * fails); returns how it ended. Lost when the attempt lost the task meanwhile.
 */
async function workOn(client: WorkEngine, task: Task, attempt: number): Promise<"completed" | "failed"> {
  const heartbeat = new Heartbeat(client, task.id, attempt, leaseSeconds(task));
  try {
    await persist(() =>
      client.updateTaskProgress(
        { taskId: task.id, attempt, progress: 50, message: `${options.name} is halfway` },
        { timeoutMs: deadlineMs },
      ),
    );
    if (!(await doTheWork(workMs, heartbeat.lost.signal))) throw new Lost(heartbeat.reason);
  } finally {
    heartbeat.stop();
  }
  // A failure's lessons come back in the history of the next attempt at this and similar work.
  const failure = simulatedFailure(task);
  const status = failure ? CompletionStatus.FAILED : CompletionStatus.COMPLETED;
  const result = failure ?? { output: { by: "typescript", daemon: options.name, title: task.title } };
  const completion = { taskId: task.id, attempt, status, result };
  await persist(() => client.completeTask(completion, { timeoutMs: deadlineMs }));
  return failure ? "failed" : "completed";
}

type LogRecord = (event: string, taskId: string, attempt: number, extra?: object) => void;

async function work(client: WorkEngine, record: LogRecord): Promise<number> {
  let processed = 0;
  try {
    while (!stopping) {
      const claimed = await persist(() =>
        client.claimNextTask(
          {
            orchestratorId: options.orchestrator,
            wait: duration(waitSeconds),
            leaseDuration: leaseOption === undefined ? undefined : duration(leaseOption),
            identity: options.name,
          },
          { timeoutMs: deadlineMs + Math.round(waitSeconds * 1000) },
        ),
      );
      const task = claimed.context?.task;
      if (!task) {
        if (options["exit-when-idle"]) break;
        continue;
      }
      const attempt = claimed.attempt;
      record("claimed", task.id, attempt);
      if (claimed.context) printContext(claimed.context, attempt);
      const abort = new AbortController();
      try {
        const watched = await watch(client, task.id, abort.signal).catch(() => undefined);
        let outcome: "completed" | "failed";
        try {
          outcome = await workOn(client, task, attempt);
        } catch (error) {
          if (!(error instanceof Lost)) throw error;
          // Cancelled, lease lost or handed to a newer attempt while we worked: drop it.
          console.error(`${options.name}: gave up ${task.id}: ${error.reason}`);
          record("gave_up", task.id, attempt, { reason: error.reason });
          continue;
        }
        record(outcome, task.id, attempt);
        processed += 1;
        // The task watch ends by itself after COMPLETED or FAILED; give it a moment, then stop.
        const settle = setTimeout(() => abort.abort(), 5_000);
        const events = watched ? await watched.rest : [];
        clearTimeout(settle);
        const kinds = events.map((event) => TaskEventKind[event.kind]);
        console.log(JSON.stringify({ task: task.id, attempt, outcome, events: kinds }));
      } finally {
        abort.abort(); // an open subscription would keep Node running after the loop ends
      }
    }
  } catch (error) {
    if (!(error instanceof Stopped)) throw error;
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
  const log = options.log === undefined ? undefined : openSync(options.log, "a");
  // writeSync hands each line to the kernel at once: a SIGKILL right after cannot lose it.
  const record: LogRecord = (event, taskId, attempt, extra) => {
    if (log === undefined) return;
    const line = { event, daemon: options.name, task: taskId, attempt, ...extra };
    writeSync(log, JSON.stringify(line) + "\n");
  };
  try {
    await ensureOrchestrator(client, options.orchestrator); // a server that is down now is an error
    console.error(`${options.name}: ready`);
    const processed = await work(client, record);
    console.error(`${options.name}: processed ${processed} tasks`);
  } finally {
    if (log !== undefined) closeSync(log);
  }
}

main().catch((error: unknown) => {
  const failure = error instanceof Lost && error.failure ? error.failure : ConnectError.from(error);
  console.error(`error: ${Code[failure.code]}: ${failure.rawMessage}`);
  process.exit(1);
});
