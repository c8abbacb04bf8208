-- admit_runs: arguments queue, now, limit, concurrency?, per_key?, rate?, since? (where
-- the rate's window starts: now - period). Admits the queue's waiting runs whose
-- ready_at has come, as many as its limits allow (rules.admission_room), highest
-- priority first, then by ready_at and id, passing over those whose key has its
-- per_key places taken (rules.pick_admissions); each is due at once. One script, so
-- admissions never interleave, whichever processes make them. Returns the ids
-- admitted, in that order.
local queue, now, limit = arg(), arg(), num()
local concurrency, per_key, rate, since = opt(), opt(), opt(), opt()

local room = limit
if concurrency then
    room = math.min(room, tonumber(concurrency) - redis.call('SCARD', occupying_key(queue)))
end
if rate then
    local recent = redis.call('ZCOUNT', admitted_key(queue), '(' .. since, '+inf')
    room = math.min(room, tonumber(rate) - recent)
end

local CHUNK = 100
local picked, taken = {}, {}

-- Whether a waiting run may take a place: yes, unless its key has none left.
local function admits(run_id)
    if not per_key then return true end
    local key = redis.call('HGET', run_key(run_id), 'key')
    if not key then return true end
    if not taken[key] then
        taken[key] = tonumber(redis.call('HGET', occupying_keys_key(queue), key) or '0')
    end
    if taken[key] >= tonumber(per_key) then return false end
    taken[key] = taken[key] + 1
    return true
end

-- Picks from the runs of one priority that are ready, in order, until room is filled.
-- By rank: each chunk is found at once, where a LIMIT offset would walk again past the
-- runs passed over.
local function pick(priority)
    local waiting = waiting_key(queue, priority)
    local first = 0
    while true do
        local rows = redis.call('ZRANGE', waiting, first, first + CHUNK - 1, 'WITHSCORES')
        for i = 1, #rows, 2 do
            if tonumber(rows[i + 1]) > tonumber(now) then return end
            if admits(rows[i]) then
                table.insert(picked, rows[i])
                if #picked >= room then return end
            end
        end
        if #rows < 2 * CHUNK then return end
        first = first + CHUNK
    end
end

if room > 0 then
    for _, priority in ipairs(redis.call('ZRANGE', priorities_key(queue), 0, -1, 'REV')) do
        pick(priority)
        if #picked >= room then break end
    end
end
-- Written once all are picked: the picking reads the waiting runs by rank.
for _, run_id in ipairs(picked) do
    local key = run_key(run_id)
    redis.call('HDEL', key, 'ready_at')
    redis.call('HSET', key, 'admitted_at', now, 'wake_at', now, 'updated_at', now)
    redis.call('ZADD', admitted_key(queue), now, run_id)
    place(run_id)
    requeue(run_id)
end
if #picked > 0 then wake_workers() end
return picked
