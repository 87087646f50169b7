-- agent.lua -- the agent plugin: an LLM step with tools, memory and structured output.
-- Providers: OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp server,
-- OpenRouter: set base_url) and Anthropic messages; models named "provider:model", with a
-- fallback list tried in order on provider errors. Every LLM call and tool call is recorded in
-- the execution's trace; token usage and cost are in the step's output and the execution's
-- totals, and a budget stops the agent cleanly. Built on the Lua plugin API only (af.http,
-- af.state, af.trace, af.usage, af.schema). Documented in docs/agents.md.
local af = require "agentflow"

local resolve = af.resolve

-- USD per million tokens: input, output. Extend or override with config.pricing.
local PRICES = {
  ["openai:gpt-4o-mini"] = { 0.15, 0.60 },
  ["openai:gpt-4o"] = { 2.50, 10.00 },
  ["openai:gpt-4.1-mini"] = { 0.40, 1.60 },
  ["openai:gpt-4.1"] = { 2.00, 8.00 },
  ["anthropic:claude-3-5-haiku-latest"] = { 0.80, 4.00 },
  ["anthropic:claude-3-5-sonnet-latest"] = { 3.00, 15.00 },
  ["anthropic:claude-sonnet-4-0"] = { 3.00, 15.00 },
}

-- Defaults; the secrets (environment variables in `agentflow run`) OPENAI_BASE_URL and
-- ANTHROPIC_BASE_URL replace the URLs, as the providers' own SDKs do.
local PROVIDERS = {
  openai = { base_url = "https://api.openai.com/v1", key = "OPENAI_API_KEY",
             url_secret = "OPENAI_BASE_URL" },
  anthropic = { base_url = "https://api.anthropic.com/v1", key = "ANTHROPIC_API_KEY",
                url_secret = "ANTHROPIC_BASE_URL" },
}

local function secret_or_nil(name)
  local ok, v = pcall(function() return af.secret(name):get() end)
  return ok and v or nil
end

local function fail(code, message, retryable, retry_after_ms)
  error(af.error { code = code, message = message, retryable = retryable or false,
                   retry_after_ms = retry_after_ms }, 0)
end

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- output schemas

local SHORTHAND = { string = 1, integer = 1, number = 1, boolean = 1, object = 1, array = 1 }

-- { category = "string", urgency = "integer" } -> a JSON Schema requiring those fields.
local function output_schema(config)
  if config.output_schema then return config.output_schema end
  local short = config.output
  if not short then return nil end
  local props, required = af.object(), af.array()
  for k, v in pairs(short) do
    if type(v) == "string" and SHORTHAND[v] then
      props[k] = { type = v }
    elseif type(v) == "table" then
      props[k] = v
    else
      fail("AGENT_CONFIG", "output." .. k .. ": expected a type name or a schema")
    end
    required[#required + 1] = k
  end
  table.sort(required)
  return { type = "object", properties = props, required = required,
           additionalProperties = false }
end

local function decode_answer(text)
  local body = (text or ""):gsub("^%s*```[%w]*%s*", ""):gsub("%s*```%s*$", "")
  return af.json.decode(body)
end

-- ---------------------------------------------------------------------------------------------
-- providers: requests and responses

local function provider_of(model)
  local provider, name = model:match("^([%w_%-]+):(.+)$")
  if not provider or not PROVIDERS[provider] then
    fail("AGENT_CONFIG", "model '" .. tostring(model) .. "' must be provider:model with provider " ..
         "openai or anthropic")
  end
  return provider, name
end

local function http_error(res, what)
  local status = res.status
  local detail = type(res.body) == "table" and af.json.encode(res.body) or tostring(res.body)
  local retry_after = tonumber(res.headers and res.headers["retry-after"])
  local transient = status == 429 or status >= 500
  fail("LLM_" .. status, what .. " answered " .. status .. ": " .. detail:sub(1, 300), transient,
       retry_after and retry_after * 1000 or nil)
end

local OPENAI = {}

function OPENAI.request(model, messages, tools, opts)
  local msgs = af.array()
  for _, m in ipairs(messages) do
    if m.role == "assistant" and m.tool_calls then
      local calls = af.array()
      for i, c in ipairs(m.tool_calls) do
        calls[i] = { id = c.id, type = "function",
                     ["function"] = { name = c.name, arguments = af.json.encode(c.arguments) } }
      end
      msgs[#msgs + 1] = { role = "assistant", content = m.content or af.null, tool_calls = calls }
    elseif m.role == "tool" then
      msgs[#msgs + 1] = { role = "tool", tool_call_id = m.tool_call_id, content = m.content }
    else
      msgs[#msgs + 1] = { role = m.role, content = m.content }
    end
  end
  local body = { model = model, messages = msgs, temperature = opts.temperature,
                 max_tokens = opts.max_tokens }
  if #tools > 0 then
    body.tools = af.array()
    for i, t in ipairs(tools) do
      body.tools[i] = { type = "function", ["function"] = { name = t.name,
        description = t.description or "", parameters = t.parameters or { type = "object" } } }
    end
  end
  if opts.schema then
    body.response_format = { type = "json_schema",
                             json_schema = { name = "output", schema = opts.schema } }
  end
  if opts.stream then
    body.stream = true
    body.stream_options = { include_usage = true }
  end
  return "/chat/completions", { Authorization = "Bearer " .. opts.api_key }, body
end

local function decode_args(text)
  if type(text) == "table" then return text end
  local args = af.json.decode(text or "{}")
  return args
end

function OPENAI.parse(body)
  local choice = type(body) == "table" and body.choices and body.choices[1]
  if not choice or type(choice.message) ~= "table" then return nil end
  local msg = choice.message
  local calls
  if type(msg.tool_calls) == "table" and #msg.tool_calls > 0 then
    calls = {}
    for i, c in ipairs(msg.tool_calls) do
      local fn = c["function"] or {}
      calls[i] = { id = c.id, name = fn.name, arguments = decode_args(fn.arguments),
                   raw_arguments = fn.arguments }
    end
  end
  local usage = body.usage or {}
  return { text = msg.content ~= af.null and msg.content or nil, tool_calls = calls,
           input_tokens = usage.prompt_tokens or 0, output_tokens = usage.completion_tokens or 0 }
end

function OPENAI.parse_stream(events)
  local text, calls, usage, done = {}, {}, {}, false
  for _, e in ipairs(events) do
    local d = e.data
    if d == "[DONE]" then
      done = true
    elseif type(d) == "table" then
      if type(d.usage) == "table" then usage = d.usage end
      local choice = d.choices and d.choices[1]
      local delta = choice and choice.delta
      if type(delta) == "table" then
        if type(delta.content) == "string" then text[#text + 1] = delta.content end
        for _, c in ipairs(type(delta.tool_calls) == "table" and delta.tool_calls or {}) do
          local i = (c.index or 0) + 1
          calls[i] = calls[i] or { args = {} }
          if c.id then calls[i].id = c.id end
          local fn = c["function"] or {}
          if fn.name then calls[i].name = fn.name end
          if fn.arguments then calls[i].args[#calls[i].args + 1] = fn.arguments end
        end
      end
    end
  end
  if not done then return nil, "stream ended before [DONE]" end
  local tool_calls
  if #calls > 0 then
    tool_calls = {}
    for i, c in ipairs(calls) do
      local raw = table.concat(c.args)
      tool_calls[i] = { id = c.id, name = c.name, arguments = decode_args(raw), raw_arguments = raw }
    end
  end
  return { text = #text > 0 and table.concat(text) or nil, tool_calls = tool_calls,
           input_tokens = usage.prompt_tokens or 0, output_tokens = usage.completion_tokens or 0 }
end

local ANTHROPIC = {}

function ANTHROPIC.request(model, messages, tools, opts)
  local system, msgs = {}, af.array()
  local pending -- tool results gather into one user message
  for _, m in ipairs(messages) do
    if m.role == "system" then
      system[#system + 1] = m.content
    elseif m.role == "tool" then
      if not pending then
        pending = { role = "user", content = af.array() }
        msgs[#msgs + 1] = pending
      end
      pending.content[#pending.content + 1] = { type = "tool_result", tool_use_id = m.tool_call_id,
                                                content = m.content }
    else
      pending = nil
      if m.role == "assistant" and m.tool_calls then
        local blocks = af.array()
        if m.content and m.content ~= "" then blocks[1] = { type = "text", text = m.content } end
        for _, c in ipairs(m.tool_calls) do
          blocks[#blocks + 1] = { type = "tool_use", id = c.id, name = c.name,
                                  input = af.object(copy(c.arguments)) }
        end
        msgs[#msgs + 1] = { role = "assistant", content = blocks }
      else
        msgs[#msgs + 1] = { role = m.role, content = m.content }
      end
    end
  end
  local body = { model = model, messages = msgs, max_tokens = opts.max_tokens or 1024,
                 temperature = opts.temperature }
  if #system > 0 then body.system = table.concat(system, "\n\n") end
  if #tools > 0 then
    body.tools = af.array()
    for i, t in ipairs(tools) do
      body.tools[i] = { name = t.name, description = t.description or "",
                        input_schema = t.parameters or { type = "object" } }
    end
  end
  if opts.stream then body.stream = true end
  return "/messages", { ["x-api-key"] = opts.api_key, ["anthropic-version"] = "2023-06-01" }, body
end

function ANTHROPIC.parse(body)
  if type(body) ~= "table" or type(body.content) ~= "table" then return nil end
  local text, calls = {}, nil
  for _, b in ipairs(body.content) do
    if b.type == "text" then
      text[#text + 1] = b.text
    elseif b.type == "tool_use" then
      calls = calls or {}
      calls[#calls + 1] = { id = b.id, name = b.name, arguments = b.input }
    end
  end
  local usage = body.usage or {}
  return { text = #text > 0 and table.concat(text) or nil, tool_calls = calls,
           input_tokens = usage.input_tokens or 0, output_tokens = usage.output_tokens or 0 }
end

function ANTHROPIC.parse_stream(events)
  local blocks, usage, done = {}, { input = 0, output = 0 }, false
  for _, e in ipairs(events) do
    local d = e.data
    if type(d) == "table" then
      if d.type == "message_start" and d.message and d.message.usage then
        usage.input = d.message.usage.input_tokens or 0
      elseif d.type == "content_block_start" then
        local cb = d.content_block or {}
        blocks[(d.index or 0) + 1] = { type = cb.type, id = cb.id, name = cb.name, parts = {} }
      elseif d.type == "content_block_delta" then
        local b = blocks[(d.index or 0) + 1]
        local delta = d.delta or {}
        if b then b.parts[#b.parts + 1] = delta.text or delta.partial_json or "" end
      elseif d.type == "message_delta" and d.usage then
        usage.output = d.usage.output_tokens or usage.output
      elseif d.type == "message_stop" then
        done = true
      end
    end
  end
  if not done then return nil, "stream ended before message_stop" end
  local text, calls = {}, nil
  for _, b in ipairs(blocks) do
    if b.type == "text" then
      text[#text + 1] = table.concat(b.parts)
    elseif b.type == "tool_use" then
      calls = calls or {}
      local raw = table.concat(b.parts)
      calls[#calls + 1] = { id = b.id, name = b.name, arguments = decode_args(raw ~= "" and raw or "{}"),
                            raw_arguments = raw }
    end
  end
  return { text = #text > 0 and table.concat(text) or nil, tool_calls = calls,
           input_tokens = usage.input, output_tokens = usage.output }
end

local FORMATS = { openai = OPENAI, anthropic = ANTHROPIC }

-- ---------------------------------------------------------------------------------------------
-- one LLM call, with fallback models

local function price(config, model, input, output)
  local p = (config.pricing or {})[model] or PRICES[model]
  if not p then return 0 end
  return (input * (p[1] or p.input or 0) + output * (p[2] or p.output or 0)) / 1e6
end

local function check_budget(config)
  local budget = config.budget
  if not budget then return end
  local tokens, cost = af.usage.get()
  if budget.tokens and tokens >= budget.tokens then
    fail("AGENT_BUDGET", string.format("token budget of %d exceeded (%d used)", budget.tokens, tokens))
  end
  if budget.cost and cost >= budget.cost then
    fail("AGENT_BUDGET", string.format("cost budget of $%.4f exceeded ($%.4f used)", budget.cost, cost))
  end
end

local function call_model(model, messages, tools, config, ctx, state)
  local provider, name = provider_of(model)
  local p = (config.providers or {})[provider] or {}
  local primary = model == state.models[1]
  local base = resolve(p.base_url or (primary and config.base_url), ctx) or
               af.setting(PROVIDERS[provider].url_secret) or PROVIDERS[provider].base_url
  local key = resolve(p.api_key or (primary and config.api_key), ctx) or
              secret_or_nil(PROVIDERS[provider].key)
  if key == nil then
    fail("AGENT_CONFIG", "no API key for " .. provider .. " (set api_key = af.secret \"" ..
         PROVIDERS[provider].key .. "\")")
  end
  local fmt = FORMATS[provider]
  local opts = { api_key = key, schema = state.schema, stream = config.stream,
                 temperature = config.temperature, max_tokens = config.max_tokens }
  local path, headers, body = fmt.request(name, messages, tools, opts)
  local started = af.now()
  local ok, res = pcall(af.http.post, { url = base:gsub("/+$", "") .. path, headers = headers,
                             json = body, fail_on_status = false, timeout = config.timeout or "120s",
                             stream = config.stream and "sse" or nil })
  if not ok then -- the transfer itself failed
    local msg = type(res) == "table" and res.message or tostring(res)
    if config.stream and (msg:find("transfer closed", 1, true) or msg:find("partial", 1, true)) then
      fail("LLM_MALFORMED", model .. ": stream ended early (connection closed)", true)
    end
    fail("LLM_UNAVAILABLE", model .. ": " .. msg, true)
  end
  local latency = af.now() - started
  if res.status >= 300 then http_error(res, model) end
  local parsed, why
  if config.stream then
    parsed, why = fmt.parse_stream(res.events or {})
  else
    parsed = fmt.parse(res.body)
    why = "malformed response"
  end
  if not parsed then fail("LLM_MALFORMED", model .. ": " .. why, true) end
  local cost = price(config, model, parsed.input_tokens, parsed.output_tokens)
  af.usage.add(parsed.input_tokens + parsed.output_tokens, cost)
  state.usage.prompt_tokens = state.usage.prompt_tokens + parsed.input_tokens
  state.usage.completion_tokens = state.usage.completion_tokens + parsed.output_tokens
  state.usage.cost_usd = state.usage.cost_usd + cost
  state.usage.calls = state.usage.calls + 1
  af.trace("llm", { model = model, messages = #messages, stream = config.stream or false,
                    text = parsed.text, tool_calls = parsed.tool_calls and #parsed.tool_calls or 0,
                    input_tokens = parsed.input_tokens, output_tokens = parsed.output_tokens,
                    cost_usd = cost, latency_ms = latency,
                    first_event_ms = res.first_event_ms })
  return parsed
end

local function call_llm(messages, tools, config, ctx, state)
  check_budget(config)
  local last
  for _, model in ipairs(state.models) do
    local ok, res = pcall(call_model, model, messages, tools, config, ctx, state)
    if ok then
      state.model = model
      return res
    end
    last = res
    local code = type(res) == "table" and res.code or ""
    if code == "AGENT_CONFIG" or code == "AGENT_BUDGET" then error(res, 0) end
    af.log("model " .. model .. " failed: " .. (type(res) == "table" and res.message or tostring(res)))
  end
  error(last, 0)
end

-- ---------------------------------------------------------------------------------------------
-- tools

local function tool_result_text(v)
  if type(v) == "string" then return v end
  if v == nil then return "null" end
  local ok, text = pcall(af.json.encode, v)
  return ok and text or tostring(v)
end

local function run_tool(tool, args, ctx)
  if tool.fn then return tool.fn(args, ctx) end
  local tctx = setmetatable({ args = args }, { __index = ctx })
  if tool.node then return af.run(tool.node, tctx) end
  if tool.workflow then return af.run(af.call(tool.workflow) { input = args }, tctx) end
  error("tool '" .. tool.name .. "' has nothing to run (fn, node or workflow)")
end

local function call_tools(calls, by_name, ctx, state)
  local fns, base = {}, #state.tool_calls
  for i, c in ipairs(calls) do
    fns[i] = function()
      local started = af.now()
      local tool, result, err = by_name[c.name], nil, nil
      if not tool then
        err = "unknown tool '" .. tostring(c.name) .. "'"
      elseif type(c.arguments) ~= "table" then
        err = "invalid arguments: not a JSON object: " .. tostring(c.raw_arguments)
      else
        local ok, why = af.schema.validate(tool.parameters or { type = "object" },
                                           af.object(copy(c.arguments)))
        if not ok then
          err = "invalid arguments: " .. why
        else
          local ran, value = pcall(run_tool, tool, c.arguments, ctx)
          if ran then
            result = value
          else
            err = type(value) == "table" and (value.message or tostring(value)) or tostring(value)
          end
        end
      end
      af.trace("tool", { name = c.name, arguments = type(c.arguments) == "table" and c.arguments or af.null,
                         result = result, error = err, latency_ms = af.now() - started })
      state.tool_calls[base + i] = { name = c.name, arguments = c.arguments, result = result,
                                     error = err }
      return { role = "tool", tool_call_id = c.id, name = c.name,
               content = err and ("error: " .. err) or tool_result_text(result) }
    end
  end
  return af.gather(fns, 8)
end

-- ---------------------------------------------------------------------------------------------
-- memory

local function trim(messages, max)
  local start = #messages - max + 1
  if start < 1 then start = 1 end
  -- never start inside a tool exchange: begin at a user message
  while start <= #messages and messages[start].role ~= "user" do start = start + 1 end
  if start > #messages then -- the limit cut into the last exchange: keep that exchange whole
    start = #messages
    while start > 1 and messages[start].role ~= "user" do start = start - 1 end
  end
  local out = af.array()
  for i = start, #messages do out[#out + 1] = messages[i] end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- the node

local function execute(config, ctx)
  config = config or {}
  local state = { usage = { prompt_tokens = 0, completion_tokens = 0, cost_usd = 0, calls = 0 },
                  tool_calls = af.array(), models = { resolve(config.model, ctx) } }
  if type(state.models[1]) ~= "string" then
    fail("AGENT_CONFIG", "'model' (provider:model) is required")
  end
  for _, m in ipairs(config.fallback or {}) do state.models[#state.models + 1] = m end
  state.schema = output_schema(config)

  local tools, by_name = {}, {}
  for i, t in ipairs(config.tools or {}) do
    if type(t) ~= "table" or type(t.name) ~= "string" then
      fail("AGENT_CONFIG", "tool " .. i .. ": expected af.tool { name =, ... }")
    end
    tools[i], by_name[t.name] = t, t
  end

  local system = resolve(config.system, ctx)
  if state.schema then
    system = (system and system .. "\n\n" or "") ..
      "Reply with only a JSON object that matches this JSON Schema:\n" ..
      af.json.encode(state.schema)
  end
  local messages = {}
  if system then messages[1] = { role = "system", content = system } end
  local memory_key, history = nil, {}
  if config.memory then
    memory_key = "agent:memory:" .. tostring(resolve(config.memory.key, ctx))
    history = af.state.get(memory_key) or {}
    for _, m in ipairs(history) do messages[#messages + 1] = m end
  end
  local turn_start = #messages + 1
  local given = resolve(config.messages, ctx)
  if given then
    for _, m in ipairs(given) do messages[#messages + 1] = m end
  else
    local prompt = resolve(config.prompt, ctx)
    if type(prompt) ~= "string" then fail("AGENT_CONFIG", "'prompt' must be a string or a function returning one") end
    messages[#messages + 1] = { role = "user", content = prompt }
  end

  local max_iterations = config.max_iterations or 8
  local answer
  for iteration = 1, max_iterations + 1 do
    if iteration > max_iterations then
      fail("AGENT_ITERATIONS", "no final answer after " .. max_iterations .. " iterations")
    end
    local res = call_llm(messages, tools, config, ctx, state)
    if res.tool_calls and #res.tool_calls > 0 then
      messages[#messages + 1] = { role = "assistant", content = res.text, tool_calls = res.tool_calls }
      for _, m in ipairs(call_tools(res.tool_calls, by_name, ctx, state)) do
        messages[#messages + 1] = m
      end
    else
      answer = res.text or ""
      messages[#messages + 1] = { role = "assistant", content = answer }
      state.iterations = iteration
      break
    end
  end

  local output
  if state.schema then
    local value = decode_answer(answer)
    local ok, why = false, "the answer is not JSON"
    if type(value) == "table" then ok, why = af.schema.validate(state.schema, value) end
    if not ok then -- ask once to repair
      messages[#messages + 1] = { role = "user", content = "That answer is not valid (" .. why ..
        "). Reply again with only the JSON object that matches the schema." }
      local res = call_llm(messages, tools, config, ctx, state) -- the history may hold tool turns
      answer = res.text or ""
      messages[#messages + 1] = { role = "assistant", content = answer }
      value = decode_answer(answer)
      ok, why = false, "the answer is not JSON"
      if type(value) == "table" then ok, why = af.schema.validate(state.schema, value) end
      if not ok then fail("AGENT_OUTPUT", "structured output did not validate after one repair: " .. why) end
    end
    output = value
  end

  if memory_key then
    local keep = {}
    for _, m in ipairs(history) do keep[#keep + 1] = m end
    for i = turn_start, #messages do keep[#keep + 1] = messages[i] end
    af.state.set(memory_key, trim(keep, (config.memory.max_messages or 40)))
  end

  local usage = state.usage
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
  return { text = answer, output = output, model = state.model, usage = usage,
           tool_calls = state.tool_calls, iterations = state.iterations }
end

return {
  name = "agent",
  version = "0.1.0",
  description = "LLM agents: OpenAI-compatible and Anthropic models, tools, memory, structured output",
  nodes = {
    { name = "agent", description = "Runs an LLM with tools until it answers", raw_config = true,
      schema = { type = "object", required = { "model" } }, execute = execute },
  },
}
