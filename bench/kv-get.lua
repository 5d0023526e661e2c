-- bench/kv-get.lua: GET <url path>?key=key-NNNNNN, a random key among KEYS
-- (argument 1; default 10000), the keys the bench scripts preload. Used by
-- perf.sh and cpu_ab.sh.
local keys, prefix
function init(args)
   keys = tonumber(args[1]) or 10000
   prefix = wrk.path .. "?key=key-"
   math.randomseed(os.time() * 1000 + math.random(1, 100000))
end
function request()
   return wrk.format("GET", prefix .. string.format("%06d", math.random(1, keys)))
end
