"""The backend's Lua scripts, each described once: its KEYS, ARGV and reply.

Every key a script touches is one of its KEYS, as Redis requires of scripts
on a cluster; all of them carry the owner's hash tag, so one slot. Scripts
whose records depend on data (listing, sweeping, reaping) are the second of
two steps: the caller reads the task ids from an index, then passes their
record keys.
"""

from __future__ import annotations

from typing import NamedTuple

from store.redis.lua import ArgsT, KeysT, NoArgs, ReplyT, Script


class RecordKeys(NamedTuple):
    record: str


class RecordIndexKeys(NamedTuple):
    record: str
    idx: str
    exp: str


class WriteKeys(NamedTuple):
    record: str
    idx: str
    exp: str
    op: str


class IndexKeys(NamedTuple):
    idx: str
    exp: str


class IndexOnlyKeys(NamedTuple):
    idx: str


class ManyRecordsKeys(NamedTuple):
    idx: str
    exp: str
    records: tuple[str, ...]


class WriteArgs(NamedTuple):
    task_id: str
    data: bytes
    op_id: str
    options: str
    op_name: str


class DeleteArgs(NamedTuple):
    task_id: str
    op_id: str
    op_ttl_ms: int
    sent_at_ms: int | str


class OpKeys(NamedTuple):
    op: str


class WithdrawArgs(NamedTuple):
    sent_at_ms: int
    op_ttl_ms: int


class TaskArgs(NamedTuple):
    task_id: str


class ManyTasksArgs(NamedTuple):
    tasks: tuple[str, ...]


class IndexPageArgs(NamedTuple):
    descending: str
    after_score: int | str
    after_task: str
    limit: int


class Written(NamedTuple):
    status: int
    value: int
    due: int
    expected: int
    current_data: bytes | None


class Deleted(NamedTuple):
    existed: int
    first_op: bytes | None
    withdrawn: int


class Got(NamedTuple):
    version: int
    data: bytes | None


class IndexPage(NamedTuple):
    tasks: list[bytes]
    scores: list[int]


class Fetched(NamedTuple):
    pruned: int
    versions: list[int]
    data: list[bytes | None]


class Swept(NamedTuple):
    removed: int
    next_expiry: int
    more: int


class Reindexed(NamedTuple):
    repaired: int
    due: int


def _script(
    name: str, keys: type[KeysT], args: type[ArgsT], reply: type[ReplyT]
) -> Script[KeysT, ArgsT, ReplyT]:
    return Script(__package__, name, keys=keys, args=args, reply=reply, prelude="_lib.lua")


WRITE = _script("write", WriteKeys, WriteArgs, Written)
GET = _script("get", RecordKeys, NoArgs, Got)
DELETE = _script("delete", WriteKeys, DeleteArgs, Deleted)
WITHDRAW = _script("withdraw", OpKeys, WithdrawArgs, int)
INDEX_PAGE = _script("index_page", IndexOnlyKeys, IndexPageArgs, IndexPage)
FETCH = _script("fetch", ManyRecordsKeys, ManyTasksArgs, Fetched)
COUNT = _script("count", IndexKeys, NoArgs, int)
SWEEP = _script("sweep", ManyRecordsKeys, ManyTasksArgs, Swept)
REAP_INDEX = _script("reap_index", ManyRecordsKeys, ManyTasksArgs, int)
REINDEX = _script("reindex", RecordIndexKeys, TaskArgs, Reindexed)
