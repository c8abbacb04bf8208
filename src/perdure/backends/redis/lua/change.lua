-- change_run: an operator's change (records.RunChange). Arguments run id, now, count +
-- the statuses expected, the new status, fence (1/0), truncate_from?, count + the
-- entries to append (seq assigned here), error?, count + inbox items, wake (1/0). Returns
-- -1 if the run does not exist; {-2, the holder's id} if it would come back (from an
-- end) to a dedup key an unfinished run of its queue holds; else {applied (1/0), the
-- run's fields}.
local run_id, now = arg(), arg()
local expect = {}
for _ = 1, num() do expect[arg()] = true end
local status, fence, truncate_from = arg(), arg() == '1', opt()
local entries = {}
for _ = 1, num() do table.insert(entries, arg()) end
local err = opt()
local items = {}
for _ = 1, num() do table.insert(items, read_item()) end
local wake = arg() == '1'

local key = run_key(run_id)
local old, journal_len, created_at, ready_at, queue, dedup_key = unpack(redis.call(
    'HMGET', key, 'status', 'journal_len', 'created_at', 'ready_at', 'queue', 'dedup_key'))
if not old then return -1 end
if not expect[old] then return {0, redis.call('HGETALL', key)} end
if dedup_key and not UNFINISHED[old] and UNFINISHED[status] then
    local holder = dedup_holder(queue, dedup_key)
    if holder then return {-2, holder} end
end

if fence then
    -- A new token and no owner: the worker that held the run can write nothing more.
    redis.call('HDEL', key, 'owner', 'lease_until')
    redis.call('HINCRBY', key, 'lease_token', 1)
end
local length = tonumber(journal_len)
if truncate_from then
    local from = tonumber(truncate_from)
    for seq = from, length - 1 do redis.call('HDEL', journal_key(run_id), seq) end
    if from < length then length = from end
    -- The consumed items only mattered to the entries dropped: their keys are free.
    redis.call('DEL', keys_key(run_id))
    for _, item_id in ipairs(redis.call('ZRANGE', inbox_key(run_id), 0, -1)) do
        local item_key_name = redis.call('HGET', item_key(item_id), 'key')
        if item_key_name then redis.call('HSET', keys_key(run_id), item_key_name, item_id) end
    end
end
for _, entry in ipairs(entries) do
    redis.call('HSET', journal_key(run_id), length, entry)
    length = length + 1
end
redis.call('HSET', key, 'journal_len', length, 'updated_at', now)
for _, item in ipairs(items) do
    if add_item(item) then redis.call('HINCRBY', key, 'mailbox', 1) end
end
if TERMINAL[status] then
    finish(run_id, status, nil, err, now)
else
    move_status(run_id, old, status, created_at)
    redis.call('HDEL', key, 'result', 'error', 'finished_at')
    if fence then redis.call('HSET', key, 'recoveries', 0) end
    -- A run still queued is not due until its queue admits it.
    if wake and not ready_at then redis.call('HSET', key, 'wake_at', now) end
    requeue(run_id)
    place(run_id)
    if wake then wake_workers() end
end
return {1, redis.call('HGETALL', key)}
