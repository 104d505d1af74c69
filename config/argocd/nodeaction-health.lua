-- Argo CD health check for compute.nodeaction.dev/NodeAction.
--
-- The operator writes kstatus conditions (Ready, Reconciling, Stalled):
--   no status yet, a spec change not yet seen, or
--   a new spec.runID whose run has not started   -> Progressing
--   Stalled=True  (failed for good, or waiting    -> Degraded
--                  for a person to fix a Secret)
--   Ready=True    (the action succeeded)          -> Healthy
--   anything else (pending, submitting, running)  -> Progressing
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
  hs.message = "Waiting for the nodeaction operator to pick up this NodeAction"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the nodeaction operator to see the latest spec (generation " .. generation .. ")"
  return hs
end

-- A new spec.runID asks for a new run: until the operator has started it,
-- the status describes the previous run.
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
  hs.message = describe(stalled, "The action failed")
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "The action succeeded")
  return hs
end

hs.status = "Progressing"
local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling, "The action is in progress")
else
  hs.message = describe(ready, "The action is in progress")
end
if obj.status.phase ~= nil then
  hs.message = obj.status.phase .. ": " .. hs.message
end
return hs
