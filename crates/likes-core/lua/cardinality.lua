-- How many users like a post, counted from the dedupe structure itself (not the counter), for
-- reconciliation and memory checks. KEYS: 1 likers (roaring). Returns the count.
local pop = {}
for i = 0, 255 do
  local n, v = 0, i
  while v > 0 do n = n + v % 2; v = math.floor(v / 2) end
  pop[i] = n
end
local total = 0
for _, c in ipairs(redis.call('HVALS', KEYS[1])) do
  if #c == R_BITMAP_LEN then
    for i = 1, R_BITMAP_LEN do total = total + pop[string.byte(c, i)] end
  else
    total = total + #c / 2
  end
end
return total
