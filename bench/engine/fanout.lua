-- Engine benchmark fixture: one root, N trivial steps after it, one join step after all of them.
-- See bench/README.md.
local af = require "agentflow"

local N = 1000
local wf = af.workflow "bench-fanout" { description = "1,000-wide fan-out and join" }

local root = wf:step("root", function(ctx) return 0 end)
local branches = {}
for i = 1, N do
  branches[i] = wf:step("b" .. i, function(ctx) return (ctx.steps.root or 0) + i end, { after = root })
end
wf:step("join", function(ctx) return #branches end, { after = branches })

return wf
