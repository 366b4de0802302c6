from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_FLAG_NONE: _ClassVar[RecordFlag]
    RECORD_FLAG_TRUNCATED: _ClassVar[RecordFlag]
    RECORD_FLAG_SPLIT: _ClassVar[RecordFlag]
    RECORD_FLAG_PARSE_ERROR: _ClassVar[RecordFlag]
    RECORD_FLAG_PARTIAL_FLUSH: _ClassVar[RecordFlag]
RECORD_FLAG_NONE: RecordFlag
RECORD_FLAG_TRUNCATED: RecordFlag
RECORD_FLAG_SPLIT: RecordFlag
RECORD_FLAG_PARSE_ERROR: RecordFlag
RECORD_FLAG_PARTIAL_FLUSH: RecordFlag

class Source(_message.Message):
    __slots__ = ("key", "node", "namespace", "pod", "pod_uid", "container", "container_id", "restart", "workload", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    node: str
    namespace: str
    pod: str
    pod_uid: str
    container: str
    container_id: str
    restart: int
    workload: str
    path: str
    def __init__(self, key: _Optional[str] = ..., node: _Optional[str] = ..., namespace: _Optional[str] = ..., pod: _Optional[str] = ..., pod_uid: _Optional[str] = ..., container: _Optional[str] = ..., container_id: _Optional[str] = ..., restart: _Optional[int] = ..., workload: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("source", "ts_ns", "end_offsets", "streams", "levels", "flags", "text", "text_lengths", "execution_index", "execution_ids", "attrs_index", "attrs_json", "dropped_lines", "covered_offset")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    END_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INDEX_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    ATTRS_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTRS_JSON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_LINES_FIELD_NUMBER: _ClassVar[int]
    COVERED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    source: Source
    ts_ns: _containers.RepeatedScalarFieldContainer[int]
    end_offsets: _containers.RepeatedScalarFieldContainer[int]
    streams: bytes
    levels: bytes
    flags: bytes
    text: bytes
    text_lengths: _containers.RepeatedScalarFieldContainer[int]
    execution_index: _containers.RepeatedScalarFieldContainer[int]
    execution_ids: _containers.RepeatedScalarFieldContainer[str]
    attrs_index: _containers.RepeatedScalarFieldContainer[int]
    attrs_json: _containers.RepeatedScalarFieldContainer[bytes]
    dropped_lines: int
    covered_offset: int
    def __init__(self, source: _Optional[_Union[Source, _Mapping]] = ..., ts_ns: _Optional[_Iterable[int]] = ..., end_offsets: _Optional[_Iterable[int]] = ..., streams: _Optional[bytes] = ..., levels: _Optional[bytes] = ..., flags: _Optional[bytes] = ..., text: _Optional[bytes] = ..., text_lengths: _Optional[_Iterable[int]] = ..., execution_index: _Optional[_Iterable[int]] = ..., execution_ids: _Optional[_Iterable[str]] = ..., attrs_index: _Optional[_Iterable[int]] = ..., attrs_json: _Optional[_Iterable[bytes]] = ..., dropped_lines: _Optional[int] = ..., covered_offset: _Optional[int] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("batches",)
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[Batch]
    def __init__(self, batches: _Optional[_Iterable[_Union[Batch, _Mapping]]] = ...) -> None: ...

class SourceAck(_message.Message):
    __slots__ = ("key", "durable_offset")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DURABLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    key: str
    durable_offset: int
    def __init__(self, key: _Optional[str] = ..., durable_offset: _Optional[int] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("acks", "stored", "duplicates")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SourceAck]
    stored: int
    duplicates: int
    def __init__(self, acks: _Optional[_Iterable[_Union[SourceAck, _Mapping]]] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...

class OffsetsRequest(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class OffsetsResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SourceAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[SourceAck, _Mapping]]] = ...) -> None: ...
