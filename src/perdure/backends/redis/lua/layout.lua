-- open: arguments the layout version this code writes. Records it in a new store, and
-- upgrades a store of an older layout in place, one layout at a time. Returns
-- {the layout the store had (the one written if it was new), the one it has now};
-- a newer layout than this code's is left alone (the caller refuses it).
local version = tonumber(arg())

-- What turns a store of layout n - 1 into one of layout n, by n.
local UPGRADES = {
    -- 2: runs pinned to a code version, journal entry details, the worker registry.
    -- All of it is new fields (absent in layout 1: no version, no detail) and new
    -- keys (the queues of versioned runs, the workers), so a layout-1 store already
    -- reads as layout 2: the bump is what keeps code that reads only layout 1 away.
    [2] = function() end,
    -- 3: run keys, queues, priorities, dedup keys. Every run so far is on the default
    -- queue (whose lanes keep their names), of priority 0, admitted when it was created,
    -- as the SQL backends' migration has it: those that have not ended take their
    -- places there, and all count for its rate limit.
    [3] = function()
        local all = P .. 'idx:all'
        for first = 0, redis.call('ZCARD', all) - 1, 1000 do
            for _, run_id in ipairs(redis.call('ZRANGE', all, first, first + 999)) do
                local key = run_key(run_id)
                local created_at = redis.call('HGET', key, 'created_at')
                redis.call('HSET', key, 'queue', DEFAULT_QUEUE, 'priority', 0,
                           'admitted_at', created_at)
                redis.call('ZADD', P .. 'idx:queue:' .. DEFAULT_QUEUE, created_at, run_id)
                redis.call('ZADD', admitted_key(DEFAULT_QUEUE), created_at, run_id)
                place(run_id)
            end
        end
    end,
}

local found = redis.call('GET', P .. 'layout')
if not found then
    redis.call('SET', P .. 'layout', version)
    return {version, version}
end
local current = tonumber(found)
if current >= version then return {current, current} end
for step = current + 1, version do UPGRADES[step]() end
redis.call('SET', P .. 'layout', version)
return {current, version}
