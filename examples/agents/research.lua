-- research.lua -- a research loop with structured output.
-- Shows: an agent that plans (structured output: a list of questions), a foreach whose body is
-- an agent answering each question (ctx.item), and a final agent that writes a validated
-- summary object; usage and cost add up in the execution's totals.
-- Run: ANTHROPIC_API_KEY=... agentflow run examples/agents/research.lua
--   (ANTHROPIC_BASE_URL for another endpoint). The tests run it against the mock LLM.
local af = require "agentflow"

local wf = af.workflow "research" {
  description = "Plan questions, answer each, summarise into a checked object",
  sample_input = { topic = "durable workflow engines" },
}

local MODEL = "anthropic:claude-3-5-haiku-latest"

local plan = wf:step("plan", af.agent {
  model = MODEL,
  prompt = function(ctx) return "List three questions to research about " .. ctx.trigger.topic end,
  output = { questions = { type = "array", items = { type = "string" }, minItems = 1 } },
})

local answers = wf:step("answers", af.foreach {
  items = function(ctx) return ctx.steps.plan.output.questions end,
  concurrency = 3,
  body = af.agent { model = MODEL, prompt = function(ctx) return ctx.item end },
}, { after = plan })

wf:step("summary", af.agent {
  model = MODEL,
  prompt = function(ctx)
    local parts = {}
    for i, a in ipairs(ctx.steps.answers) do parts[i] = a.text end
    return "Summarise:\n" .. table.concat(parts, "\n")
  end,
  output = { title = "string", findings = { type = "array", items = { type = "string" } },
             confidence = "number" },
}, { after = answers })

return wf
