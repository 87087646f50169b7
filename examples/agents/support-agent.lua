-- support-agent.lua -- a support-triage agent with tools.
-- Shows: af.agent with three kinds of tools (a Lua function, a node, a sub-workflow), parallel
-- tool calls, conversation memory per customer, a fallback model, a token budget, and a
-- condition on the agent's answer.
-- Run against a real provider:
--   OPENAI_API_KEY=sk-... agentflow run examples/agents/support-agent.lua
-- or any OpenAI-compatible server (Ollama, vLLM, llama.cpp): set OPENAI_BASE_URL as well.
-- The tests run it against spec/tools' mock LLM.
local af = require "agentflow"

local wf = af.workflow "support-agent" {
  description = "Answer a support ticket with the help of tools; escalate when urgent",
  sample_input = { customer = "ann@example.com", text = "My invoice for March is wrong." },
  step_timeout = "2m",
}

local CUSTOMERS = {
  ["ann@example.com"] = { name = "Ann", plan = "enterprise", open_tickets = 2 },
  ["bob@example.com"] = { name = "Bob", plan = "free", open_tickets = 0 },
}

local lookup_customer = af.tool {
  name = "lookup_customer",
  description = "Finds a customer's plan and open tickets by email",
  parameters = { type = "object", required = { "email" },
                 properties = { email = { type = "string" } } },
  fn = function(args) return CUSTOMERS[args.email] or { error = "no such customer" } end,
}

local search_kb = af.tool {
  name = "search_kb",
  description = "Searches the knowledge base",
  parameters = { type = "object", required = { "query" },
                 properties = { query = { type = "string" } } },
  node = af.node "core.echo" {
    query = function(ctx) return ctx.args.query end,
    articles = af.array { "How invoices are computed", "Changing your billing address" },
  },
}

local escalate = af.tool {
  name = "escalate",
  description = "Opens an urgent ticket for the on-call engineer",
  parameters = { type = "object", required = { "summary" },
                 properties = { summary = { type = "string" } } },
  workflow = "lib/escalate.lua",
}

local answer = wf:step("answer", af.agent {
  model = "openai:gpt-4o-mini",
  fallback = { "anthropic:claude-3-5-haiku-latest" },
  system = "You are a support agent. Use the tools; be brief.",
  prompt = function(ctx)
    return "Customer " .. ctx.trigger.customer .. " writes:\n" .. ctx.trigger.text
  end,
  tools = { lookup_customer, search_kb, escalate },
  memory = { key = function(ctx) return ctx.trigger.customer end, max_messages = 20 },
  max_iterations = 6,
  budget = { tokens = 20000 },
})

local escalated = wf:step("escalated", af.condition(function(ctx)
  for _, call in ipairs(ctx.steps.answer.tool_calls) do
    if call.name == "escalate" then return true end
  end
  return false
end), { after = answer })

wf:step("reply", function(ctx)
  return { to = ctx.trigger.customer, text = ctx.steps.answer.text,
           tokens = ctx.steps.answer.usage.total_tokens }
end, { after = escalated.no })

wf:step("page", function(ctx)
  return { paged = true, reply = ctx.steps.answer.text }
end, { after = escalated.yes })

return wf
