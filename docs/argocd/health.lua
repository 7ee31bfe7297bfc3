-- Argo CD health check for kubeserve InferenceServices (serving.kubeserve.io/InferenceService).
-- Wire it in argocd-cm as resource.customizations.health.serving.kubeserve.io_InferenceService
-- (see README "GitOps health"). Argo CD runs it with gopher-lua (Lua 5.1); `obj` is the object.
--
-- Maps the kstatus conditions the operator writes:
--   status not written yet, or an older generation observed -> Progressing
--   Stalled=True (route refused, canary rolled back, pods past their deadline) -> Degraded
--   Reconciling=True (rollout, drain, replicas not ready yet) -> Progressing
--   Ready=True with a manual canary holding a share of the traffic -> Suspended
--   Ready=True -> Healthy
--   Ready=False after a failed reconcile pass -> Degraded, otherwise -> Progressing
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function words(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubeserve operator to report a status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubeserve operator to observe generation " .. generation
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = words(stalled)
  return hs
end
local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = words(reconciling)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  local canary = status.revisions and status.revisions.canary
  if canary ~= nil and canary.trafficPercent ~= nil and canary.trafficPercent > 0 then
    hs.status = "Suspended"
    hs.message = "canary " .. canary.hash .. " holds " .. canary.trafficPercent
      .. "% of the traffic until it is promoted"
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready ~= nil and ready.reason == "ReconcileError" then
  hs.status = "Degraded"
  hs.message = words(ready)
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = words(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
