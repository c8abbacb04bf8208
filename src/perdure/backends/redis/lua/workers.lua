-- list_workers: arguments seen_after. Returns {id, seen_at, info} per worker seen
-- strictly after it (the caller orders them by id).
local seen_after = arg()
local out = {}
for _, worker_id in ipairs(redis.call('ZRANGEBYSCORE', WORKERS, '(' .. seen_after, '+inf')) do
    local seen_at, info = unpack(redis.call('HMGET', worker_key(worker_id), 'seen_at', 'info'))
    table.insert(out, {worker_id, seen_at, info})
end
return out
