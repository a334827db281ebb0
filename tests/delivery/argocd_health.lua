-- Runs an Argo CD health script the way Argo CD does: the object in the
-- global `obj`, the script's chunk called with no arguments, its return
-- value a table with `status` and `message`. Argo CD's gopher-lua VM opens
-- only the base, table and a safe os library (util/lua/lua.go); so does this
-- sandbox: no string, math, io, require or load.
--
--   lua argocd_health.lua <health.lua> <object.lua>
--
-- <object.lua> is a chunk returning the object as a table (lua-health-test.sh
-- writes it from the YAML fixture). Prints "<status>\t<message>".

local script_path, object_path = arg[1], arg[2]

local function read(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("*a")
  file:close()
  return text
end

-- Lua 5.1 has setfenv/loadstring; 5.2+ has load(text, name, mode, env).
local function load_in(text, name, env)
  if setfenv ~= nil and loadstring ~= nil then
    local chunk, err = loadstring(text, name)
    if chunk == nil then return nil, err end
    setfenv(chunk, env)
    return chunk
  end
  return load(text, name, "t", env)
end

local object_chunk = assert(load_in(read(object_path), "=" .. object_path, {}))
local object = object_chunk()

local env = {
  obj = object,
  pairs = pairs, ipairs = ipairs, next = next, type = type, select = select,
  tostring = tostring, tonumber = tonumber, error = error, pcall = pcall,
  assert = assert, unpack = unpack or table.unpack,
  table = table,
}
local chunk, err = load_in(read(script_path), "=" .. script_path, env)
if chunk == nil then
  io.stderr:write("cannot load the health script: " .. tostring(err) .. "\n")
  os.exit(2)
end
local ok, result = pcall(chunk)
if not ok then
  io.stderr:write("the health script failed: " .. tostring(result) .. "\n")
  os.exit(2)
end
if type(result) ~= "table" then
  io.stderr:write("the health script returned " .. type(result) .. ", not a table\n")
  os.exit(2)
end
local valid = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }
if not valid[result.status] then
  io.stderr:write("the health script returned status " .. tostring(result.status) .. "\n")
  os.exit(2)
end
if result.message ~= nil and type(result.message) ~= "string" then
  io.stderr:write("the health script returned a non-string message\n")
  os.exit(2)
end
io.write(result.status, "\t", result.message or "", "\n")
