#!/usr/bin/env bash
# A producer that speaks PROTOCOL.md with redis-cli alone, in the call shapes of protocol
# 1.3 (five keys to enqueue, seven to settle), which 1.4 keeps serving.
# Usage: producer.sh REDIS_URL QUEUE OWNER SCRIPTS_DIR KEY_PREFIX
# SCRIPTS_DIR holds what `taskstore protocol` prints: enqueue, settle, get, index-page, fetch.
# Prints one line per case: "<case> <what came back>".
set -euo pipefail
url=$1 queue=$2 owner=$3 scripts=$4 prefix=$5
r() { redis-cli --no-auth-warning -u "$url" "$@"; }

sha=$(r SCRIPT LOAD "$(cat "$scripts/enqueue.lua")")
load() { r SCRIPT LOAD "$(cat "$scripts/$1.lua")"; }
get_sha=$(load get) page_sha=$(load index-page) fetch_sha=$(load fetch) settle_sha=$(load settle)
tag="$prefix:{$owner}"  # every key of the owner shares its hash tag

# enqueue ID JOB: EVALSHA the script; prints its reply lines joined by a space.
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
# The same op id for another operation: refused, nothing applied.
reuse="[[{\"op\": \"delete\", \"id\": \"put-$owner\", \"args\": {\"key\": \"$owner:t\"}}]]"
echo "enqueued $(enqueue "reuse-$owner" "{\"v\": \"1.0\", \"f\": \"ops\", \"a\": $reuse, \"k\": {}, \"et\": 0}")"
echo "op_id_reused $(reply "reuse-$owner")"

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

# Argument mistakes: each answered InvalidArgument, naming what is wrong.
mistake() {
    echo "enqueued $(enqueue "mistake-$1-$owner" "$2")"
    echo "mistake $1 $(reply "mistake-$1-$owner")"
}
mistake unknown "$(job 1.0 put "{\"key\": \"$owner:t\", \"data\": {\"__bytes__\": \"eA==\"}, \"nope\": 1}")"
mistake missing "$(job 1.0 put "{\"key\": \"$owner:t\"}")"
mistake type '{"v": "1.0", "f": "apply_batch", "a": ["not a list"], "k": {}, "et": 0}'
mistake version-0 "$(job 1.0 put_if_version "{\"key\": \"$owner:t\", \"data\": {\"__bytes__\": \"eA==\"}, \"expected_version\": 0}")"

# Reads: a record, a task with its result, a page of the owner's tasks (two steps).
echo "get_record $(r EVALSHA "$get_sha" 1 "$tag:t:t" | paste -sd ' ')"
task_id=$(reply "create-$owner" | sed -E 's/.*"task_id": ?"([^"]+)".*/\1/')
done_args="{\"task_id\": \"$task_id\", \"owner_id\": \"$owner\", \"status\": \"completed\", \"result\": {\"content\": []}}"
echo "enqueued $(enqueue "done-$owner" "$(job 1.0 complete_with_result "$done_args")")"
reply "done-$owner" >/dev/null
echo "get_task $(r EVALSHA "$get_sha" 1 "$tag:t:$task_id" | tail -n 1)"
mapfile -t page < <(r EVALSHA "$page_sha" 1 "$tag:idx" 1 "" "" 10)
ids=("${page[@]:0:$((${#page[@]} / 2))}")
record_keys=()
for id in "${ids[@]}"; do record_keys+=("$tag:t:$id"); done
fetched=$(r EVALSHA "$fetch_sha" $((2 + ${#ids[@]})) "$tag:idx" "$tag:exp" "${record_keys[@]}" "${ids[@]}" | wc -l)
echo "list_page ${#ids[@]} $fetched"

# Giving up: a job no worker took is withdrawn; an answered one is left to its reply.
settle() {
    local q=$1 id=$2
    r EVALSHA "$settle_sha" 7 "arq:job:$id" "arq:in-progress:$id" "arq:retry:$id" "arq:result:$id" \
        "$q" "$q:reply:$id" "$q:workers" "$id" 6000
}
idle="$queue-idle"  # a queue no worker serves
r EVALSHA "$sha" 5 "arq:job:idle-$owner" "arq:result:idle-$owner" "$idle" "$idle:wake" \
    "$idle:reply:idle-$owner" "idle-$owner" "$put" >/dev/null
echo "settle_idle $(settle "$idle" "idle-$owner")"
echo "settle_again $(settle "$idle" "idle-$owner")"
echo "settle_answered $(settle "$queue" "put-$owner")"
r DEL "$idle:wake" >/dev/null
