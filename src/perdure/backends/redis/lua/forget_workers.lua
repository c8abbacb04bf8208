-- forget_workers: arguments seen_before, worker id?. Deletes the workers last seen
-- strictly before seen_before, or only the one given (whenever it was seen). Returns
-- how many.
local seen_before, only = arg(), opt()
local gone
if only then
    gone = {}
    if redis.call('ZSCORE', WORKERS, only) then gone = {only} end
else
    gone = redis.call('ZRANGEBYSCORE', WORKERS, '-inf', '(' .. seen_before)
end
for _, worker_id in ipairs(gone) do
    redis.call('DEL', worker_key(worker_id))
    redis.call('ZREM', WORKERS, worker_id)
end
return #gone
