-- Engine benchmark fixture: a small 3-step workflow for the cold-start measurement.
-- See bench/README.md.
local af = require "agentflow"

local wf = af.workflow "bench-three" { description = "three-step cold start" }

local a = wf:step("a", function(ctx) return 1 end)
local b = wf:step("b", function(ctx) return (ctx.steps.a or 0) + 1 end, { after = a })
wf:step("c", function(ctx) return (ctx.steps.b or 0) + 1 end, { after = b })

return wf
