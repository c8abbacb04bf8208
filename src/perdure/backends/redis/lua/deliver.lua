-- deliver: arguments now, then a delivery. Returns 1 delivered, 0 refused, -1 no such run.
local now = arg()
local item, cancel_error = read_delivery()
local delivered = deliver(item, now, cancel_error)
if delivered == nil then return -1 end
return delivered and 1 or 0
