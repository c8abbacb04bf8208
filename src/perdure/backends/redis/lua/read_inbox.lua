-- read_inbox: arguments run id, now. Returns the due items, oldest first.
local run_id = arg()
return due_items(run_id, arg())
