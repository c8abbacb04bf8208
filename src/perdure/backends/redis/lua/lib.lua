-- What every script shares: key names, the argument reader, and the writes that
-- several domain transactions make (create a run, add an inbox item, deliver, finish).
-- Prepended to each script; the {{...}} constants are filled in from perdure's records
-- and rules, so the kinds and statuses are named in one place.
--
-- Times travel and are stored as the strings Python's repr() made of them: they are
-- compared here through tonumber() but never written back from a Lua number, whose
-- string form would lose digits.

local P = ARGV[1]  -- the key prefix: every key a script touches starts with it

local SCHEDULED = {{SCHEDULED}}  -- inbox kinds due only at their visible_at
local CARRIED_OVER = {{CARRIED_OVER}}  -- inbox kinds a continued run keeps
local TERMINAL = {{TERMINAL}}  -- statuses of runs that ended
local ACTIVE = {{ACTIVE}}  -- statuses of runs a worker may claim
local UNFINISHED = {{UNFINISHED}}  -- statuses of runs that hold their place in a queue
local DEFAULT_QUEUE = {{DEFAULT_QUEUE}}

local function run_key(id) return P .. 'run:' .. id end
local function journal_key(id) return P .. 'journal:' .. id end
local function events_key(id) return P .. 'events:' .. id end
local function inbox_key(id) return P .. 'inbox:' .. id end
local function waits_key(id) return P .. 'waits:' .. id end
local function keys_key(id) return P .. 'keys:' .. id end
local function item_key(item_id) return P .. 'item:' .. item_id end
-- A workflow's runs wait in one lane per queue and code version (and one for runs of
-- no version), so that a worker never reads past runs it may not take: those of
-- another version, or of a queue it does not serve. The kind of key says which parts
-- a lane's name has ('v': a version, 'q': a queue other than the default, whose lanes
-- keep the names they had before queues), and their lengths keep them apart from the
-- workflow's name.
local function lane_key(kind, workflow, version, queue)
    local name = workflow
    if version then
        kind = 'v' .. kind
        name = #version .. ':' .. version .. ':' .. name
    end
    if queue ~= DEFAULT_QUEUE then
        kind = 'q' .. kind
        name = #queue .. ':' .. queue .. ':' .. name
    end
    return P .. kind .. ':' .. name
end
local function due_key(workflow, version, queue)
    return lane_key('due', workflow, version, queue)
end
local function leases_key(workflow, version, queue)
    return lane_key('leases', workflow, version, queue)
end
-- The versions with runs in a workflow's lanes of one queue; the queues other than
-- the default with runs of a workflow.
local function versions_key(workflow, queue)
    if queue == DEFAULT_QUEUE then return P .. 'versions:' .. workflow end
    return P .. 'qversions:' .. #queue .. ':' .. queue .. ':' .. workflow
end
local function queues_key(workflow) return P .. 'queues:' .. workflow end
-- A queue's runs waiting to be admitted, one sorted set per priority (by ready_at; ties
-- by id), and its priorities with waiting runs; its admitted runs that have not ended,
-- and how many of them each run key has; its runs by admitted_at, for rate limits;
-- dedup key -> the run that took it last (free once that run ended).
local function waiting_key(queue, priority) return P .. 'waiting:' .. priority .. ':' .. queue end
local function priorities_key(queue) return P .. 'priorities:' .. queue end
local function occupying_key(queue) return P .. 'occupying:' .. queue end
local function occupying_keys_key(queue) return P .. 'occupying_keys:' .. queue end
local function admitted_key(queue) return P .. 'admitted:' .. queue end
local function dedup_key_of(queue) return P .. 'dedup:' .. queue end
local function status_index(status) return P .. 'idx:status:' .. status end
local WORKFLOWS = P .. 'workflows'
local FINISHED = P .. 'finished'  -- ended runs by finished_at, for purges
local NEXT_ITEM = P .. 'next_item'
local WORKERS = P .. 'workers'  -- worker ids by when they were last seen
local function worker_key(id) return P .. 'worker:' .. id end

-- The argument reader: a script's arguments come as one string (ARGV[2]) of values,
-- each a 4-byte big-endian length then its bytes, read in order.
local ARGS = ARGV[2]
local at = 1
local function arg()
    local length, start = struct.unpack('>I4', ARGS, at)
    at = start + length
    return string.sub(ARGS, start, at - 1)
end
local function opt()  -- a value that may be absent: '1' then the value, or '0'
    if arg() == '1' then return arg() end
    return nil
end
local function num() return tonumber(arg()) end

local function earlier(a, b)  -- the earlier of two time strings (either may be nil)
    if not a then return b end
    if not b then return a end
    if tonumber(b) < tonumber(a) then return b end
    return a
end

-- HSET of a flat field/value list of any length (unpack() has a limit of its own,
-- and an error halfway through a script is not undone).
local function hset_all(key, flat)
    for first = 1, #flat, 1000 do
        redis.call('HSET', key, unpack(flat, first, math.min(first + 999, #flat)))
    end
end

-- Lists a lane, for the claims that take any version or any queue.
local function list_lane(workflow, version, queue)
    if version then redis.call('SADD', versions_key(workflow, queue), version) end
    if queue ~= DEFAULT_QUEUE then redis.call('SADD', queues_key(workflow), queue) end
end
-- Puts a run in its lane as due at score (a wake_at) or leased until it (a lease_until).
-- Tells watching workers (Backend.watch) that work may be due now, once per script:
-- a hint that saves them a poll interval; missing it costs only that interval.
local woken = false
local function wake_workers()
    if not woken then
        redis.call('PUBLISH', P .. 'wake', '')
        woken = true
    end
end

local function add_due(run_id, workflow, version, queue, score)
    redis.call('ZADD', due_key(workflow, version, queue), score, run_id)
    list_lane(workflow, version, queue)
end
local function add_leased(run_id, workflow, version, queue, score)
    redis.call('ZADD', leases_key(workflow, version, queue), score, run_id)
    list_lane(workflow, version, queue)
end
local function unqueue(run_id, workflow, version, queue)
    redis.call('ZREM', due_key(workflow, version, queue), run_id)
    redis.call('ZREM', leases_key(workflow, version, queue), run_id)
end

local function set_or_clear(key, field, value)
    if value then
        redis.call('HSET', key, field, value)
    else
        redis.call('HDEL', key, field)
    end
end

local function move_status(id, from, to, created_at)
    redis.call('ZREM', status_index(from), id)
    redis.call('ZADD', status_index(to), created_at, id)
    redis.call('HSET', run_key(id), 'status', to)
end

-- An inbox item as the arguments carry it: run, kind, pos, topic?, payload?,
-- visible_at, key?.
local function read_item()
    return {run_id = arg(), kind = arg(), pos = arg(), topic = opt(), payload = opt(),
            visible_at = arg(), key = opt()}
end

-- Adds an item to its run's inbox; false if its key was already used there.
local function add_item(item)
    local run_id = item.run_id
    if item.key and redis.call('HEXISTS', keys_key(run_id), item.key) == 1 then
        return false
    end
    local item_id = redis.call('INCR', NEXT_ITEM)
    local fields = {'kind', item.kind, 'pos', item.pos, 'visible_at', item.visible_at}
    if item.topic then table.insert(fields, 'topic'); table.insert(fields, item.topic) end
    if item.payload then table.insert(fields, 'payload'); table.insert(fields, item.payload) end
    if item.key then
        table.insert(fields, 'key'); table.insert(fields, item.key)
        redis.call('HSET', keys_key(run_id), item.key, item_id)
    end
    redis.call('HSET', item_key(item_id), unpack(fields))
    redis.call('ZADD', inbox_key(run_id), item_id, item_id)
    if item.kind ~= 'signal' then
        -- Everything but messages may wake a parked run (see rules.wake_after).
        redis.call('ZADD', waits_key(run_id), item.visible_at, item_id)
    end
    return true
end

local function drop_item(run_id, item_id)
    redis.call('ZREM', inbox_key(run_id), item_id)
    redis.call('ZREM', waits_key(run_id), item_id)
    redis.call('DEL', item_key(item_id))
end

-- The run's unconsumed items visible at now, oldest first: {id, {field, value, ...}}.
local function due_items(run_id, now)
    local out = {}
    local t = tonumber(now)
    for _, item_id in ipairs(redis.call('ZRANGE', inbox_key(run_id), 0, -1)) do
        local kind, visible_at = unpack(redis.call('HMGET', item_key(item_id), 'kind', 'visible_at'))
        if not SCHEDULED[kind] or tonumber(visible_at) <= t then
            table.insert(out, {tonumber(item_id), redis.call('HGETALL', item_key(item_id))})
        end
    end
    return out
end

-- A run as the arguments carry it: id, workflow, input, parent_id?, parent_pos,
-- created_at, start, its deadline item if it has a timeout ('1' + item, or '0'), then
-- the journal and events it starts with (a fork's): count + (seq, entry) pairs,
-- count + (key, value) pairs; then its version?, key?, queue, priority, dedup_key?,
-- queued (1/0).
local function read_run()
    local run = {id = arg(), workflow = arg(), input = arg(), parent_id = opt(),
                 parent_pos = arg(), created_at = arg(), start = arg(),
                 journal = {}, events = {}}
    if arg() == '1' then run.deadline = read_item() end
    for _ = 1, num() * 2 do table.insert(run.journal, arg()) end
    for _ = 1, num() * 2 do table.insert(run.events, arg()) end
    run.version, run.key, run.queue, run.priority = opt(), opt(), arg(), arg()
    run.dedup_key, run.queued = opt(), arg() == '1'
    return run
end

local function index_run(run)
    local score = run.created_at
    redis.call('ZADD', P .. 'idx:all', score, run.id)
    redis.call('ZADD', P .. 'idx:workflow:' .. run.workflow, score, run.id)
    redis.call('ZADD', P .. 'idx:queue:' .. run.queue, score, run.id)
    redis.call('ZADD', status_index('pending'), score, run.id)
    if run.parent_id then
        redis.call('ZADD', P .. 'idx:parent:' .. run.parent_id, score, run.id)
    end
    if run.key then redis.call('ZADD', P .. 'idx:key:' .. run.key, score, run.id) end
end

-- The unfinished run of the queue that holds dedup_key, if any: the run that took it
-- last, unless that run has ended or is gone.
local function dedup_holder(queue, dedup_key)
    local holder = redis.call('HGET', dedup_key_of(queue), dedup_key)
    if not holder then return nil end
    local status = redis.call('HGET', run_key(holder), 'status')
    if status and UNFINISHED[status] then return holder end
    return nil
end

-- Keeps the run in its queue's indexes as its state calls for: waiting its turn while
-- queued and pending, taking a place once admitted until it ends, holding its dedup key
-- until it ends. Called wherever a run is created, admitted, or changes status other
-- than by a claim (pending -> running) or a hold (running -> held), which change none
-- of it.
local function place(run_id)
    local status, queue, priority, key, dedup_key, ready_at, admitted_at = unpack(redis.call(
        'HMGET', run_key(run_id), 'status', 'queue', 'priority', 'key', 'dedup_key',
        'ready_at', 'admitted_at'))
    local waiting = waiting_key(queue, priority)
    if ready_at and status == 'pending' then
        redis.call('ZADD', waiting, ready_at, run_id)
        redis.call('ZADD', priorities_key(queue), priority, priority)
    elseif redis.call('ZREM', waiting, run_id) == 1 and redis.call('EXISTS', waiting) == 0 then
        redis.call('ZREM', priorities_key(queue), priority)
    end
    if admitted_at and UNFINISHED[status] then
        if redis.call('SADD', occupying_key(queue), run_id) == 1 and key then
            redis.call('HINCRBY', occupying_keys_key(queue), key, 1)
        end
    elseif redis.call('SREM', occupying_key(queue), run_id) == 1 and key then
        if redis.call('HINCRBY', occupying_keys_key(queue), key, -1) <= 0 then
            redis.call('HDEL', occupying_keys_key(queue), key)
        end
    end
    if dedup_key then
        local holders = dedup_key_of(queue)
        if UNFINISHED[status] then
            if not dedup_holder(queue, dedup_key) then
                redis.call('HSET', holders, dedup_key, run_id)
            end
        elseif redis.call('HGET', holders, dedup_key) == run_id then
            redis.call('HDEL', holders, dedup_key)
        end
    end
end

-- Creates the run unless its id is taken (false), or its dedup key is held by an
-- unfinished run of its queue (false, that run's id); true if it did. A queued run has
-- no wake_at (no worker may claim it) but a ready_at, until its queue admits it; any
-- other is admitted at its start.
local function create_run(run)
    local key = run_key(run.id)
    if redis.call('EXISTS', key) == 1 then return false end
    if run.dedup_key then
        local holder = dedup_holder(run.queue, run.dedup_key)
        if holder then return false, holder end
    end
    local fields = {
        'workflow', run.workflow, 'status', 'pending', 'input', run.input,
        'parent_pos', run.parent_pos, 'generation', 0, 'journal_len', #run.journal / 2,
        'created_at', run.created_at, 'updated_at', run.created_at,
        'lease_token', 0, 'mailbox', 0, 'recoveries', 0,
        'queue', run.queue, 'priority', run.priority,
    }
    if run.queued then
        table.insert(fields, 'ready_at'); table.insert(fields, run.start)
    else
        table.insert(fields, 'wake_at'); table.insert(fields, run.start)
        table.insert(fields, 'admitted_at'); table.insert(fields, run.start)
    end
    for _, field in ipairs({'parent_id', 'version', 'key', 'dedup_key'}) do
        if run[field] then
            table.insert(fields, field); table.insert(fields, run[field])
        end
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('SADD', WORKFLOWS, run.workflow)
    if not run.queued then
        add_due(run.id, run.workflow, run.version, run.queue, run.start)
        redis.call('ZADD', admitted_key(run.queue), run.start, run.id)
    end
    index_run(run)
    place(run.id)
    hset_all(journal_key(run.id), run.journal)
    hset_all(events_key(run.id), run.events)
    if run.deadline then add_item(run.deadline) end
    if not run.queued then wake_workers() end
    return true
end

-- Puts the run in the lanes its state calls for: due (no lease, a wake_at) or leased,
-- if a worker may claim it; in none otherwise.
local function requeue(run_id)
    local status, owner, wake_at, lease_until, workflow, version, queue = unpack(redis.call(
        'HMGET', run_key(run_id), 'status', 'owner', 'wake_at', 'lease_until', 'workflow',
        'version', 'queue'))
    if ACTIVE[status] and not owner and wake_at then
        add_due(run_id, workflow, version, queue, wake_at)
    else
        redis.call('ZREM', due_key(workflow, version, queue), run_id)
    end
    if ACTIVE[status] and owner then
        add_leased(run_id, workflow, version, queue, lease_until)
    else
        redis.call('ZREM', leases_key(workflow, version, queue), run_id)
    end
    if not TERMINAL[status] then redis.call('ZREM', FINISHED, run_id) end
end

local deliver  -- defined below; finishing a child delivers to its parent

-- Ends a run (completed, failed or cancelled) and tells its parent, as
-- rules.child_outcome_item describes: the status as topic, the result or the error.
local function finish(run_id, status, result, err, now)
    local key = run_key(run_id)
    local old, workflow, version, queue, created_at, parent_id, parent_pos = unpack(redis.call(
        'HMGET', key, 'status', 'workflow', 'version', 'queue', 'created_at', 'parent_id',
        'parent_pos'))
    move_status(run_id, old, status, created_at)
    redis.call('HSET', key, 'finished_at', now, 'updated_at', now)
    set_or_clear(key, 'result', result)
    set_or_clear(key, 'error', err)
    redis.call('HDEL', key, 'owner', 'lease_until', 'wake_at')
    unqueue(run_id, workflow, version, queue)
    place(run_id)
    redis.call('ZADD', FINISHED, now, run_id)
    if parent_id and redis.call('EXISTS', run_key(parent_id)) == 1 then
        local outcome = err
        if status == 'completed' then outcome = result end
        deliver({run_id = parent_id, kind = 'child', pos = parent_pos, topic = status,
                 payload = outcome, visible_at = now, key = 'child:' .. run_id}, now, nil)
    end
end

-- Adds an item from outside the run and wakes the run: nil if the run does not exist,
-- false if the item was refused (key taken, or a cancel of a finished run).
-- cancel_error is the error a cancel leaves on a run it ends at once.
deliver = function(item, now, cancel_error)
    local run_id = item.run_id
    local key = run_key(run_id)
    local status, owner, workflow, version, queue, wake_at = unpack(redis.call(
        'HMGET', key, 'status', 'owner', 'workflow', 'version', 'queue', 'wake_at'))
    if not status then return nil end
    if item.kind == 'cancel' and TERMINAL[status] then return false end
    if not add_item(item) then return false end
    if item.kind == 'cancel' and ((status == 'pending' and not owner) or status == 'held') then
        -- Nothing to unwind (never started, or held): it ends here, without a worker
        -- (rules.cancels_at_once).
        finish(run_id, 'cancelled', nil, cancel_error, now)
    elseif status == 'pending' then
        -- It keeps its start time: a message does not start a delayed run early, nor
        -- let a queued one in.
        redis.call('HINCRBY', key, 'mailbox', 1)
    elseif status == 'running' then
        redis.call('HINCRBY', key, 'mailbox', 1)
        local visible = now
        if tonumber(item.visible_at) > tonumber(now) then visible = item.visible_at end
        local wake = earlier(wake_at, visible)
        if wake ~= wake_at then
            redis.call('HSET', key, 'wake_at', wake)
            if not owner then
                add_due(run_id, workflow, version, queue, wake)
                wake_workers()
            end
        end
    end
    return true
end

-- A delivery as the arguments carry it: the item, then the error a cancel would leave.
local function read_delivery()
    local item = read_item()
    return item, opt()
end
