-- lib/price-order.lua -- a small workflow meant to be called by others (see
-- examples/sub-workflow.lua): prices an order's lines, applies a coupon, adds tax.
--
-- Shows: a reusable workflow whose input is the caller's `input` (ctx.trigger), a condition,
-- and an output function that is what the caller's call step returns.
--
-- Run on its own:  agentflow run examples/lib/price-order.lua      (uses sample_input)
local af = require "agentflow"

local wf = af.workflow "price-order" {
  description = "Prices order lines with an optional coupon and VAT",
  vars = { coupons = { WELCOME10 = 0.10, VIP25 = 0.25 }, vat = 0.20 },
  sample_input = { lines = { { sku = "KB-101", qty = 2, unit_price = 50 } }, coupon = "WELCOME10" },
  output = function(ctx)
    local s = ctx.steps
    local discount = s.discount or { rate = 0, amount = 0 }
    local net = s.subtotal.amount - discount.amount
    local function cents(x) return math.floor(x * 100 + 0.5) / 100 end
    return { subtotal = cents(s.subtotal.amount), discount = cents(discount.amount),
             vat = cents(net * ctx.vars.vat), total = cents(net * (1 + ctx.vars.vat)) }
  end,
}
wf:on(af.manual {})

local subtotal = wf:step("subtotal", af.transform(function(ctx)
  local sum = 0
  for _, line in ipairs(ctx.trigger.lines or {}) do sum = sum + line.qty * line.unit_price end
  return { amount = sum }
end))

local has_coupon = wf:step("has_coupon", af.condition(function(ctx)
  return ctx.vars.coupons[ctx.trigger.coupon or ""] ~= nil
end), { after = subtotal })

wf:step("discount", af.transform(function(ctx)
  local rate = ctx.vars.coupons[ctx.trigger.coupon]
  return { rate = rate, amount = ctx.steps.subtotal.amount * rate }
end), { after = has_coupon.yes })

return wf
