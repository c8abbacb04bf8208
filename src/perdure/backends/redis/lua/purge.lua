-- purge_runs: arguments the cutoff, limit, run id?. Deletes up to limit runs that ended
-- before the cutoff (only the one given, if one is), with everything they own.
-- Returns their ids.
local cutoff, limit, only = arg(), num(), opt()

local function ended_before(run_id)
    local status, finished_at = unpack(redis.call(
        'HMGET', run_key(run_id), 'status', 'finished_at'))
    return status and TERMINAL[status] and finished_at
        and tonumber(finished_at) < tonumber(cutoff)
end

local function delete(run_id)
    local workflow, version, status, parent_id, queue, key = unpack(redis.call(
        'HMGET', run_key(run_id), 'workflow', 'version', 'status', 'parent_id', 'queue', 'key'))
    for _, item_id in ipairs(redis.call('ZRANGE', inbox_key(run_id), 0, -1)) do
        redis.call('DEL', item_key(item_id))
    end
    redis.call('DEL', run_key(run_id), journal_key(run_id), events_key(run_id),
               inbox_key(run_id), waits_key(run_id), keys_key(run_id))
    redis.call('ZREM', P .. 'idx:all', run_id)
    redis.call('ZREM', P .. 'idx:workflow:' .. workflow, run_id)
    redis.call('ZREM', status_index(status), run_id)
    redis.call('ZREM', P .. 'idx:queue:' .. queue, run_id)
    if parent_id then redis.call('ZREM', P .. 'idx:parent:' .. parent_id, run_id) end
    if key then redis.call('ZREM', P .. 'idx:key:' .. key, run_id) end
    -- An ended run waits in no queue and takes no place there (see place()); only its
    -- admission is still counted, by rate limits.
    redis.call('ZREM', admitted_key(queue), run_id)
    unqueue(run_id, workflow, version, queue)
    redis.call('ZREM', FINISHED, run_id)
end

local candidates
if only then
    candidates = {only}
else
    candidates = redis.call('ZRANGEBYSCORE', FINISHED, '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
end
local gone = {}
for _, run_id in ipairs(candidates) do
    if #gone == limit then break end
    if ended_before(run_id) then
        delete(run_id)
        table.insert(gone, run_id)
    end
end
return gone
