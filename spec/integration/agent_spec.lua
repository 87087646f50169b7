-- The agent plugin against the mock LLM (spec/tools' af-mockserver speaking the OpenAI and
-- Anthropic wire formats): answers, tools, structured output, memory, streaming, fallback,
-- budgets, and bad responses. The mock follows directives in the last user message
-- ("#tool name {args}", "#json {...}", "#status 429 ...", see spec/tools/mock_llm.c).
local h = require "spec.helpers"
local json = require "dkjson"

local server

local function env()
  return { OPENAI_BASE_URL = server.url .. "/v1", OPENAI_API_KEY = "sk-test-openai",
           ANTHROPIC_BASE_URL = server.url .. "/v1", ANTHROPIC_API_KEY = "sk-test-anthropic" }
end

local function run_file(file, input, extra)
  local args = { "run", file, "--json" }
  if input then
    args[#args + 1] = "--input"
    args[#args + 1] = json.encode(input)
  end
  return h.run(args, extra or env())
end

local function run(body, input)
  local file = h.tmpfile("local af = require 'agentflow'\nlocal wf = af.workflow 'agent-spec' {}\n" ..
                         body .. "\nreturn wf\n")
  local r = run_file(file, input)
  os.remove(file)
  return r
end

local function step(r, name) return r.json and r.json.steps[name] or {} end

local function requests()
  local code, out = h.sh("curl -s " .. server.url .. "/llm/requests")
  assert.are.equal(0, code)
  return json.decode(out)
end

describe("the agent plugin", function()
  setup(function() server = h.mock_server() end)
  teardown(function() server.stop() end)
  before_each(function() h.sh("curl -s -X POST " .. server.url .. "/llm/reset") end)

  for _, provider in ipairs({ "openai", "anthropic" }) do
    it("answers through " .. provider .. " with usage, cost, trace and no key in sight", function()
      local r = run([[
        wf:step("ask", af.agent { model = "]] .. provider .. [[:mock-1", prompt = "hello there",
                                  pricing = { ["]] .. provider .. [[:mock-1"] = { 1, 2 } } })
      ]])
      assert.are.equal(0, r.code, h.describe_run(r))
      local out = step(r, "ask").output
      assert.are.equal("echo: hello there", out.text)
      assert.are.equal(provider .. ":mock-1", out.model)
      assert.is_true(out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0)
      assert.is_true(out.usage.cost_usd > 0)
      assert.are.equal(out.usage.total_tokens, r.json.usage.llm_tokens)
      assert.are.equal("llm", r.json.trace[1].kind)
      assert.falsy(r.stdout:find("sk-test", 1, true))
      local req = requests()[1]
      if provider == "openai" then
        assert.are.equal("Bearer sk-test-openai", req.headers.authorization)
      else
        assert.are.equal("sk-test-anthropic", req.headers["x-api-key"])
        assert.are.equal("2023-06-01", req.headers["anthropic-version"])
      end
    end)

    it("calls tools in parallel and validates their arguments (" .. provider .. ")", function()
      local r = run([[
        local double = af.tool { name = "double", parameters = { type = "object", required = { "n" },
          properties = { n = { type = "integer" } } }, fn = function(a) af.sleep(30) return a.n * 2 end }
        local echo = af.tool { name = "echo", node = af.node "core.echo" {
          said = function(ctx) return ctx.args.text end } }
        wf:step("ask", af.agent { model = "]] .. provider .. [[:mock-1", tools = { double, echo },
          prompt = '#tool double {"n": 21}\n#tool echo {"text": "hi"}\n#tool double {"n": "x"}\n#tool ghost {}' })
      ]])
      assert.are.equal(0, r.code, h.describe_run(r))
      local out = step(r, "ask").output
      assert.are.equal(4, #out.tool_calls)
      assert.are.equal(42, out.tool_calls[1].result)
      assert.are.equal("hi", out.tool_calls[2].result.said)
      assert.truthy(out.tool_calls[3].error:find("invalid arguments: $.n: must be integer", 1, true))
      assert.truthy(out.tool_calls[4].error:find("unknown tool 'ghost'", 1, true))
      assert.truthy(out.text:find("^done: 42"), out.text)
      local tools = 0
      for _, t in ipairs(r.json.trace) do tools = tools + (t.kind == "tool" and 1 or 0) end
      assert.are.equal(4, tools)
    end)
  end

  it("stops after max_iterations", function()
    local r = run([[
      local t = af.tool { name = "noop", fn = function() return "ok" end }
      wf:step("ask", af.agent { model = "openai:mock-1", tools = { t }, max_iterations = 2,
                                prompt = "#rounds 5\n#tool noop {}" })
    ]])
    assert.are.equal(1, r.code, h.describe_run(r))
    assert.are.equal("AGENT_ITERATIONS", step(r, "ask").error.code)
  end)

  it("validates structured output and asks once to repair it", function()
    local r = run([[
      local c = { on_error = "continue" }
      wf:step("good", af.agent { model = "openai:mock-1", output = { n = "integer" },
                                 prompt = '#json {"n": 3}' })
      wf:step("repaired", af.agent { model = "anthropic:mock-1", output = { n = "integer" },
                                     prompt = '#badjson-then {"n": 4}' })
      wf:step("hopeless", af.agent { model = "openai:mock-1", output = { n = "integer" },
                                     prompt = '#answer {"n": "three"}' }, c)
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(3, step(r, "good").output.output.n)
    assert.are.equal(4, step(r, "repaired").output.output.n)
    assert.are.equal(2, step(r, "repaired").output.usage.calls)
    assert.are.equal("AGENT_OUTPUT", step(r, "hopeless").error.code)
    assert.truthy(step(r, "hopeless").error.message:find("did not validate after one repair", 1, true))
  end)

  it("streams responses (both formats) and notices a cut stream", function()
    local r = run([[
      local t = af.tool { name = "double", fn = function(a) return a.n * 2 end }
      wf:step("o", af.agent { model = "openai:mock-1", stream = true, prompt = "stream me please" })
      wf:step("a", af.agent { model = "anthropic:mock-1", stream = true, tools = { t },
                              prompt = '#tool double {"n": 5}' })
      wf:step("cut", af.agent { model = "openai:mock-1", stream = true, prompt = "#cut-stream" },
              { on_error = "continue", retry = { attempts = 1 } })
      wf:step("down", af.agent { model = "anthropic:mock-1", stream = true, prompt = "#status 503" },
              { on_error = "continue", retry = { attempts = 1 } })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("echo: stream me please", step(r, "o").output.text)
    assert.are.equal("done: 10", step(r, "a").output.text)
    assert.are.equal("LLM_MALFORMED", step(r, "cut").error.code)
    assert.truthy(step(r, "cut").error.message:find("stream ended", 1, true))
    assert.are.equal("LLM_503", step(r, "down").error.code)
    assert.truthy(step(r, "down").error.message:find('"type":"error"', 1, true),
                  step(r, "down").error.message) -- the provider's own error body, quoted
  end)

  it("retries 429 after Retry-After, falls back to the next model, reports malformed JSON", function()
    local r = run([[
      local c = { on_error = "continue" }
      wf:step("limited", af.agent { model = "openai:mock-1",
                                    prompt = "#status 429 retry-after 1 times 1 key lim" },
              { retry = { attempts = 2, initial = "1ms" } })
      wf:step("fallback", af.agent { model = "openai:mock-1", fallback = { "anthropic:mock-2" },
                                     prompt = "#status 500 times 1 key fb" })
      wf:step("broken", af.agent { model = "openai:mock-1", prompt = "#malformed" }, c)
      wf:step("denied", af.agent { model = "openai:mock-1", prompt = "hi", api_key = "" }, c)
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(2, step(r, "limited").attempts)
    assert.are.equal("recovered", step(r, "limited").output.text)
    assert.truthy(r.stderr:find("retrying in 1.00s", 1, true), r.stderr)
    assert.are.equal("anthropic:mock-2", step(r, "fallback").output.model)
    assert.are.equal("LLM_MALFORMED", step(r, "broken").error.code)
    assert.are.equal("LLM_401", step(r, "denied").error.code)
  end)

  it("keeps conversation memory by key, with tool calls intact", function()
    local r = run([[
      local t = af.tool { name = "double", fn = function(a) return a.n * 2 end }
      local first = wf:step("first", af.agent { model = "openai:mock-1", tools = { t },
        memory = { key = "ann" }, prompt = '#tool double {"n": 1}' })
      wf:step("second", af.agent { model = "openai:mock-1", memory = { key = "ann" },
        prompt = "and again?" }, { after = first })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    local reqs = requests()
    local last = reqs[#reqs].body.messages
    local roles = {}
    for i, m in ipairs(last) do roles[i] = m.role end
    assert.are.same({ "user", "assistant", "tool", "assistant", "user" }, roles)
    assert.are.equal("double", last[2].tool_calls[1]["function"].name)
  end)

  it("stops cleanly at the execution's token budget", function()
    local r = run([[
      local t = af.tool { name = "noop", fn = function() return "ok" end }
      wf:step("ask", af.agent { model = "openai:mock-1", tools = { t }, budget = { tokens = 3 },
                                prompt = "#tool noop {}\nand some more words" })
    ]])
    assert.are.equal(1, r.code, h.describe_run(r))
    assert.are.equal("AGENT_BUDGET", step(r, "ask").error.code)
    assert.are.equal(1, #requests())
  end)

  it("runs examples/agents/support-agent.lua with its tools", function()
    local r = run_file("examples/agents/support-agent.lua", { customer = "ann@example.com",
      text = '#tool lookup_customer {"email": "ann@example.com"}\n#tool search_kb {"query": "invoice"}' })
    assert.are.equal(0, r.code, h.describe_run(r))
    local text = r.json.result.reply.text
    assert.truthy(text:find("enterprise", 1, true), text)
    assert.truthy(text:find("How invoices are computed", 1, true), text)
    r = run_file("examples/agents/support-agent.lua", { customer = "bob@example.com",
      text = '#tool escalate {"summary": "site down"}' })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.is_true(r.json.result.page.paged)
    assert.truthy(r.json.result.page.reply:find("URG-9", 1, true), r.json.result.page.reply)
  end)

  it("counts a sub-workflow's LLM usage and trace in the caller's", function()
    local child = h.tmpfile("local af = require 'agentflow'\nlocal wf = af.workflow 'child' {}\n" ..
      "wf:step('ask', af.agent { model = 'openai:mock-1', prompt = 'one two three' })\nreturn wf\n")
    local r = run([[
      wf:step("call", af.call "]] .. child .. [[")
    ]])
    os.remove(child)
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.is_true(r.json.usage.llm_tokens > 0)
    assert.are.equal("llm", r.json.trace[1].kind)
    assert.are.equal("child", r.json.trace[1].workflow)
  end)

  it("runs examples/agents/research.lua with structured output", function()
    local r = run_file("examples/agents/research.lua", { topic =
      'engines\n#json {"questions": ["why", "#answer #json {\\"title\\": \\"T\\", \\"findings\\": [\\"f\\"], \\"confidence\\": 0.5}"]}' })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("T", r.json.result.summary.output.title)
    assert.are.equal(2, #r.json.steps.answers.output)
    assert.is_true(r.json.usage.llm_tokens > 0)
  end)
end)
