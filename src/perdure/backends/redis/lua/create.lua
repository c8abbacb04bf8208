-- create_run: the run unless its id is taken. Returns {created (1/0), the run's fields},
-- or {-1, the holder's id} if an unfinished run of its queue holds its dedup key.
local run = read_run()
local created, holder = create_run(run)
if holder then return {-1, holder} end
return {created and 1 or 0, redis.call('HGETALL', run_key(run.id))}
