-- hello.lua -- the smallest useful workflow: greet a new user. Start here.
--
-- Shows: af.workflow with a description, vars, sample_input and Lua budgets (limits), a manual
-- trigger, a transform reading ctx.trigger and ctx.vars, af.sleep inside a transform, af.log,
-- af.node "core.echo" by name with a config computed from ctx, a delay step, af.object /
-- af.array for empty JSON values, and the default result (the outputs of the last steps).
--
-- Run:  agentflow run examples/hello.lua
--       agentflow run examples/hello.lua --input '{"name": "Grace", "lang": "fr"}'
--       agentflow check examples/hello.lua
local af = require "agentflow"

local wf = af.workflow "hello" {
  description = "Greet a new user in their language",
  vars = { greetings = { en = "Hello", fr = "Bonjour", pt = "Olá" }, product = "agentflow" },
  sample_input = { name = "Ada", lang = "en" },
  limits = { instructions = 10000000, memory = "16MB" },
}
wf:on(af.manual {})

local greet = wf:step("greet", af.transform(function(ctx)
  local word = ctx.vars.greetings[ctx.trigger.lang] or ctx.vars.greetings.en
  af.sleep(10) -- waits without blocking the engine
  af.log("greeting " .. ctx.trigger.name)
  return { text = word .. ", " .. ctx.trigger.name .. "!" }
end))

-- an engine node type called by name; functions in the config are worked out at run time
wf:step("email", af.node "core.echo" {
  to = function(ctx) return ctx.trigger.name:lower() .. "@example.com" end,
  subject = function(ctx) return "Welcome to " .. ctx.vars.product end,
  body = function(ctx) return ctx.steps.greet.text end,
  attachments = af.array(), -- an empty table would be ambiguous: these stay [] and {}
  headers = af.object(),
}, { after = greet })

-- no further steps depend on these two, so together they are the result
wf:step("follow_up", af.delay "30ms", { after = greet })

return wf
