-- workflow.lua -- uses the hello-lua plugin's node type by name.
-- Run: agentflow run examples/plugins/hello-lua/workflow.lua --plugins <dir with hello.lua>
local af = require "agentflow"

local wf = af.workflow "hello-lua" { sample_input = { name = "Grace" } }
wf:step("greet", af.node "hello.lua_greet" {
  name = function(ctx) return ctx.trigger.name end, pause_ms = 10 })
return wf
