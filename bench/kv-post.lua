-- bench/kv-post.lua: wrk script for bench/kv.sh. Every request is
--   POST <url path>   (e.g. /v4/keyvalues/bench)
--   Content-Type: application/json
--   {"key":"key-NNNNNN","value":"<32 bytes>","ttl":0}
-- with a key picked at random among key-000001 .. key-<KEYS>, so the
-- requests overwrite keys that bench/kv.sh preloaded (a write that creates
-- nothing new never hits a count limit) and spread over the store's stripes.
--
-- Usage: wrk [options] -s kv-post.lua http://127.0.0.1:PORT/v4/keyvalues/bench -- KEYS [check]
--   KEYS   number of keys to pick from (default 10000)
--   check  also count the responses by status code and print
--          "status NNN: COUNT" lines at the end. This makes wrk parse every
--          response in Lua, which costs client CPU: use it for a short
--          verification run, not for the measured runs.

local threads = {}
local counter = 0

-- Runs in wrk's main Lua state, once per thread, before init().
function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local keys, path, headers

function init(args)
   keys = tonumber(args[1]) or 10000
   path = wrk.path
   headers = { ["Content-Type"] = "application/json" }
   -- "id" was set by setup(); different seeds so that threads differ.
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   if args[2] == "check" then
      statuses = {}
      response = function(status)
         statuses[status] = (statuses[status] or 0) + 1
      end
   end
end

function request()
   counter = counter + 1
   local body = string.format('{"key":"key-%06d","value":"v%031d","ttl":0}',
                               math.random(1, keys), counter)
   return wrk.format("POST", path, headers, body)
end

function done()
   local total = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if type(s) == "table" then
         for status, n in pairs(s) do
            total[status] = (total[status] or 0) + n
         end
      end
   end
   for status, n in pairs(total) do
      io.write(string.format("status %d: %d\n", status, n))
   end
end
