-- release: arguments run id, owner, token, now. Returns 1 if the lease was held.
local run_id, owner, token, now = arg(), arg(), arg(), arg()
local key = run_key(run_id)
local holder, held_token, status = unpack(redis.call(
    'HMGET', key, 'owner', 'lease_token', 'status'))
if not holder or holder ~= owner or held_token ~= token then return 0 end
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('HSET', key, 'updated_at', now)
set_or_clear(key, 'wake_at', not TERMINAL[status] and now)
requeue(run_id)
if not TERMINAL[status] then wake_workers() end
return 1
