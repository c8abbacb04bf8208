-- save_worker: arguments worker id, seen_at, info. Inserts or replaces its row.
local worker_id, seen_at, info = arg(), arg(), arg()
redis.call('HSET', worker_key(worker_id), 'seen_at', seen_at, 'info', info)
redis.call('ZADD', WORKERS, seen_at, worker_id)
return 1
