-- hello.lua -- uses the hello-c plugin's node types by name.
-- Shows: a C plugin's synchronous node (hello.greet) and its asynchronous one (hello.wait).
-- Run: agentflow run examples/plugins/hello-c/hello.lua --plugins <dir with hello-c.so>
local af = require "agentflow"

local wf = af.workflow "hello-c" { sample_input = { name = "Ada" } }
local greet = wf:step("greet", af.node "hello.greet" { name = function(ctx) return ctx.trigger.name end })
wf:step("wait", af.node "hello.wait" { ms = 20 }, { after = greet })
return wf
