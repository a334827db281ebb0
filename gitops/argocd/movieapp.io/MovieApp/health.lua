-- Argo CD health check for movieapp.io/MovieApp (resource.customizations.health.movieapp.io_MovieApp).
--
-- Suspended   Paused=True: movieapp.io/paused is "true" and the operator
--             holds every write (a deletion waits too)
-- Healthy     Ready=True and the operator has seen the current spec
--             (status.observedGeneration == metadata.generation)
-- Degraded    Stalled=True for the current spec: a human must act (the
--             reason says what: docs/troubleshooting.md); also a deletion
--             that waits for one (DeletionProtected); or Drifted=True:
--             spec.managementPolicy is ObserveOnly and what exists differs
--             from the spec, which the operator will not change
-- Progressing everything else: not reconciled yet, a spec change not yet
--             seen, provisioning under way, being deleted
--
-- Argo CD runs this in gopher-lua (Lua 5.1) with the object in the global
-- `obj`; keep to Lua 5.1 (tests run it under 5.1 and 5.4).
-- Its sandbox opens only the base, table and a safe os library: no
-- `string` or `math` (a call to one fails the script, and Argo CD shows
-- the health as Unknown).

local function condition(conditions, kind)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local message = c.message
  if message == nil or message == "" then
    return c.reason or ""
  end
  if c.reason == nil or c.reason == "" then
    return message
  end
  return c.reason .. ": " .. message
end

-- A whole number as digits: Lua 5.3 and later print a float as "4.0", and
-- Argo CD hands every number over as a float (there is no string.format).
local DIGITS = { [0] = "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" }
local function whole(n)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    return tostring(n)
  end
  local text = ""
  repeat
    local digit = n % 10
    text = DIGITS[digit] .. text
    n = (n - digit) / 10
  until n == 0
  return text
end

local hs = {}
local metadata = obj.metadata or {}

-- Paused first: the operator acts on nothing, a deletion included, until
-- the annotation goes, so nothing below is under way.
local paused = nil
if type(obj.status) == "table" then
  paused = condition(obj.status.conditions, "Paused")
end
if paused ~= nil and paused.status == "True" then
  hs.status = "Suspended"
  hs.message = describe(paused)
  return hs
end

if metadata.deletionTimestamp ~= nil then
  -- deletionPolicy: Delete with the tables protected: nothing is deleted
  -- until a human turns protection off or keeps the data (Retain).
  local waiting = nil
  if type(obj.status) == "table" then
    waiting = condition(obj.status.conditions, "Stalled")
  end
  if waiting ~= nil and waiting.status == "True" and waiting.reason == "DeletionProtected" then
    hs.status = "Degraded"
    hs.message = describe(waiting)
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Deleting: the operator is removing the MovieApp's resources"
  return hs
end

local status = obj.status
if type(status) ~= "table" or type(status.conditions) ~= "table" or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the MovieApp"
  return hs
end

if metadata.generation ~= nil and status.observedGeneration ~= metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. whole(metadata.generation) ..
    " (status describes generation " .. whole(status.observedGeneration) .. ")"
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

-- ObserveOnly changes nothing: a difference stays until a human acts
-- (switches to Full, or changes AWS or the spec).
local drifted = condition(status.conditions, "Drifted")
if drifted ~= nil and drifted.status == "True" then
  hs.status = "Degraded"
  hs.message = "ObserveOnly: " .. describe(drifted)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator to report the Ready condition"
end
return hs
