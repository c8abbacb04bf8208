-- extend_leases: arguments owner, lease_until, count, then (run id, token) pairs.
-- Returns {run id, mailbox, ...} for the leases still held, now extended.
local owner, lease_until, count = arg(), arg(), num()
local held = {}
for _ = 1, count do
    local run_id, token = arg(), arg()
    local key = run_key(run_id)
    local holder, held_token, workflow, version, queue, mailbox, status = unpack(redis.call(
        'HMGET', key, 'owner', 'lease_token', 'workflow', 'version', 'queue', 'mailbox',
        'status'))
    if holder and holder == owner and held_token == token then
        redis.call('HSET', key, 'lease_until', lease_until)
        if ACTIVE[status] then add_leased(run_id, workflow, version, queue, lease_until) end
        table.insert(held, run_id)
        table.insert(held, mailbox)
    end
end
return held
