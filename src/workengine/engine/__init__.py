"""Use cases: what WorkEngine does, in terms of domain values. No grpc, no SQL text."""

from workengine.engine.work_engine import WorkEngine

__all__ = ["WorkEngine"]
