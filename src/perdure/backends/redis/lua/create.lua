-- create_run: the run unless its id is taken. Returns {created (1/0), the run's fields}.
local run = read_run()
local created = create_run(run)
return {created and 1 or 0, redis.call('HGETALL', run_key(run.id))}
