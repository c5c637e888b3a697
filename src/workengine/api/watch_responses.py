"""WatchTaskProgress responses, converted once per event however many streams it goes to."""

from __future__ import annotations

from collections import OrderedDict

from workengine.api.convert import event_out
from workengine.domain.model import TaskEvent
from workengine.v1 import work_engine_service_pb2 as service_pb2

WatchResponse = service_pb2.WatchTaskProgressResponse


class EventResponses:
    """Converts each event once, however many watches it goes to: the feed hands the same
    TaskEvent object to every subscriber of its scope, so identity is the key. The cache keeps
    the event itself alongside, so an id is never reused while its entry lives."""

    def __init__(self, size: int = 4_096) -> None:
        self._size = size
        self._converted: OrderedDict[int, tuple[TaskEvent, service_pb2.WatchTaskProgressResponse]] = (
            OrderedDict()
        )

    def get(self, event: TaskEvent) -> WatchResponse:
        hit = self._converted.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        response = service_pb2.WatchTaskProgressResponse(event=event_out(event))
        self._converted[id(event)] = (event, response)
        if len(self._converted) > self._size:
            self._converted.popitem(last=False)
        return response
