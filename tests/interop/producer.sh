#!/usr/bin/env bash
# A producer that speaks PROTOCOL.md with redis-cli alone.
# Usage: producer.sh REDIS_URL QUEUE OWNER ENQUEUE_LUA
# Prints one line per case: "<case> <what came back>".
set -euo pipefail
url=$1 queue=$2 owner=$3 script=$4
r() { redis-cli --no-auth-warning -u "$url" "$@"; }

sha=$(r SCRIPT LOAD "$(cat "$script")")

# enqueue ID JOB: EVALSHA the script; prints its two reply lines joined by a space.
enqueue() {
    local id=$1 job=$2
    r EVALSHA "$sha" 5 "arq:job:$id" "arq:result:$id" "$queue" "$queue:wake" "$queue:reply:$id" \
        "$id" "$job" | paste -sd ' '
}
# reply ID [TIMEOUT_S]: the job's reply, left in place for another reader.
reply() { r BLMOVE "$queue:reply:$1" "$queue:reply:$1" RIGHT LEFT "${2:-10}"; }
job() { printf '{"v": "%s", "f": "%s", "a": [], "k": %s, "et": %s}' "$1" "$2" "$3" "$(date +%s000)"; }

echo "enqueued $(enqueue "create-$owner" "$(job 1.0 create_task "{\"owner_id\": \"$owner\", \"request_method\": \"tools/call\"}")")"
echo "create_task $(reply "create-$owner")"

# A write sent alone: its op id is the job id. "hello" in base64.
put=$(job 1.0 put "{\"key\": \"$owner:t\", \"data\": {\"__bytes__\": \"aGVsbG8=\"}}")
echo "enqueued $(enqueue "put-$owner" "$put")"
echo "put $(reply "put-$owner")"

echo "enqueued $(enqueue "cas-$owner" "$(job 1.0 put_if_version "{\"key\": \"$owner:t\", \"data\": {\"__bytes__\": \"eA==\"}, \"expected_version\": 5}")")"
echo "put_if_version $(reply "cas-$owner")"

# The same op id again, alone (the script leaves the job alone) and inside an ops job (replayed).
echo "resent $(enqueue "put-$owner" "$put")"
echo "resent_reply $(reply "put-$owner")"
ops="[[{\"op\": \"put\", \"id\": \"put-$owner\", \"args\": {\"key\": \"$owner:t\", \"data\": {\"__bytes__\": \"YWdhaW4=\"}}}]]"
echo "enqueued $(enqueue "ops-$owner" "{\"v\": \"1.0\", \"f\": \"ops\", \"a\": $ops, \"k\": {}, \"et\": 0}")"
echo "ops_replay $(reply "ops-$owner")"

# Jobs that cannot run: each is answered within a second.
echo "enqueued $(enqueue "future-$owner" "$(job 2.0 put "{}")")"
echo "future_version $(reply "future-$owner" 1)"
echo "enqueued $(enqueue "unknown-$owner" "$(job 1.0 frobnicate "{}")")"
echo "unknown_operation $(reply "unknown-$owner" 1)"
# The script refuses garbage outright; a producer that bypasses it still gets an answer.
echo "refused $(enqueue "garbage-$owner" 'not json' 2>&1 || true)"
r SET "arq:job:garbage-$owner" 'not json' PX 60000 >/dev/null
r ZADD "$queue" "$(date +%s000)" "garbage-$owner" >/dev/null
r LPUSH "$queue:wake" 1 >/dev/null
echo "malformed $(reply "garbage-$owner" 1)"
