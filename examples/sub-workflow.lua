-- sub-workflow.lua -- order checkout that delegates pricing to another workflow file,
-- examples/lib/price-order.lua, called like a function.
--
-- Shows: af.call with a file path relative to this file and an input computed from ctx (both
-- spellings: af.call "file" { input = } and af.call { workflow =, input = }), a call inside a
-- parallel group (two prices at once), the called workflow's output as the step's output, and
-- an event trigger with a filter.
--
-- Run:  agentflow run examples/sub-workflow.lua
--       agentflow run examples/sub-workflow.lua --json  (the calls show in the progress log,
--                                                         indented under their step)
local af = require "agentflow"

local wf = af.workflow "sub-workflow" {
  description = "Checkout: price the cart (with and without membership) and build an invoice",
  timeout = "30s",
  sample_input = {
    order = {
      id = "ord-5001",
      coupon = "WELCOME10",
      lines = {
        { sku = "KB-101", qty = 2, unit_price = 50 },
        { sku = "MS-220", qty = 1, unit_price = 25 },
      },
    },
  },
  output = function(ctx) return ctx.steps.invoice end,
}
wf:on(af.event {
  type = "cart.checked_out",
  filter = function(event) return event.data and #(event.data.lines or {}) > 0 end,
})

local validate = wf:step("validate", af.transform(function(ctx)
  local order = ctx.trigger.order
  if type(order) ~= "table" or type(order.lines) ~= "table" or #order.lines == 0 then
    error(af.fatal("an order with at least one line is required", "BAD_INPUT"))
  end
  return { id = order.id, lines = #order.lines }
end))

-- the sub-workflow runs with this input as its ctx.trigger; its output is this step's output
local price = wf:step("price", af.call "lib/price-order.lua" {
  input = function(ctx)
    return { lines = ctx.trigger.order.lines, coupon = ctx.trigger.order.coupon }
  end,
}, { after = validate })

-- what a member would pay: the same sub-workflow, twice at once in a parallel group
local offers = wf:step("offers", af.parallel {
  list = af.call { workflow = "lib/price-order.lua",
                   input = function(ctx) return { lines = ctx.trigger.order.lines } end },
  member = af.call { workflow = "lib/price-order.lua",
                     input = function(ctx)
                       return { lines = ctx.trigger.order.lines, coupon = "VIP25" }
                     end },
}, { after = validate })

wf:step("invoice", af.transform(function(ctx)
  local p, o = ctx.steps.price, ctx.steps.offers
  return {
    order = ctx.steps.validate.id,
    lines = ctx.steps.validate.lines,
    subtotal = p.subtotal,
    discount = p.discount,
    vat = p.vat,
    total = p.total,
    list_total = o.list.total,
    member_total = o.member.total,
  }
end), { after = { price, offers }, join = "all" })

return wf
