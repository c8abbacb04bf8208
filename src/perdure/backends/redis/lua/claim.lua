-- claim_runs: arguments owner, limit, now, lease_until, max_recoveries?, version?,
-- count, then the workflows. Given a version, only runs of that version or of none are
-- taken (their queues alone are read); else runs of any version. Returns {claims,
-- dead}: per run leased {its id, its fields, its due items}; per run whose workers died
-- on it too often {its id, owner, token, recoveries}, left for dead_letter.lua (its
-- error is worded by rules.dead_letter_error).
local owner, limit, now, lease_until = arg(), num(), arg(), arg()
local max_recoveries = opt()
local version = opt()
local count = num()
local t = tonumber(now)
if max_recoveries then max_recoveries = tonumber(max_recoveries) end

-- Candidates: runs due by now with no lease, and runs whose lease ran out (strictly
-- before now) while due; at most limit of each kind per queue (workflow and version).
local candidates, seen = {}, {}
local function consider(run_id, workflow, run_version)
    if seen[run_id] then return end
    seen[run_id] = true
    local status, wake_at, created_at, holder, leased_until = unpack(redis.call(
        'HMGET', run_key(run_id), 'status', 'wake_at', 'created_at', 'owner', 'lease_until'))
    local free = not holder or tonumber(leased_until) < t
    if ACTIVE[status] and wake_at and tonumber(wake_at) <= t and free then
        table.insert(candidates, {id = run_id, workflow = workflow, version = run_version,
                                  status = status, wake = tonumber(wake_at),
                                  created = tonumber(created_at)})
    end
end
-- The queues of one workflow and version (false: no version) to take runs from.
local function scan(workflow, run_version)
    local due = redis.call('ZRANGEBYSCORE', due_key(workflow, run_version), '-inf', now,
                           'LIMIT', 0, limit)
    local expired = redis.call('ZRANGEBYSCORE', leases_key(workflow, run_version), '-inf',
                               '(' .. now, 'LIMIT', 0, limit)
    for _, run_id in ipairs(due) do consider(run_id, workflow, run_version) end
    for _, run_id in ipairs(expired) do consider(run_id, workflow, run_version) end
    if run_version and #due == 0 and #expired == 0
            and redis.call('EXISTS', due_key(workflow, run_version),
                           leases_key(workflow, run_version)) == 0 then
        -- No run of this version left to claim: stop listing it (a run of it queued
        -- again lists it again).
        redis.call('SREM', versions_key(workflow), run_version)
    end
end
for _ = 1, count do
    local workflow = arg()
    scan(workflow, false)
    if version then
        scan(workflow, version)
    else
        for _, listed in ipairs(redis.call('SMEMBERS', versions_key(workflow))) do
            scan(workflow, listed)
        end
    end
end
-- The longest waiting first.
table.sort(candidates, function(a, b)
    if a.wake ~= b.wake then return a.wake < b.wake end
    if a.created ~= b.created then return a.created < b.created end
    return a.id < b.id
end)

local claims, dead = {}, {}
for _, c in ipairs(candidates) do
    if #claims == limit then break end
    local key = run_key(c.id)
    local previous, token, recoveries, started_at, created_at = unpack(redis.call(
        'HMGET', key, 'owner', 'lease_token', 'recoveries', 'started_at', 'created_at'))
    if previous and max_recoveries and tonumber(recoveries) >= max_recoveries then
        -- Recovering it once more than allowed dead-letters it (rules.dead_letters).
        table.insert(dead, {c.id, previous, token, tonumber(recoveries)})
    else
        redis.call('HINCRBY', key, 'lease_token', 1)
        redis.call('HSET', key, 'owner', owner, 'lease_until', lease_until, 'updated_at', now)
        if not started_at then redis.call('HSET', key, 'started_at', now) end
        if previous then redis.call('HINCRBY', key, 'recoveries', 1) end  -- its lease ran out
        if c.status == 'pending' then move_status(c.id, 'pending', 'running', created_at) end
        redis.call('ZREM', due_key(c.workflow, c.version), c.id)
        add_leased(c.id, c.workflow, c.version, lease_until)
        table.insert(claims, {c.id, redis.call('HGETALL', key), due_items(c.id, now)})
    end
end
return {claims, dead}
