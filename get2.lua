local keys, prefix, hdr
function init(args)
   keys = tonumber(args[1]) or 10000
   prefix = "GET " .. wrk.path .. "?key=key-"
   hdr = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n\r\n"
end
function request()
   return prefix .. string.format("%06d", math.random(1, keys)) .. hdr
end
