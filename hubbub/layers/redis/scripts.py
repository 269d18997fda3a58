"""The Lua scripts: each layer operation is one atomic script call, so one round trip.

Scores in the group sets are Unix times (seconds); lists expire ``expiry`` seconds
after their last push, so nothing outlives its use if every reader goes away.
"""

from __future__ import annotations

import hashlib
from typing import Dict

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

# KEYS: routes, members. ARGV: now, frame, inbox key prefix, inbox limit, expiry.
# Pushes one copy per live process route; returns {routes skipped because their
# inbox is at the limit (a dead process), worker channel routes for the caller}.
GROUP_SEND = """
local now = ARGV[1]
local routes = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
local limit = tonumber(ARGV[4])
local skipped, workers = 0, {}
for _, route in ipairs(routes) do
  if string.sub(route, 1, 2) == 'p:' then
    local inbox = ARGV[3] .. string.sub(route, 3)
    if redis.call('LLEN', inbox) < limit then
      redis.call('RPUSH', inbox, ARGV[2])
      redis.call('EXPIRE', inbox, ARGV[5])
    else
      skipped = skipped + 1
    end
  else
    workers[#workers + 1] = route
  end
end
return {skipped, workers}
"""

# KEYS: members. ARGV: now.
GROUP_COUNT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

SCRIPTS: Dict[str, str] = {
    name: body
    for name, body in globals().items()
    if name.isupper() and isinstance(body, str)
}
SHAS: Dict[str, str] = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()}
