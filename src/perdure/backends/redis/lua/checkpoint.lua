-- checkpoint: arguments count, then that many checkpoints, each applied in turn, all or
-- nothing and fenced by owner + token. Returns {{applied (1/0), mailbox} per checkpoint,
-- false}; or, if a checkpoint would create a child whose dedup key an unfinished run
-- holds, {the results of the checkpoints before it, {queue, dedup key, holder}}, that
-- checkpoint and those after it left unwritten.
--
-- Redis does not undo a script that fails halfway, so each checkpoint is read and
-- checked in full (lease, journal sequence) before its first write.

local function read_checkpoint()
    local cp = {run_id = arg(), owner = arg(), token = arg(), now = arg(),
                lease_until = arg(), entries = {}, consumed = {}, inbox = {},
                cancel_timers = {}, children = {}, cancel_runs = {}, events = {}}
    for _ = 1, num() do table.insert(cp.entries, {seq = arg(), data = arg()}) end
    for _ = 1, num() do table.insert(cp.consumed, arg()) end
    for _ = 1, num() do
        local item, cancel_error = read_delivery()
        table.insert(cp.inbox, {item = item, cancel_error = cancel_error})
    end
    for _ = 1, num() do table.insert(cp.cancel_timers, arg()) end
    for _ = 1, num() do table.insert(cp.children, read_run()) end
    for _ = 1, num() do
        local item, cancel_error = read_delivery()
        table.insert(cp.cancel_runs, {item = item, cancel_error = cancel_error})
    end
    for _ = 1, num() do table.insert(cp.events, {arg(), arg()}) end
    cp.outcome, cp.result, cp.error, cp.new_input = arg(), opt(), opt(), opt()
    cp.release, cp.mailbox_seen, cp.runnable = arg() == '1', arg(), arg() == '1'
    return cp
end

-- Whether the checkpoint may write: its lease is current, and its entries continue
-- the journal (consecutive from its length, none of them recorded already).
local function fenced(cp, key)
    local holder, token, journal_len = unpack(redis.call(
        'HMGET', key, 'owner', 'lease_token', 'journal_len'))
    if not holder or holder ~= cp.owner or token ~= cp.token then return false end
    local base = tonumber(journal_len)
    for i, entry in ipairs(cp.entries) do
        if tonumber(entry.seq) ~= base + i - 1 then return false end
        if redis.call('HEXISTS', journal_key(cp.run_id), entry.seq) == 1 then return false end
    end
    return true
end

-- A child the checkpoint cannot create, its dedup key held by an unfinished run of its
-- queue or by a child before it: {queue, dedup key, holder}, or nil.
local function refused_child(cp)
    local taken = {}
    for _, child in ipairs(cp.children) do
        if child.dedup_key and redis.call('EXISTS', run_key(child.id)) == 0 then
            local slot = #child.queue .. ':' .. child.queue .. child.dedup_key
            local holder = taken[slot] or dedup_holder(child.queue, child.dedup_key)
            if holder and holder ~= child.id then
                return {child.queue, child.dedup_key, holder}
            end
            taken[slot] = child.id
        end
    end
    return nil
end

-- When a parked run next needs a worker, as rules.wake_after decides: at once if it
-- has work or unseen news, else when its earliest timer, retry, deadline, child
-- result or cancel is visible; nil: only news wakes it.
local function wake_after(cp, mailbox)
    if cp.runnable or mailbox ~= cp.mailbox_seen then return cp.now end
    local first = redis.call('ZRANGE', waits_key(cp.run_id), 0, 0)
    if first[1] then return redis.call('HGET', item_key(first[1]), 'visible_at') end
    return nil
end

-- What a continued run keeps of its inbox: the unconsumed items of CARRIED_OVER kinds,
-- and only their keys.
local function clear_inbox(run_id)
    redis.call('DEL', keys_key(run_id))
    for _, item_id in ipairs(redis.call('ZRANGE', inbox_key(run_id), 0, -1)) do
        local kind, item_key_name = unpack(redis.call('HMGET', item_key(item_id), 'kind', 'key'))
        if CARRIED_OVER[kind] then
            if item_key_name then redis.call('HSET', keys_key(run_id), item_key_name, item_id) end
        else
            drop_item(run_id, item_id)
        end
    end
end

local function apply(cp, key)
    local run_id, now = cp.run_id, cp.now
    local generation, created_at = unpack(redis.call('HMGET', key, 'generation', 'created_at'))
    redis.call('HSET', key, 'updated_at', now)
    if #cp.entries > 0 then
        local fields = {}
        for _, entry in ipairs(cp.entries) do
            table.insert(fields, entry.seq); table.insert(fields, entry.data)
        end
        hset_all(journal_key(run_id), fields)
        redis.call('HINCRBY', key, 'journal_len', #cp.entries)
        -- Progress: the worker deaths so far were not this run's doing.
        redis.call('HSET', key, 'recoveries', 0)
    end
    for _, item_id in ipairs(cp.consumed) do
        -- Only its own items: the key stays taken, so a replay cannot add it again.
        if redis.call('ZSCORE', inbox_key(run_id), item_id) then drop_item(run_id, item_id) end
    end
    for _, pos in ipairs(cp.cancel_timers) do
        -- The engine's timer key; a timer already consumed stays recorded.
        local timer = 'timer:' .. generation .. ':' .. pos
        local item_id = redis.call('HGET', keys_key(run_id), timer)
        if item_id and redis.call('ZSCORE', inbox_key(run_id), item_id) then
            drop_item(run_id, item_id)
            redis.call('HDEL', keys_key(run_id), timer)
        end
    end
    for _, child in ipairs(cp.children) do create_run(child) end
    for _, d in ipairs(cp.inbox) do
        if d.item.run_id == run_id then
            add_item(d.item)  -- its own timers and retries: not news, no wake-up
        else
            deliver(d.item, now, d.cancel_error)  -- nil for a run that does not exist
        end
    end
    for _, d in ipairs(cp.cancel_runs) do deliver(d.item, now, d.cancel_error) end
    local fields = {}
    for _, event in ipairs(cp.events) do
        table.insert(fields, event[1]); table.insert(fields, event[2])
    end
    hset_all(events_key(run_id), fields)

    local outcome = cp.outcome
    if outcome == 'completed' or outcome == 'failed' or outcome == 'cancelled' then
        finish(run_id, outcome, cp.result, cp.error, now)
    elseif outcome == 'held' then
        local status = redis.call('HGET', key, 'status')
        move_status(run_id, status, 'held', created_at)
        set_or_clear(key, 'error', cp.error)
        redis.call('HDEL', key, 'owner', 'lease_until', 'wake_at')
    elseif outcome == 'continued' then
        redis.call('DEL', journal_key(run_id))
        clear_inbox(run_id)
        redis.call('HINCRBY', key, 'generation', 1)
        redis.call('HSET', key, 'journal_len', 0, 'wake_at', now, 'started_at', now)
        if cp.new_input then redis.call('HSET', key, 'input', cp.new_input) end
        redis.call('HDEL', key, 'owner', 'lease_until')
    elseif cp.release then
        local wake = wake_after(cp, redis.call('HGET', key, 'mailbox'))
        redis.call('HDEL', key, 'owner', 'lease_until')
        set_or_clear(key, 'wake_at', wake)
    else
        redis.call('HSET', key, 'lease_until', cp.lease_until)
    end
    -- (A paused run stays leased by its worker, which parks it; it is in no queue.)
    requeue(run_id)
end

local results = {}
for _ = 1, num() do
    local cp = read_checkpoint()
    local key = run_key(cp.run_id)
    local applied = 0
    if fenced(cp, key) then
        local refused = refused_child(cp)
        if refused then return {results, refused} end
        apply(cp, key)
        applied = 1
    end
    table.insert(results, {applied, tonumber(redis.call('HGET', key, 'mailbox') or '0')})
end
return {results, false}
