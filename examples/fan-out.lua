-- fan-out.lua -- fan out and join: a customer 360 view built from lookups that run at the
-- same time, the way an agent gathers context before it answers.
--
-- Shows: explicit dependencies (handles, names, lists), two steps after the same step running
-- concurrently (fetch_profile waits with af.sleep inside a transform, fetch_orders is an
-- af.delay step: the pair takes ~80ms, not ~160ms), a parallel group with named branches
-- (functions and a delay node), join "all", and a per-step timeout that is not reached.
--
-- Run:  agentflow run examples/fan-out.lua
--       agentflow run examples/fan-out.lua --json    (compare the steps' duration_ms with the
--                                                    execution's: the branches overlap)
local af = require "agentflow"

local wf = af.workflow "fan-out" {
  description = "Customer 360: profile, orders and risk checks gathered concurrently",
  timeout = "10s",
  sample_input = { customer_id = "cus-77" },
  output = function(ctx) return ctx.steps.view end,
}
wf:on(af.manual {})

local start = wf:step("start", af.transform(function(ctx)
  af.log("building the view of " .. ctx.trigger.customer_id)
  return { customer_id = ctx.trigger.customer_id }
end))

-- both depend on `start` only, so they start together
wf:step("fetch_profile", af.transform(function(ctx)
  af.sleep(80) -- stands in for a slow CRM call; other steps run meanwhile
  return { id = ctx.steps.start.customer_id, name = "Acme Corp", plan = "enterprise" }
end), { after = start, timeout = "2s" })

wf:step("fetch_orders", af.delay "80ms", { after = start })

local checks = wf:step("checks", af.parallel {
  fraud = function(ctx)
    af.sleep(20)
    return { score = 0.02, flagged = false }
  end,
  credit = function(ctx)
    af.sleep(10)
    return { limit = 50000, currency = "EUR" }
  end,
  cooldown = af.delay "15ms", -- a branch can be any node, too
}, { after = "start" })

wf:step("view", af.transform(function(ctx)
  local s = ctx.steps
  return {
    customer = s.fetch_profile,
    orders_waited_ms = s.fetch_orders.delayed_ms,
    risk = { fraud_score = s.checks.fraud.score, flagged = s.checks.fraud.flagged,
             credit_limit = s.checks.credit.limit, currency = s.checks.credit.currency,
             cooldown_ms = s.checks.cooldown.delayed_ms },
  }
end), { after = { "fetch_profile", "fetch_orders", checks }, join = "all" })

return wf
