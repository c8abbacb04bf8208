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
