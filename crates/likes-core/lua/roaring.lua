-- Prelude shared by the scripts that read or change who likes a post.
--
-- A post's likers form a roaring bitmap stored in one Redis hash: the field is the high part of
-- the user id (uid // 65536), the value a container of the low 16 bits, either a sorted array of
-- big-endian u16 (at most R_ARRAY_MAX entries, 2 bytes each) or, once denser, an 8 KiB bitmap
-- (1 bit per user id, most significant bit first). Sparse posts cost ~2 bytes per like, dense
-- ones 1 bit per user id in the range, and membership is exact.
local R_ARRAY_MAX = 4095
local R_BITMAP_LEN = 8192

local function r_split(uid)
  return math.floor(uid / 65536), uid % 65536
end

-- The i-th (0-based) element of an array container.
local function r_arr_get(c, i)
  local a, b = string.byte(c, 2 * i + 1, 2 * i + 2)
  return a * 256 + b
end

-- Index (0-based) of the first element >= lo, and whether it equals lo.
local function r_arr_find(c, lo)
  local n = #c / 2
  local l, h = 0, n
  while l < h do
    local m = math.floor((l + h) / 2)
    if r_arr_get(c, m) < lo then l = m + 1 else h = m end
  end
  return l, (l < n and r_arr_get(c, l) == lo)
end

local function r_u16(lo)
  return string.char(math.floor(lo / 256), lo % 256)
end

local function r_bit_has(c, lo)
  local byte = string.byte(c, math.floor(lo / 8) + 1)
  return bit.band(byte, bit.rshift(128, lo % 8)) ~= 0
end

local function r_bit_set(c, lo, on)
  local pos = math.floor(lo / 8) + 1
  local byte = string.byte(c, pos)
  local mask = bit.rshift(128, lo % 8)
  if on then byte = bit.bor(byte, mask) else byte = bit.band(byte, 255 - mask) end
  return string.sub(c, 1, pos - 1) .. string.char(byte) .. string.sub(c, pos + 1)
end

local function r_to_bitmap(c)
  local bytes = {}
  for i = 1, R_BITMAP_LEN do bytes[i] = 0 end
  for i = 0, #c / 2 - 1 do
    local lo = r_arr_get(c, i)
    local pos = math.floor(lo / 8) + 1
    bytes[pos] = bit.bor(bytes[pos], bit.rshift(128, lo % 8))
  end
  local parts = {}
  for i = 1, R_BITMAP_LEN, 512 do
    parts[#parts + 1] = string.char(unpack(bytes, i, i + 511))
  end
  return table.concat(parts)
end

local function r_contains(key, uid)
  local hi, lo = r_split(uid)
  local c = redis.call('HGET', key, hi)
  if not c then return false end
  if #c == R_BITMAP_LEN then return r_bit_has(c, lo) end
  local _, found = r_arr_find(c, lo)
  return found
end

-- Adds uid; true when it was not there before.
local function r_add(key, uid)
  local hi, lo = r_split(uid)
  local c = redis.call('HGET', key, hi)
  if not c then
    redis.call('HSET', key, hi, r_u16(lo))
    return true
  end
  if #c == R_BITMAP_LEN then
    if r_bit_has(c, lo) then return false end
    redis.call('HSET', key, hi, r_bit_set(c, lo, true))
    return true
  end
  local i, found = r_arr_find(c, lo)
  if found then return false end
  if #c / 2 >= R_ARRAY_MAX then
    redis.call('HSET', key, hi, r_bit_set(r_to_bitmap(c), lo, true))
  else
    redis.call('HSET', key, hi, string.sub(c, 1, 2 * i) .. r_u16(lo) .. string.sub(c, 2 * i + 1))
  end
  return true
end

-- Removes uid; true when it was there. Empty containers are deleted; a bitmap that thins out
-- stays a bitmap (hysteresis, so a post hovering at the threshold never flips back and forth).
local function r_remove(key, uid)
  local hi, lo = r_split(uid)
  local c = redis.call('HGET', key, hi)
  if not c then return false end
  local nc
  if #c == R_BITMAP_LEN then
    if not r_bit_has(c, lo) then return false end
    nc = r_bit_set(c, lo, false)
    if not string.find(nc, '[^%z]') then nc = nil end
  else
    local i, found = r_arr_find(c, lo)
    if not found then return false end
    nc = string.sub(c, 1, 2 * i) .. string.sub(c, 2 * i + 3)
    if #nc == 0 then nc = nil end
  end
  if nc then redis.call('HSET', key, hi, nc) else redis.call('HDEL', key, hi) end
  return true
end
