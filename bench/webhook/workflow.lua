-- The workflow of bench/webhook: two webhooks (immediate and wait mode) and three Lua steps.
local af = require "agentflow"
local wf = af.workflow "bench-webhook" { description = "three Lua steps behind a webhook" }
wf:on(af.webhook { path = "bench/immediate" })
wf:on(af.webhook { path = "bench/wait", response = { mode = "wait", timeout = "10s",
  fn = function(x) return { status = 200, body = x.result.reply } end } })
local parse = wf:step("parse", function(ctx) return { n = ctx.trigger.body.n or 0 } end)
local double = wf:step("double", function(ctx) return ctx.steps.parse.n * 2 end, { after = parse })
wf:step("reply", function(ctx) return { doubled = ctx.steps.double } end, { after = double })
return wf
