/**
 * The Lua scripts of the Redis coordination (docs/cluster-redis.md). Each runs atomically in
 * Redis, takes the time from Redis `TIME` (so no node's clock matters) and gets the key prefix
 * `dcdn:{<cluster>}:` as ARGV[1]. Every key carries the `{<cluster>}` hash tag, so all of them
 * live in one slot; the scripts derive key names (a node's keys set, an entry's hash) instead of
 * declaring them, which a standalone or Sentinel Redis allows and Redis Cluster tolerates within
 * one slot.
 *
 * Errors the callers map: `DCDN_GEN` (the dataset generation changed: Redis restarted or was
 * flushed) and `DCDN_LIMIT` (a volunteer address is at its cap).
 */

/** Shared helpers, prepended to every script. */
const PRELUDE = `
local P = ARGV[1]
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Integers as Redis wants them: Lua's tostring would write 1.7e+15.
local function num(x) return string.format('%.0f', x) end
-- Removes one entry (h = HMGET epoch node pid vol addr) and tells the cluster.
local function leave(key, h, reason, maxlen)
  redis.call('DEL', P .. 'p:' .. key)
  redis.call('ZREM', P .. 'leases', key)
  redis.call('SREM', P .. 'node:' .. h[2] .. ':keys', key)
  if h[4] == '1' then redis.call('ZREM', P .. 'vaddr:' .. h[5], key) end
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', maxlen, '*',
    'v', '1', 't', 'leave', 'k', key, 'e', h[1], 'n', h[2], 'peer', h[3] or '', 'reason', reason)
end
`;

const script = (body: string) => PRELUDE + body;

export const SCRIPTS = {
  /**
   * Sets the generation if absent and returns the current one. A new generation also lifts the
   * epoch counter to the time in µs, so epochs grow across a flush or an empty restart: an epoch a
   * node still holds from before can never name a new registration of the same key.
   * ARGV: P, candidate.
   */
  dcdnInitGen: script(`
local g = redis.call('GET', P .. 'gen')
if g then return g end
redis.call('SET', P .. 'gen', ARGV[2])
local floor = nowMs() * 1000
local e = tonumber(redis.call('GET', P .. 'epoch') or '0')
if e < floor then redis.call('SET', P .. 'epoch', num(floor)) end
return ARGV[2]
`),

  /**
   * register (newest wins) and reclaim (nx = '1': only if no other connection holds the key live).
   * ARGV: P, gen, key, node, region, peer JSON, peer id, address, status JSON or '', volunteer
   * '1'/'0', cap (0: none), nx, entry lease ms, grace ms, node keys TTL ms, events MAXLEN.
   * Returns {epoch, replacedPeer, replacedNode}, or {-1} when nx and the key is held.
   */
  dcdnRegister: script(`
if redis.call('GET', P .. 'gen') ~= ARGV[2] then return redis.error_reply('DCDN_GEN') end
local now = nowMs()
local key, node, addr = ARGV[3], ARGV[4], ARGV[8]
local pkey = P .. 'p:' .. key
local lease, grace = tonumber(ARGV[13]), tonumber(ARGV[14])
local old = redis.call('HMGET', pkey, 'epoch', 'node', 'pid', 'vol', 'addr')
-- reclaim yields to another live holder: a live entry lease on a live node. The same connection
-- is no other holder (its register may have timed out on the client yet run in Redis), and a
-- holder on a node whose lease ran out is gone even before the janitor removes it.
if old[1] and ARGV[12] == '1' and old[3] ~= ARGV[7] then
  local till = redis.call('ZSCORE', P .. 'leases', key)
  local nodeTill = redis.call('ZSCORE', P .. 'nodes', old[2])
  if till and tonumber(till) >= now and nodeTill and tonumber(nodeTill) >= now then return {-1} end
end
local vol = ARGV[10] == '1'
local vkey = P .. 'vaddr:' .. addr
if vol then
  redis.call('ZREMRANGEBYSCORE', vkey, '-inf', '(' .. num(now))
  local cap = tonumber(ARGV[11])
  if cap > 0 and not redis.call('ZSCORE', vkey, key) and redis.call('ZCARD', vkey) >= cap then
    return redis.error_reply('DCDN_LIMIT')
  end
end
local rp, rn = '', ''
if old[1] then
  if old[3] ~= ARGV[7] then rp, rn = old[3] or '', old[2] end
  redis.call('SREM', P .. 'node:' .. old[2] .. ':keys', key)
  if old[4] == '1' then redis.call('ZREM', P .. 'vaddr:' .. old[5], key) end
end
local epoch = redis.call('INCR', P .. 'epoch')
redis.call('DEL', pkey)
local f = {'epoch', epoch, 'node', node, 'region', ARGV[5], 'peer', ARGV[6], 'pid', ARGV[7],
  'addr', addr, 'since', num(now), 'vol', vol and '1' or '0'}
local ev = {'v', '1', 't', 'join', 'k', key, 'e', epoch, 'n', node, 'r', ARGV[5], 'peer', ARGV[6], 'a', addr}
if ARGV[9] ~= '' then
  f[#f + 1] = 'status'; f[#f + 1] = ARGV[9]
  ev[#ev + 1] = 'st'; ev[#ev + 1] = ARGV[9]
end
if rp ~= '' then
  ev[#ev + 1] = 'rp'; ev[#ev + 1] = rp
  ev[#ev + 1] = 'rn'; ev[#ev + 1] = rn
end
redis.call('HSET', pkey, unpack(f))
redis.call('PEXPIRE', pkey, lease + grace)
redis.call('ZADD', P .. 'leases', num(now + lease), key)
local nkeys = P .. 'node:' .. node .. ':keys'
redis.call('SADD', nkeys, key)
redis.call('PEXPIRE', nkeys, tonumber(ARGV[15]))
if vol then
  redis.call('ZADD', vkey, num(now + lease), key)
  redis.call('PEXPIRE', vkey, lease + grace)
end
redis.call('XADD', P .. 'events', 'MAXLEN', '~', ARGV[16], '*', unpack(ev))
return {epoch, rp, rn}
`),

  /** ARGV: P, key, epoch, reason, events MAXLEN. Returns 1 if removed, 0 if the epoch is stale. */
  dcdnUnregister: script(`
local h = redis.call('HMGET', P .. 'p:' .. ARGV[2], 'epoch', 'node', 'pid', 'vol', 'addr')
if h[1] ~= ARGV[3] then return 0 end
leave(ARGV[2], h, ARGV[4], ARGV[5])
return 1
`),

  /** ARGV: P, key, epoch, peer JSON or '', peer id, status JSON or '', events MAXLEN. Returns 1 or 0 (stale). */
  dcdnUpdate: script(`
local pkey = P .. 'p:' .. ARGV[2]
if redis.call('HGET', pkey, 'epoch') ~= ARGV[3] then return 0 end
if ARGV[4] ~= '' then redis.call('HSET', pkey, 'peer', ARGV[4], 'pid', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', pkey, 'status', ARGV[6]) end
local h = redis.call('HMGET', pkey, 'node', 'region', 'peer', 'addr', 'status')
local ev = {'v', '1', 't', 'update', 'k', ARGV[2], 'e', ARGV[3], 'n', h[1], 'r', h[2], 'peer', h[3], 'a', h[4]}
if h[5] then ev[#ev + 1] = 'st'; ev[#ev + 1] = h[5] end
redis.call('XADD', P .. 'events', 'MAXLEN', '~', ARGV[7], '*', unpack(ev))
return 1
`),

  /**
   * Renews entries whose epoch is current. ARGV: P, gen, entry lease ms, grace ms, then key,
   * epoch pairs. Returns {0} on a generation change, else {1, fenced keys, missing keys}.
   */
  dcdnRenew: script(`
if redis.call('GET', P .. 'gen') ~= ARGV[2] then return {0} end
local now = nowMs()
local lease, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local fenced, missing = {}, {}
for i = 5, #ARGV, 2 do
  local key = ARGV[i]
  local pkey = P .. 'p:' .. key
  local h = redis.call('HMGET', pkey, 'epoch', 'vol', 'addr')
  if not h[1] then missing[#missing + 1] = key
  elseif h[1] ~= ARGV[i + 1] then fenced[#fenced + 1] = key
  else
    redis.call('PEXPIRE', pkey, lease + grace)
    redis.call('ZADD', P .. 'leases', num(now + lease), key)
    if h[2] == '1' then
      local v = P .. 'vaddr:' .. h[3]
      redis.call('ZADD', v, num(now + lease), key)
      redis.call('PEXPIRE', v, lease + grace)
    end
  end
end
return {1, fenced, missing}
`),

  /**
   * The node's heartbeat: lease in the nodes zset, record, keys set and inbox TTLs.
   * ARGV: P, gen, node, region, startedAt, cv, peers, url, node lease ms, record TTL ms, inbox TTL ms.
   * Returns 0 on a generation change (nothing written), else 1.
   */
  dcdnHeartbeat: script(`
if redis.call('GET', P .. 'gen') ~= ARGV[2] then return 0 end
local now = nowMs()
redis.call('ZADD', P .. 'nodes', num(now + tonumber(ARGV[9])), ARGV[3])
local nk = P .. 'node:' .. ARGV[3]
redis.call('HSET', nk, 'region', ARGV[4], 'startedAt', ARGV[5], 'cv', ARGV[6], 'peers', ARGV[7], 'url', ARGV[8])
redis.call('PEXPIRE', nk, ARGV[10])
redis.call('PEXPIRE', nk .. ':keys', ARGV[10])
redis.call('PEXPIRE', P .. 'inbox:' .. ARGV[3], ARGV[11])
return 1
`),

  /** Marks this node's lease as run out now, so the next janitor tick anywhere reaps it. ARGV: P, node. */
  dcdnExpireNode: script(`
if redis.call('ZSCORE', P .. 'nodes', ARGV[2]) then redis.call('ZADD', P .. 'nodes', 0, ARGV[2]) end
return 1
`),

  /** Nodes whose lease has run out, but `self`. ARGV: P, self, limit. */
  dcdnDeadNodes: script(`
local ids = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', '(' .. num(nowMs()), 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do if id ~= ARGV[2] then out[#out + 1] = id end end
return out
`),

  /**
   * Reaps up to `batch` keys of a dead node (reason node-lost); when none are left, removes the
   * node itself. Stops if the node renewed its lease meanwhile (it was frozen, not dead).
   * ARGV: P, dead node, batch, events MAXLEN. Returns {removed, done (1/0)} or {-1, 1} if alive.
   */
  dcdnReapNode: script(`
local dead = ARGV[2]
local score = redis.call('ZSCORE', P .. 'nodes', dead)
if score and tonumber(score) >= nowMs() then return {-1, 1} end
local ks = P .. 'node:' .. dead .. ':keys'
local keys = redis.call('SPOP', ks, tonumber(ARGV[3]))
local n = 0
for _, key in ipairs(keys) do
  local h = redis.call('HMGET', P .. 'p:' .. key, 'epoch', 'node', 'pid', 'vol', 'addr')
  if h[1] and h[2] == dead then
    leave(key, h, 'node-lost', ARGV[4])
    n = n + 1
  end
end
if redis.call('SCARD', ks) == 0 then
  redis.call('DEL', ks, P .. 'node:' .. dead, P .. 'inbox:' .. dead)
  redis.call('ZREM', P .. 'nodes', dead)
  return {n, 1}
end
return {n, 0}
`),

  /**
   * Entries whose lease ran out without renewal: removed with reason lease-expired.
   * ARGV: P, batch, events MAXLEN. Returns a flat list of key, node ('' if the hash was gone).
   */
  dcdnSweepLeases: script(`
local keys = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. num(nowMs()), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(keys) do
  local h = redis.call('HMGET', P .. 'p:' .. key, 'epoch', 'node', 'pid', 'vol', 'addr')
  if h[1] then
    leave(key, h, 'lease-expired', ARGV[3])
    out[#out + 1] = key; out[#out + 1] = h[2]
  else
    redis.call('ZREM', P .. 'leases', key)
    out[#out + 1] = key; out[#out + 1] = ''
  end
end
return out
`),

  /**
   * Keys with a live lease. ARGV: P, slack ms (optional: right after an outage, leases overdue by
   * up to this much still count, since nobody could renew them; RedisLink.settlingSlackMs).
   */
  dcdnLiveKeys: script(`
return redis.call('ZRANGEBYSCORE', P .. 'leases', num(nowMs() - tonumber(ARGV[2] or '0')), '+inf')
`),

  /** Live nodes and their records: {{id, {field, value, …}}, …}. ARGV: P, slack ms (optional, as for dcdnLiveKeys). */
  dcdnNodes: script(`
local ids = redis.call('ZRANGEBYSCORE', P .. 'nodes', num(nowMs() - tonumber(ARGV[2] or '0')), '+inf')
local out = {}
for _, id in ipairs(ids) do out[#out + 1] = {id, redis.call('HGETALL', P .. 'node:' .. id)} end
return out
`),

  /** Live volunteer registrations from one address. ARGV: P, address. */
  dcdnCountVolunteers: script(`
return redis.call('ZCOUNT', P .. 'vaddr:' .. ARGV[2], num(nowMs()), '+inf')
`),

  /**
   * A bus message into a live node's inbox. ARGV: P, target node, from node, message JSON,
   * inbox MAXLEN. Returns 1, or 0 when the target's lease has run out (or it never was).
   */
  dcdnSend: script(`
local s = redis.call('ZSCORE', P .. 'nodes', ARGV[2])
if not s or tonumber(s) < nowMs() then return 0 end
redis.call('XADD', P .. 'inbox:' .. ARGV[2], 'MAXLEN', '~', ARGV[5], '*', 'f', ARGV[3], 'm', ARGV[4])
return 1
`),

  /**
   * GCRA (the generic cell rate algorithm): one key holding the theoretical arrival time.
   * ARGV: P, bucket, emission interval ms (1000 / perSecond), burst. Returns 1 (allowed) or 0.
   */
  dcdnTake: script(`
local k = P .. 'rl:' .. ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local T, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', k) or '0')
if tat < now then tat = now end
local nextTat = tat + T
if nextTat - now > T * burst then return 0 end
redis.call('SET', k, string.format('%.3f', nextTat), 'PX', math.max(1, math.ceil(nextTat - now)))
return 1
`),
} as const;

export type ScriptName = keyof typeof SCRIPTS;
