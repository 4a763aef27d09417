-- Create a user: allocate a dense id, record the display name, and append the creation to the
-- users stream for the sync daemon, atomically.
-- KEYS: 1 id sequence, 2 names hash, 3 users stream; ARGV: 1 name, 2 ts (RFC 3339), 3 schema version.
-- Returns the new user id.
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('XADD', KEYS[3], '*', 'v', ARGV[3], 'kind', 'user', 'user', id, 'name', ARGV[1], 'ts', ARGV[2])
return id
