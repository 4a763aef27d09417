-- Whether a user likes a post. KEYS: 1 likers (roaring); ARGV: 1 user id. Returns 1 or 0.
if r_contains(KEYS[1], tonumber(ARGV[1])) then return 1 end
return 0
