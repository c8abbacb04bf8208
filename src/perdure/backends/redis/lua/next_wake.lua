-- next_wake_at: the earliest wake_at of unleased runs and lease_until of leased ones,
-- over every workflow, as stored; false if no run needs a worker.
local best = nil
local function look(workflow, version, queue)
    for _, pair in ipairs({{due_key(workflow, version, queue), 'wake_at'},
                           {leases_key(workflow, version, queue), 'lease_until'}}) do
        local first = redis.call('ZRANGE', pair[1], 0, 0)
        if first[1] then
            best = earlier(best, redis.call('HGET', run_key(first[1]), pair[2]))
        end
    end
end
local function look_queue(workflow, queue)
    look(workflow, false, queue)
    for _, version in ipairs(redis.call('SMEMBERS', versions_key(workflow, queue))) do
        look(workflow, version, queue)
    end
end
for _, workflow in ipairs(redis.call('SMEMBERS', WORKFLOWS)) do
    look_queue(workflow, DEFAULT_QUEUE)
    for _, queue in ipairs(redis.call('SMEMBERS', queues_key(workflow))) do
        look_queue(workflow, queue)
    end
end
return best or false
