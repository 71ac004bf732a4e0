"""taskstore's storage layer: the contract, its backends and the task domain."""

from store.backend import (
    BatchOp,
    BatchOutcome,
    Page,
    StorageBackend,
    StoreStats,
    VersionedRecord,
)
from store.errors import (
    BackendError,
    CapacityExceeded,
    InvalidArgument,
    InvalidKey,
    NotFound,
    OpIdReused,
    OpWithdrawn,
    RecordTooLarge,
    StorageError,
    VersionConflict,
    WriteNotConfirmed,
)
from store.keys import make_key, make_prefix, parse_key
from store.memory import InMemoryBackend
from store.open import open_backend
from store.redis import RedisBackend
from store.update import Updater

__all__ = [
    "BackendError",
    "BatchOp",
    "BatchOutcome",
    "CapacityExceeded",
    "InMemoryBackend",
    "InvalidArgument",
    "InvalidKey",
    "NotFound",
    "OpIdReused",
    "OpWithdrawn",
    "Page",
    "RecordTooLarge",
    "RedisBackend",
    "StorageBackend",
    "StorageError",
    "StoreStats",
    "Updater",
    "VersionConflict",
    "VersionedRecord",
    "WriteNotConfirmed",
    "make_key",
    "make_prefix",
    "open_backend",
    "parse_key",
]
