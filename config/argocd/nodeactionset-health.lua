-- Argo CD health check for compute.nodeaction.dev/NodeActionSet.
--
-- The operator writes kstatus conditions (Ready, Reconciling, Stalled):
--   no status yet, a spec change not yet seen, or
--   a new spec.runID whose run has not started   -> Progressing
--   Stalled=True  (failure budget exceeded, run   -> Degraded
--                  finished with failures, bad spec)
--   Ready=True    (every member succeeded)        -> Healthy
--   Reconciling=True with reason Paused           -> Suspended
--   anything else (rolling, outside a window)     -> Progressing
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
  hs.message = "Waiting for the nodeaction operator to pick up this NodeActionSet"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to see the latest spec (generation " .. generation .. ")"
  return hs
end

local wantRun = ""
if obj.spec ~= nil and obj.spec.runID ~= nil then
  wantRun = obj.spec.runID
end
local haveRun = ""
if obj.status.runID ~= nil then
  haveRun = obj.status.runID
end
if wantRun ~= haveRun then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to start run \"" .. wantRun .. "\" (the status shows run \"" .. haveRun .. "\")"
  return hs
end

local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "The rollout stopped")
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Every member succeeded")
  return hs
end

local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" and reconciling.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(reconciling, "Paused")
  return hs
end

hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling, "Rolling out")
else
  hs.message = describe(ready, "Rolling out")
end
return hs
