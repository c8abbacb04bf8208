-- A run whose workers died on it too often ends as dead_letter (telling its parent),
-- if a claim still finds it as it was: the same expired lease (owner + token).
-- Arguments run id, owner, token, now, the error. Returns 1 if it ended here.
local run_id, owner, token, now, err = arg(), arg(), arg(), arg(), arg()
local key = run_key(run_id)
local holder, held_token, leased_until, status = unpack(redis.call(
    'HMGET', key, 'owner', 'lease_token', 'lease_until', 'status'))
if not ACTIVE[status] or holder ~= owner or held_token ~= token
        or tonumber(leased_until) >= tonumber(now) then
    return 0
end
redis.call('HINCRBY', key, 'lease_token', 1)
redis.call('HINCRBY', key, 'recoveries', 1)
finish(run_id, 'dead_letter', nil, err, now)
return 1
