"""The Lua scripts: each layer operation is one atomic script call, so one round trip.

Scores in the group sets are Unix times (seconds); lists expire ``expiry`` seconds
after their last push, so nothing outlives its use if every reader goes away.
"""

from __future__ import annotations

import hashlib

# KEYS: channel list. ARGV: frame, capacity, expiry. Returns 1, or 0 when full.
SEND_WORKER = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: process inbox, pending-count hash. ARGV: frame, channel, capacity, expiry.
# Counts the channel's unreceived direct messages so capacity holds per channel,
# though all of a process's channels share one inbox list. Returns 1, or 0 when full.
SEND_DIRECT = """
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if n > tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: pending-count hash. ARGV: channel, how many were received (or expired).
RECEIVED = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2])) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""

# KEYS: members, routes, owner's inbox. ARGV: channel, route, expires_at,
# group_expiry, frame to tell the owner ('' when the owner is the caller), expiry.
GROUP_ADD = """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return 1
"""

# KEYS: members, routes, owner's inbox. ARGV: channel, route to drop ('' to keep
# it: the process still has members), frame for the owner (or ''), expiry.
GROUP_DISCARD = """
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
"""

# Pushes one copy of ``frame`` per live process route of a group (KEYS[1] routes,
# KEYS[2] members), dropping routes and members that expired. Returns the routes
# skipped because their inbox is at ``limit`` (a dead process), the worker channel
# routes, left to the caller, and how many routes there were. ``plan`` only reads and ``push`` only writes:
# on a cluster slot being migrated, reading an inbox that has already moved fails
# the script before it has written anything, so the caller can safely try again.
_fan_out_lib = """
local function plan(now, inbox_prefix, limit)
  local routes = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
  local inboxes, skipped, workers = {}, 0, {}
  for _, route in ipairs(routes) do
    if string.sub(route, 1, 2) == 'p:' then
      local inbox = inbox_prefix .. string.sub(route, 3)
      if redis.call('LLEN', inbox) < limit then
        inboxes[#inboxes + 1] = inbox
      else
        skipped = skipped + 1
      end
    else
      workers[#workers + 1] = route
    end
  end
  return inboxes, skipped, workers, #routes
end

local function push(now, inboxes, frame, expiry)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
  for _, inbox in ipairs(inboxes) do
    redis.call('RPUSH', inbox, frame)
    redis.call('EXPIRE', inbox, expiry)
  end
end
"""

# KEYS: routes, members. ARGV: now, frame, inbox key prefix, inbox limit, expiry.
# Returns {routes skipped, worker channel routes, routes}.
GROUP_SEND = (
    _fan_out_lib
    + """
local inboxes, skipped, workers, routes = plan(ARGV[1], ARGV[3], tonumber(ARGV[4]))
push(ARGV[1], inboxes, ARGV[2], ARGV[5])
return {skipped, workers, routes}
"""
)

# KEYS: members. ARGV: now.
GROUP_COUNT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

# -- history ---------------------------------------------------------------------------
# A history group's position hash (epoch, offset) and its stream are created together:
# a group whose hash is gone (Redis restarted empty, flushed, expired) starts a new
# epoch with an empty stream, so no client mistakes a new offset 1 for the old one.
# Stream IDs are Redis's own (its clock), so the ttl is trimmed with MINID; entries
# always hold consecutive offsets, the newest last.

# The ``history`` arguments, at ARGV[first] on: epoch to start if there is none, max
# entries (0: no limit), ttl in ms (0: none), key expiry in seconds, '1' on a Redis
# Cluster. On a cluster the position also names the node that numbered it: a group
# numbered by another node (a replica promoted in a failover, which may lack the
# last writes, or a slot moved) starts a new epoch rather than reuse offsets.
_history_lib = """
local function position(stream, meta, fresh, expiry, cluster)
  local epoch = redis.call('HGET', meta, 'epoch')
  local node = ''
  if cluster == '1' then node = redis.call('CLUSTER', 'MYID') end
  if epoch and node ~= '' and redis.call('HGET', meta, 'node') ~= node then epoch = false end
  if not epoch then
    epoch = fresh
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'node', node)
    redis.call('EXPIRE', meta, expiry)
  end
  return epoch
end

local function trim(stream, maxlen, ttl_ms)
  if maxlen > 0 then redis.call('XTRIM', stream, 'MAXLEN', maxlen) end
  if ttl_ms > 0 then
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('XTRIM', stream, 'MINID', string.format('%d', now_ms - ttl_ms))
  end
end

-- Number a message, keep it, and return its frame with the seq field filled in.
local function record_in_history(stream, meta, first, head, payload)
  local fresh, maxlen, ttl_ms, expiry =
    ARGV[first], tonumber(ARGV[first + 1]), tonumber(ARGV[first + 2]), ARGV[first + 3]
  local epoch = position(stream, meta, fresh, expiry, ARGV[first + 4])
  local offset = redis.call('HINCRBY', meta, 'offset', 1)
  redis.call('XADD', stream, '*', 'o', offset, 'm', payload)
  trim(stream, maxlen, ttl_ms)
  redis.call('EXPIRE', stream, expiry)
  redis.call('EXPIRE', meta, expiry)
  local seq = epoch .. ':' .. offset
  return head .. seq .. '\0' .. payload, seq
end
"""

# KEYS: stream, position. ARGV: the ``history`` arguments, asked epoch ('' for none), since.
# Returns {epoch, latest offset, entries held, the entries after
# ``since`` newest first (only when the epoch matches and all of them are held)}.
HISTORY = (
    _history_lib
    + """
local epoch = position(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[5])
trim(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
local offset = tonumber(redis.call('HGET', KEYS[2], 'offset'))
local held = redis.call('XLEN', KEYS[1])
local since = tonumber(ARGV[7])
local entries = {}
if ARGV[6] == epoch and since < offset and since >= offset - held then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', offset - since)
end
return {epoch, offset, held, entries}
"""
)

# GROUP_SEND for a group with history. KEYS: routes, members, stream, position.
# ARGV: now, frame head, payload, inbox key prefix, inbox limit, expiry, then the
# ``history`` arguments. Returns {skipped, worker routes, routes, seq} (workers get the
# frame from the caller, rebuilt with seq).
GROUP_SEND_KEPT = (
    _fan_out_lib
    + _history_lib
    + """
local inboxes, skipped, workers, routes = plan(ARGV[1], ARGV[4], tonumber(ARGV[5]))
local frame, seq = record_in_history(KEYS[3], KEYS[4], 7, ARGV[2], ARGV[3])
push(ARGV[1], inboxes, frame, ARGV[6])
return {skipped, workers, routes, seq}
"""
)

# PUBLISH for a group with history (pub/sub layer): SPUBLISH (sharded) on a cluster.
# KEYS: stream, position. ARGV: the ``history`` arguments, topic, frame head, payload.
PUBLISH_KEPT = (
    _history_lib
    + """
local frame = record_in_history(KEYS[1], KEYS[2], 1, ARGV[7], ARGV[8])
if ARGV[5] == '1' then return redis.call('SPUBLISH', ARGV[6], frame) end
return redis.call('PUBLISH', ARGV[6], frame)
"""
)

# -- presence ----------------------------------------------------------------------------
# KEYS for all of them: joined (zset), heartbeats (zset), member data (hash).

# Remove members whose last heartbeat is before ``cutoff``; returns them as a flat
# list channel, joined_at, data (each removed once: whoever removes it announces it).
_presence_lib = """
local function age_out(cutoff)
  local gone = {}
  for _, channel in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff)) do
    local joined = redis.call('ZSCORE', KEYS[1], channel)
    local data = redis.call('HGET', KEYS[3], channel)
    redis.call('ZREM', KEYS[1], channel)
    redis.call('ZREM', KEYS[2], channel)
    redis.call('HDEL', KEYS[3], channel)
    if joined and data then
      gone[#gone + 1] = channel
      gone[#gone + 1] = joined
      gone[#gone + 1] = data
    end
  end
  return gone
end

local function expire_all(expiry)
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], expiry) end
end
"""

# ARGV: channel, now, data, expiry. Returns joined_at (kept when already present).
PRESENCE_ADD = (
    _presence_lib
    + """
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
expire_all(ARGV[4])
return redis.call('ZSCORE', KEYS[1], ARGV[1])
"""
)

# ARGV: channel. Returns {joined_at, data}, or nil when it was not present.
PRESENCE_REMOVE = """
local joined = redis.call('ZSCORE', KEYS[1], ARGV[1])
local data = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if joined and data then return {joined, data} end
return nil
"""

# ARGV: cutoff. Returns {aged-out members (see age_out), the members oldest first
# as a flat list channel, joined_at, data}.
PRESENCE_LIST = (
    _presence_lib
    + """
local gone = age_out(ARGV[1])
local listed = {}
local joined = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #joined, 2 do
  local data = redis.call('HGET', KEYS[3], joined[i])
  if data then
    listed[#listed + 1] = joined[i]
    listed[#listed + 1] = joined[i + 1]
    listed[#listed + 1] = data
  end
end
return {gone, listed}
"""
)

# One process's heartbeat for its members of a group. ARGV: now, cutoff, expiry, then
# channel, joined_at, data for each member. Members missing (aged out while this
# process was slow, or Redis lost them) are put back. Returns {aged-out members of
# other processes, channels put back}.
PRESENCE_BEAT = (
    _presence_lib
    + """
local back = {}
for i = 4, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 1], ARGV[i])
    back[#back + 1] = ARGV[i]
  end
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
local gone = age_out(ARGV[2])
expire_all(ARGV[3])
return {gone, back}
"""
)

SCRIPTS: dict[str, str] = {name: body for name, body in globals().items() if name.isupper() and isinstance(body, str)}
SHAS: dict[str, str] = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()}
