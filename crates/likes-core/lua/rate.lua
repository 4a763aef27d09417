-- A fixed-window rate limit: count one hit in the current window and say whether it is allowed.
-- KEYS: 1 the counter of this client and window; ARGV: 1 limit per window, 2 window in seconds.
-- Returns {allowed (0|1), seconds until the window resets}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then ttl = tonumber(ARGV[2]) end
if n > tonumber(ARGV[1]) then
  return {0, ttl}
end
return {1, ttl}
