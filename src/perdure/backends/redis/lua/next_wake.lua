-- next_wake_at: the earliest wake_at of unleased runs and lease_until of leased ones,
-- over every workflow, as stored; false if no run needs a worker.
local best = nil
local function look(workflow, version)
    for _, pair in ipairs({{due_key(workflow, version), 'wake_at'},
                           {leases_key(workflow, version), 'lease_until'}}) do
        local first = redis.call('ZRANGE', pair[1], 0, 0)
        if first[1] then
            best = earlier(best, redis.call('HGET', run_key(first[1]), pair[2]))
        end
    end
end
for _, workflow in ipairs(redis.call('SMEMBERS', WORKFLOWS)) do
    look(workflow, false)
    for _, version in ipairs(redis.call('SMEMBERS', versions_key(workflow))) do
        look(workflow, version)
    end
end
return best or false
