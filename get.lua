local keys, prefix
function init(args)
   keys = tonumber(args[1]) or 10000
   prefix = wrk.path .. "?key=key-"
end
function request()
   return wrk.format("GET", prefix .. string.format("%06d", math.random(1, keys)))
end
