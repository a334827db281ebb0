-- Every request searches for a title nobody searched before, so each one
-- misses both cache layers and goes to the TMDB stub.
local counter = 0
local prefix = tostring(os.time()) .. tostring(math.random(1000000))

request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/v1/movies/search?query=bench" .. prefix .. "x" .. counter)
end
