-- Add many users to a post's likers at once, for `sync-daemon rehydrate` and reconciliation
-- repairs: only the dedupe structure changes (no count, no recent list, no stream entry, no
-- PUBLISH; those are restored from the record separately). Each touched container is decoded,
-- merged and re-encoded once per call, instead of one string rebuild per id as with `r_add`.
-- The result is the structure `r_add` would have built: arrays up to R_ARRAY_MAX, bitmaps past
-- it, and a bitmap stays a bitmap.
--
-- KEYS: 1 likers (roaring); ARGV: user ids (bare integers, any order, repeats allowed).
-- Returns how many of them were not there before.
local by_hi = {}
for i = 1, #ARGV do
  local hi, lo = r_split(tonumber(ARGV[i]))
  local los = by_hi[hi]
  if not los then
    los = {}
    by_hi[hi] = los
  end
  los[#los + 1] = lo
end

local function bitmap_bytes(c)
  local bytes = {}
  if c then
    for i = 1, R_BITMAP_LEN, 512 do
      local part = {string.byte(c, i, i + 511)}
      for j = 1, 512 do bytes[i + j - 1] = part[j] end
    end
  else
    for i = 1, R_BITMAP_LEN do bytes[i] = 0 end
  end
  return bytes
end

local function bitmap_string(bytes)
  local parts = {}
  for i = 1, R_BITMAP_LEN, 512 do
    parts[#parts + 1] = string.char(unpack(bytes, i, i + 511))
  end
  return table.concat(parts)
end

local function set_bit(bytes, lo)
  local pos = math.floor(lo / 8) + 1
  local mask = bit.rshift(128, lo % 8)
  if bit.band(bytes[pos], mask) ~= 0 then return false end
  bytes[pos] = bit.bor(bytes[pos], mask)
  return true
end

local added = 0
for hi, los in pairs(by_hi) do
  local c = redis.call('HGET', KEYS[1], hi)
  local out
  if c and #c == R_BITMAP_LEN then
    local bytes = bitmap_bytes(c)
    for _, lo in ipairs(los) do
      if set_bit(bytes, lo) then added = added + 1 end
    end
    out = bitmap_string(bytes)
  else
    local have, all = {}, {}
    if c then
      for i = 0, #c / 2 - 1 do
        local lo = r_arr_get(c, i)
        have[lo] = true
        all[#all + 1] = lo
      end
    end
    for _, lo in ipairs(los) do
      if not have[lo] then
        have[lo] = true
        all[#all + 1] = lo
        added = added + 1
      end
    end
    if #all > R_ARRAY_MAX then
      local bytes = bitmap_bytes(nil)
      for _, lo in ipairs(all) do set_bit(bytes, lo) end
      out = bitmap_string(bytes)
    else
      table.sort(all)
      local parts = {}
      for i, lo in ipairs(all) do parts[i] = r_u16(lo) end
      out = table.concat(parts)
    end
  end
  if out ~= c then redis.call('HSET', KEYS[1], hi, out) end
end
return added
