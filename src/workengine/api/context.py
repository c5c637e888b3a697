"""A task's context as TaskContext: what ExecuteTask, ClaimNextTask and PrepareTaskContext
return, its history and estimate (domain/history.py) included."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import duration_pb2

from workengine.api.convert import (
    ATTEMPT_OUTCOME,
    TASK_STATUS,
    EnumMapping,
    orchestrator_out,
    task_out,
    time_out,
)
from workengine.domain import history
from workengine.domain.history import Estimate, Memory, PastExecution, PastExecutionSource, SimilarityGroup
from workengine.domain.model import DependencyState, TaskContext
from workengine.v1 import task_pb2

SOURCE = EnumMapping(task_pb2.PastExecutionSource.DESCRIPTOR, "PAST_EXECUTION_SOURCE_", PastExecutionSource)
GROUP = EnumMapping(task_pb2.SimilarityGroup.DESCRIPTOR, "SIMILARITY_GROUP_", SimilarityGroup)


def dependency_out(dependency: DependencyState) -> task_pb2.DependencyState:
    return task_pb2.DependencyState(
        task_id=dependency.task_id,
        title=dependency.title,
        status=TASK_STATUS.to_proto(dependency.status),
        met=dependency.met,
    )


def context_out(context: TaskContext) -> task_pb2.TaskContext:
    message = task_pb2.TaskContext(
        task=task_out(context.task),
        orchestrator=orchestrator_out(context.orchestrator),
        dependencies=[dependency_out(d) for d in context.dependencies],
        workspace_id=context.task.workspace_id,
        channel_id=context.task.channel_id,
    )
    # extend(), not the constructor: the constructor copies each of the ~20 messages once more.
    message.related_tasks.extend([task_out(t) for t in context.related_tasks])
    trace = context.task.trace_context
    if trace is not None:
        message.trace_context.traceparent = trace.traceparent
        message.trace_context.tracestate = trace.tracestate
    if context.memory is not None:
        memory_out(message, context.memory)
    return message


def memory_out(target: task_pb2.TaskContext, memory: Memory) -> None:
    target.history.extend([past_execution_out(p) for p in memory.history])
    target.estimate.CopyFrom(estimate_out(memory.estimate))


def past_execution_out(past: PastExecution) -> task_pb2.PastExecution:
    message = task_pb2.PastExecution(
        source=SOURCE.to_proto(past.source),
        task_id=past.task_id,
        title=past.title,
        orchestrator_id=past.orchestrator_id,
        attempt=past.attempt,
        identity=past.identity,
        outcome=ATTEMPT_OUTCOME.to_proto(past.outcome),
        error=past.error,
        output_excerpt=past.output_excerpt,
        lessons=past.lessons,
    )
    time_out(message.finish_time, past.ended_at)
    message.duration.FromTimedelta(past.duration)
    return message


def estimate_out(estimate: Estimate) -> task_pb2.ExecutionEstimate:
    message = task_pb2.ExecutionEstimate(
        groups=[
            task_pb2.SimilarityGroupSamples(
                group=GROUP.to_proto(g.group), completed=g.completed, finished=g.finished
            )
            for g in estimate.groups
        ],
        min_samples=history.MIN_SAMPLES,
        window=history.WINDOW,
    )
    if estimate.duration_group is not None:
        message.duration_group = GROUP.to_proto(estimate.duration_group)
        message.duration_samples = estimate.duration_samples
        _duration_out(message.p50_duration, estimate.p50)
        _duration_out(message.p90_duration, estimate.p90)
    if estimate.failure_group is not None and estimate.failure_share is not None:
        message.failure_group = GROUP.to_proto(estimate.failure_group)
        message.failure_samples = estimate.failure_samples
        message.failure_share = estimate.failure_share
    return message


def _duration_out(target: duration_pb2.Duration, value: timedelta | None) -> None:
    if value is not None:
        target.FromTimedelta(value)
