"""The job protocol's version (PROTOCOL.md).

A job carries ``"v": "<major>.<minor>"``. Minor versions only add (new
optional fields, new operations); a worker runs any minor of its major and
refuses, with an error reply, a job of another major. A job without ``v``
is taken as 1.0, the version arq-speaking producers have always spoken.
1.1 added the read and settle scripts to the protocol and ``OpIdReused``;
1.2 the optional trace context ``tc``; 1.3 the withdraw script, ``OpWithdrawn``
and ``et`` as the time a job was sent, which the store's fences judge; 1.4 the
queue's clock: the enqueue script stamps each job with the time the queue took it
(``q``, and ``qt`` in its reply), which deadlines (``wait_ms``) and fences judge;
1.5 ``reply_to``: the replies of a producer's jobs on one list it reads for all.
"""

from __future__ import annotations

import re

VERSION = "1.5"
MAJOR = int(VERSION.split(".")[0])
_SHAPE = re.compile(r"(\d{1,4})\.(\d{1,4})")


def refusal(version: object) -> str | None:
    """Why a job of ``version`` cannot run here, or None when it can."""
    if version is None:
        return None
    match = _SHAPE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        return f'protocol version must be "<major>.<minor>", not {version!r:.40}'
    if int(match.group(1)) != MAJOR:
        return f"protocol version {version} is not supported; this worker speaks {VERSION}"
    return None


def minor(version: object) -> int:
    """The minor version of a job that passed ``refusal``: 0 for a job without ``v``."""
    return int(version.split(".")[1]) if isinstance(version, str) else 0


QUEUE_CLOCK = 4
"""The minor version from which a job is fenced by the queue's stamp, not its ``et``."""
