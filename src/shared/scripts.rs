//! The Lua scripts the shared state runs in Redis, and the key layout they work on.
//!
//! Every script reads the time from Redis (`TIME`), never from the replica, so replicas
//! with skewed clocks agree on window boundaries and lease expiries. `ARGV[1]` may carry a
//! time in ms instead (`0` = use `TIME`); only tests pass one, to replay the local limiter's
//! scenarios at chosen instants.
//!
//! A user's keys share the hash tag `{user}` so each per-user script touches one cluster
//! slot; the cooldown keys share the tag `{cool}` so a poll is one single-slot script.
//!
//! Windows are hashes `{s: start_ms, c: current, p: previous}`: the fixed-window pair of
//! `vocab::limits::Counter`, rolled by the same rule, expiring 2 × the window length after the last
//! write (after that the roll would forget them anyway). Concurrency leases are a sorted
//! set of lease ids scored by their expiry time.

use once_cell::sync::Lazy;
use redis::Script;

/// Key suffixes of one user's state, after `{prefix}{user}:`. Request windows, token
/// windows (in the order the scripts expect them) and the concurrency lease set.
pub(crate) const USER_KEYS: [&str; 6] = [
    "req:minute",
    "req:hour",
    "req:day",
    "tok:minute",
    "tok:day",
    "leases",
];

/// `{prefix}{user}:{suffix}`: one user's keys share the hash tag `{user}`.
pub(crate) fn user_key(prefix: &str, user: &str, suffix: &str) -> String {
    let mut k = String::with_capacity(prefix.len() + user.len() + suffix.len() + 3);
    k.push_str(prefix);
    k.push('{');
    k.push_str(user);
    k.push_str("}:");
    k.push_str(suffix);
    k
}

/// `{prefix}{cool}:{backend_id}`: every cooldown key shares the hash tag `{cool}`. Backend
/// ids always contain `/`, user key suffixes never do, so a user named `cool` cannot clash.
pub(crate) fn cooldown_key(prefix: &str, backend_id: &str) -> String {
    format!("{prefix}{{cool}}:{backend_id}")
}

/// `{prefix}{spend}:{scope}:{period}`: the spend hash of one scope (`user`, `team`,
/// `model`, `backend`) in one period (`2026-12-07`, `2026-12`). Its fields are
/// `<id>:c` (cost, integer micro-dollars) and `<id>:i`, `:o`, `:r`, `:w` (input, output,
/// cache-read and cache-write tokens). Every spend key shares the hash tag `{spend}`, so a
/// settlement batch is one single-slot script; a user named `spend` cannot clash (user
/// keys continue with `}:` and a suffix without another `:`-separated period).
pub(crate) fn spend_key(prefix: &str, scope: &str, period: &str) -> String {
    format!("{prefix}{{spend}}:{scope}:{period}")
}

/// Helpers shared by the window scripts: the clock, integer formatting, and
/// `vocab::limits::Counter::roll` / the window store.
const PRELUDE: &str = r#"
local function now_ms()
  local o = tonumber(ARGV[1])
  if o and o > 0 then return o end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x) return string.format('%.0f', x) end
-- vocab::limits::Counter::roll: the window pair as of `now`.
local function load(key, len, now)
  local v = redis.call('HMGET', key, 's', 'c', 'p')
  local s = tonumber(v[1]) or 0
  local c = tonumber(v[2]) or 0
  local p = tonumber(v[3]) or 0
  if s == 0 then s = now - now % len end
  if now > s then
    local e = math.floor((now - s) / len)
    if e >= 1 then
      if e == 1 then p = c else p = 0 end
      c = 0
      s = s + e * len
    end
  end
  return s, c, p
end
local function store(key, len, s, c, p)
  redis.call('HSET', key, 's', int(s), 'c', int(c), 'p', int(p))
  redis.call('PEXPIRE', key, len * 2)
end
-- vocab::limits::Counter::estimate + 1 > limit: the next unit does not fit.
local function full(s, c, p, len, now, limit)
  local w = 1 - math.max(now - s, 0) / len
  if w < 0 then w = 0 end
  return p * w + c + 1 > limit
end
-- The key's TTL is at least `ttl` ms (never shortened).
local function keep(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
"#;

/// Admission: checks every configured window and the concurrency cap; only if all pass,
/// counts the request in the request windows and adds the lease.
///
/// KEYS: `USER_KEYS` in order. ARGV: 1 time override (`0` = `TIME`); 2–6 the limits of
/// KEYS[1..5] (`""` = not limited); 7 max_concurrent (`""` = none); 8 lease id; 9 lease TTL
/// ms. Returns `{admitted (0/1), now, then per failing check: index (1–6), s, c, p}`
/// (index 6 = concurrency, s/c/p 0).
const ADMIT_BODY: &str = r#"
local now = now_ms()
local LENS = {60000, 3600000, 86400000, 60000, 86400000}
local out = {0, now}
local rolled = {}
for i = 1, 5 do
  local limit = tonumber(ARGV[i + 1])
  if limit then
    local len = LENS[i]
    local s, c, p = load(KEYS[i], len, now)
    rolled[i] = {s, c, p}
    if full(s, c, p, len, now, limit) then
      out[#out + 1] = i
      out[#out + 1] = s
      out[#out + 1] = c
      out[#out + 1] = p
    end
  end
end
local maxc = tonumber(ARGV[7])
if maxc then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', int(now))
  if redis.call('ZCARD', KEYS[6]) >= maxc then
    out[#out + 1] = 6
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
if #out > 2 then return out end
for i = 1, 3 do
  local r = rolled[i]
  if r then store(KEYS[i], LENS[i], r[1], r[2] + 1, r[3]) end
end
if maxc then
  local ttl = tonumber(ARGV[9])
  redis.call('ZADD', KEYS[6], int(now + ttl), ARGV[8])
  keep(KEYS[6], ttl)
end
out[1] = 1
return out
"#;

/// One user's batched updates: tokens added to the token windows, leases released, leases
/// renewed (only those still present: `ZADD XX`, so an expired lease is not resurrected).
///
/// KEYS: token minute, token day, leases. ARGV: 1 time override; 2 tokens for the minute
/// window; 3 tokens for the day window (`0` = nothing to add); 4 lease TTL ms; 5 number n of
/// released lease ids; 6..5+n the released ids; the rest the ids to renew. Returns 1.
const UPDATE_BODY: &str = r#"
local now = now_ms()
local LENS = {60000, 86400000}
for i = 1, 2 do
  local add = tonumber(ARGV[i + 1]) or 0
  if add > 0 then
    local s, c, p = load(KEYS[i], LENS[i], now)
    store(KEYS[i], LENS[i], s, c + add, p)
  end
end
local n = tonumber(ARGV[5]) or 0
if n > 0 then redis.call('ZREM', KEYS[3], unpack(ARGV, 6, 5 + n)) end
if #ARGV > 5 + n then
  local ttl = tonumber(ARGV[4])
  local score = int(now + ttl)
  local args = {}
  for j = 6 + n, #ARGV do
    args[#args + 1] = score
    args[#args + 1] = ARGV[j]
  end
  redis.call('ZADD', KEYS[3], 'XX', unpack(args))
  keep(KEYS[3], ttl)
end
return 1
"#;

/// Settles spend: adds cost and tokens to ids in spend hashes (see [`spend_key`]) and sets
/// each hash to expire at the given time (after its window ended).
///
/// KEYS: the spend hashes. ARGV: 1 the number n of entries, then per entry 8 values: the
/// KEYS index (1-based), the id, micro-dollars, input, output, cache-read and cache-write
/// tokens, and the hash's expiry (ms since 1970). Returns each entry's cost after the add.
const SPEND_SRC: &str = r#"
local out = {}
local n = tonumber(ARGV[1])
local f = {':i', ':o', ':r', ':w'}
for j = 0, n - 1 do
  local a = 2 + j * 8
  local key = KEYS[tonumber(ARGV[a])]
  local id = ARGV[a + 1]
  out[j + 1] = redis.call('HINCRBY', key, id .. ':c', ARGV[a + 2])
  for k = 1, 4 do
    local v = ARGV[a + 2 + k]
    if v ~= '0' then redis.call('HINCRBY', key, id .. f[k], v) end
  end
  redis.call('PEXPIREAT', key, ARGV[a + 7])
end
return out
"#;

/// Publishes cooldowns: KEYS the cooldown keys, ARGV their lengths in ms (> 0). A key is
/// set only if Redis holds a shorter one. Returns 1.
const COOL_SET_SRC: &str = r#"
for i = 1, #KEYS do
  local ms = tonumber(ARGV[i])
  if redis.call('PTTL', KEYS[i]) < ms then
    redis.call('SET', KEYS[i], '1', 'PX', ms)
  end
end
return 1
"#;

/// Reads cooldowns: the PTTL of each key in KEYS (negative = none).
const COOL_POLL_SRC: &str = r#"
local out = {}
for i = 1, #KEYS do out[i] = redis.call('PTTL', KEYS[i]) end
return out
"#;

/// A script with its source (for `SCRIPT LOAD`).
pub(crate) struct Lua {
    pub(crate) code: String,
    pub(crate) script: Script,
}

impl Lua {
    fn new(code: String) -> Lua {
        let script = Script::new(&code);
        Lua { code, script }
    }
}

pub(crate) static ADMIT: Lazy<Lua> = Lazy::new(|| Lua::new([PRELUDE, ADMIT_BODY].concat()));
pub(crate) static UPDATE: Lazy<Lua> = Lazy::new(|| Lua::new([PRELUDE, UPDATE_BODY].concat()));
pub(crate) static COOL_SET: Lazy<Lua> = Lazy::new(|| Lua::new(COOL_SET_SRC.to_string()));
pub(crate) static COOL_POLL: Lazy<Lua> = Lazy::new(|| Lua::new(COOL_POLL_SRC.to_string()));
pub(crate) static SPEND: Lazy<Lua> = Lazy::new(|| Lua::new(SPEND_SRC.to_string()));

/// Every script, for `SCRIPT LOAD` when Redis (re)appears.
pub(crate) fn all() -> [&'static Lua; 5] {
    [&ADMIT, &UPDATE, &COOL_SET, &COOL_POLL, &SPEND]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_window_lengths_are_the_limiters() {
        let lens = |body: &str| {
            let line = body.lines().find(|l| l.starts_with("local LENS")).unwrap();
            let list = line.split_once('{').unwrap().1.trim_end_matches('}');
            list.split(", ")
                .map(|n| n.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        };
        let all: Vec<u64> = crate::quota::WINDOWS.iter().map(|w| w.1).collect();
        assert_eq!(lens(ADMIT_BODY), all);
        assert_eq!(lens(UPDATE_BODY), all[3..]);
    }

    #[test]
    fn keys_share_one_hash_tag_per_user() {
        assert_eq!(
            user_key("berry:", "alice", "req:minute"),
            "berry:{alice}:req:minute"
        );
        assert_eq!(
            cooldown_key("berry:", "m/p/gpt-4o"),
            "berry:{cool}:m/p/gpt-4o"
        );
        assert_eq!(
            spend_key("berry:", "team", "2026-12"),
            "berry:{spend}:team:2026-12"
        );
    }

    #[test]
    fn scripts_have_distinct_hashes() {
        let hashes: std::collections::HashSet<&str> =
            all().iter().map(|s| s.script.get_hash()).collect();
        assert_eq!(hashes.len(), 5);
    }
}
