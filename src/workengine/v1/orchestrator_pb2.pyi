import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrchestratorStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORCHESTRATOR_STATUS_UNSPECIFIED: _ClassVar[OrchestratorStatus]
    ORCHESTRATOR_STATUS_ONLINE: _ClassVar[OrchestratorStatus]
    ORCHESTRATOR_STATUS_BUSY: _ClassVar[OrchestratorStatus]
    ORCHESTRATOR_STATUS_AWAY: _ClassVar[OrchestratorStatus]
    ORCHESTRATOR_STATUS_OFFLINE: _ClassVar[OrchestratorStatus]
ORCHESTRATOR_STATUS_UNSPECIFIED: OrchestratorStatus
ORCHESTRATOR_STATUS_ONLINE: OrchestratorStatus
ORCHESTRATOR_STATUS_BUSY: OrchestratorStatus
ORCHESTRATOR_STATUS_AWAY: OrchestratorStatus
ORCHESTRATOR_STATUS_OFFLINE: OrchestratorStatus

class Charter(_message.Message):
    __slots__ = ("mission", "vision", "values", "expertise")
    MISSION_FIELD_NUMBER: _ClassVar[int]
    VISION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EXPERTISE_FIELD_NUMBER: _ClassVar[int]
    mission: str
    vision: str
    values: _containers.RepeatedScalarFieldContainer[str]
    expertise: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mission: _Optional[str] = ..., vision: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., expertise: _Optional[_Iterable[str]] = ...) -> None: ...

class Orchestrator(_message.Message):
    __slots__ = ("id", "display_name", "role", "discipline", "capabilities", "daemon_endpoint", "status", "timezone", "charter", "create_time", "update_time", "last_heartbeat_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DISCIPLINE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DAEMON_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    CHARTER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    role: str
    discipline: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    daemon_endpoint: str
    status: OrchestratorStatus
    timezone: str
    charter: Charter
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_heartbeat_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., role: _Optional[str] = ..., discipline: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., daemon_endpoint: _Optional[str] = ..., status: _Optional[_Union[OrchestratorStatus, str]] = ..., timezone: _Optional[str] = ..., charter: _Optional[_Union[Charter, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
