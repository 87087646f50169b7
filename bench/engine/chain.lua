-- Engine benchmark fixture: a linear chain of N trivial Lua transforms (s1 -> s2 -> ... -> sN).
-- Each step adds one to its predecessor's output, so the result is N. See bench/README.md.
local af = require "agentflow"

local N = 10000
local wf = af.workflow "bench-chain" { description = "10,000-step linear chain" }

local prev = wf:step("s1", function(ctx) return 1 end)
for i = 2, N do
  local pname = prev.name
  prev = wf:step("s" .. i, function(ctx) return (ctx.steps[pname] or 0) + 1 end, { after = prev })
end

return wf
