-- Argo CD health check for compute.nodeaction.dev/Provider.
--
-- The operator probes the Provider's endpoint with its credentials and sets
-- Ready (and Stalled when a person must fix the configuration):
--   no status yet, or a spec change not yet probed -> Progressing
--   Ready=True                                     -> Healthy
--   Ready=False (credentials refused, Secret missing, endpoint
--   unreachable, ...)                              -> Degraded
--
-- Argo CD runs user scripts without Lua's string library: only base, table
-- and package functions are used here.
local hs = {}

local function find(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  if c.reason ~= nil and c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil then
    return c.reason
  end
  return fallback
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to probe this Provider"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to probe the latest spec (generation " .. generation .. ")"
  return hs
end

local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "The Provider cannot be used")
  return hs
end

local ready = find(conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to probe this Provider"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Credentials accepted")
  return hs
end
hs.status = "Degraded"
hs.message = describe(ready, "The Provider cannot be used")
return hs
