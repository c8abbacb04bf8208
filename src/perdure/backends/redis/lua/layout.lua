-- open: arguments the layout version this code writes. Records it in a new store and
-- returns the version the store has.
local version = arg()
redis.call('SET', P .. 'layout', version, 'NX')
return redis.call('GET', P .. 'layout')
