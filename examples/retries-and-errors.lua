-- retries-and-errors.lua -- what happens when steps fail: retries with backoff, timeouts, errors
-- routed to a handler, errors that are never retried, and optional steps that may fail.
--
-- Shows: a per-workflow retry default (flaky_inventory uses it and succeeds on its 3rd attempt),
-- a per-step retry with exponential backoff (flaky_pricing succeeds on its 2nd attempt),
-- retry.non_retryable codes, af.fatal (never retried), a per-step timeout, on_error routing to
-- a handler step that reads ctx.error, on_error = "continue" with a fallback, and
-- ctx.execution.attempt.
--
-- Run:  agentflow run examples/retries-and-errors.lua
--       agentflow run examples/retries-and-errors.lua --json   (attempts and errors per step)
-- The progress log on stderr shows each retry and its backoff.
local af = require "agentflow"

local wf = af.workflow "retries-and-errors" {
  description = "A quote that survives flaky services, slow services and bad data",
  -- the default for every step without its own retry: 3 attempts, 10ms apart
  retry = { attempts = 3, backoff = "fixed", initial = "10ms" },
  timeout = "30s",
  step_timeout = "5s",
  sample_input = { sku = "KB-101", quantity = 3, coupon = "SPRING-??" },
  output = function(ctx)
    local s = ctx.steps
    return {
      in_stock = s.flaky_inventory ~= nil,
      inventory_attempts = s.flaky_inventory.attempt, -- core.fail reports its attempt
      unit_price = s.flaky_pricing.unit_price,
      pricing_attempts = s.flaky_pricing.attempt,
      coupon = s.coupon_rejected,
      shipping = s.shipping_quote,
      account = s.lookup_account, -- null: the step failed and was continued
    }
  end,
}
wf:on(af.manual {})

-- no retry of its own: the workflow default (3 attempts) applies
wf:step("flaky_inventory", af.node "core.fail" {
  message = "inventory service returned 503", code = "UPSTREAM_503", until_attempt = 3,
})

-- its own policy: up to 4 attempts, exponential backoff from 10ms, capped at 40ms
wf:step("flaky_pricing", af.transform(function(ctx)
  local attempt = ctx.execution.attempt
  if attempt < 2 then
    error(af.error { code = "RATE_LIMITED", message = "pricing API: too many requests" })
  end
  return { unit_price = 49.5, attempt = attempt }
end), { retry = { attempts = 4, backoff = "exponential", initial = "10ms", max = "40ms" } })

-- a bad coupon will not get better by retrying: INVALID is listed as non-retryable, so the
-- step fails at once and its error goes to the handler below
wf:step("validate_coupon", af.node "core.fail" {
  message = "coupon 'SPRING-??' is malformed", code = "INVALID", retryable = true,
}, { retry = { attempts = 5, initial = "10ms", non_retryable = { "INVALID" } },
     on_error = "coupon_rejected" })

-- the handler runs only when validate_coupon fails; ctx.error says what failed
wf:step("coupon_rejected", af.transform(function(ctx)
  af.log("coupon rejected: " .. ctx.error.message)
  return { applied = false, failed_step = ctx.error.step, code = ctx.error.code,
           reason = ctx.error.message }
end))

-- a carrier that is too slow: the per-step timeout stops it after 50ms; the step may fail
-- (on_error = "continue"), and its dependent falls back to a flat rate
local carrier = wf:step("carrier_quote", af.delay "3s", {
  timeout = "50ms", retry = { attempts = 1 }, on_error = "continue",
})
wf:step("shipping_quote", af.transform(function(ctx)
  local quote = ctx.steps.carrier_quote
  if quote == af.null then -- a continued failure's output is null (af.null, a true value)
    return { source = "flat rate", amount = 4.99 }
  end
  return { source = "carrier", amount = quote.amount }
end), { after = carrier })

-- af.fatal: an error that is never retried whatever the policy says
wf:step("lookup_account", af.transform(function(ctx)
  error(af.fatal("no account for this session", "NOT_FOUND"))
end), { retry = { attempts = 3, initial = "10ms" }, on_error = "continue" })

return wf
