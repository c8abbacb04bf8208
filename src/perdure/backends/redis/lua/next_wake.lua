-- next_wake_at: the earliest wake_at of unleased runs and lease_until of leased ones,
-- over every workflow, as stored; false if no run needs a worker.
local best = nil
for _, workflow in ipairs(redis.call('SMEMBERS', WORKFLOWS)) do
    for _, pair in ipairs({{due_key(workflow), 'wake_at'}, {leases_key(workflow), 'lease_until'}}) do
        local first = redis.call('ZRANGE', pair[1], 0, 0)
        if first[1] then
            best = earlier(best, redis.call('HGET', run_key(first[1]), pair[2]))
        end
    end
end
return best or false
