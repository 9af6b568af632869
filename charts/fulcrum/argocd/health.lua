-- Argo CD health check for fulcrum.dev/ModelDeployment (kstatus conditions written by the Fulcrum operator).
--   Healthy:     Ready=True and status.observedGeneration == metadata.generation
--   Degraded:    Stalled=True (the operator gave up until the spec changes: bad spec, every build failed...)
--   Progressing: anything else (generation not yet observed, Reconciling=True, no status yet)
-- Install: argocd-cm key `resource.customizations.health.fulcrum.dev_ModelDeployment` (see docs/helm.md).
local hs = {}
local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Fulcrum operator to observe the ModelDeployment"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Fulcrum operator to observe generation " .. tostring(generation)
  return hs
end
local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end
local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end
local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
