-- escalate.lua -- a sub-workflow used as an agent tool: opens an "urgent ticket".
local af = require "agentflow"

local wf = af.workflow "escalate" { sample_input = { summary = "test" } }
wf:step("ticket", function(ctx)
  return { ticket = "URG-" .. #ctx.trigger.summary, summary = ctx.trigger.summary }
end)
wf:step("result", function(ctx) return ctx.steps.ticket end, { after = "ticket" })
return wf
