-- agentflow.runtime -- runs the Lua side of steps inside an execution's VM: transforms,
-- conditions, switches, foreach, loops, parallel groups, and config resolution for C node types.
-- The host calls these functions in a step's coroutine; waiting is done through agentflow.host.
local af = require "agentflow"
local host = require "agentflow.host"

local type, pairs, ipairs, error, setmetatable, getmetatable, tostring, next =
  type, pairs, ipairs, error, setmetatable, getmetatable, tostring, next
local spawn, join, cancel, exec_node = host.spawn, host.join, host.cancel, host.exec_node

local R = {}
local LUA_TYPES = { lua = true, condition = true, switch = true, foreach = true, loop = true,
                    parallel = true }
R.LUA_TYPES = LUA_TYPES

local ARRAY_MT = host.array_mt

-- Replaces functions of ctx by their values and secret references by the secrets, deeply.
local function resolve(v, ctx, depth)
  local t = type(v)
  if t == "function" then return v(ctx) end
  if t ~= "table" then return v end
  if af.is_secret(v) then return host.secret(v.name) end
  if depth > 128 then error(af.fatal("config nested deeper than 128 levels", "CONFIG"), 0) end
  local out = {}
  for k, x in pairs(v) do out[k] = resolve(x, ctx, depth + 1) end
  local mt = getmetatable(v)
  if mt then setmetatable(out, mt) end
  return out
end
R.resolve = function(v, ctx) return resolve(v, ctx, 0) end

-- Shows a config for people and for `check`: functions and secrets become placeholders.
local function describe(v, depth)
  local t = type(v)
  if t == "function" then return "<function>" end
  if t ~= "table" then return v end
  if af.is_secret(v) then return "<secret " .. v.name .. ">" end
  if af.is_node(v) then return "<node " .. tostring(v.type) .. ">" end
  if depth > 32 then return "<...>" end
  local out = {}
  for k, x in pairs(v) do out[k] = describe(x, depth + 1) end
  local mt = getmetatable(v)
  if mt == ARRAY_MT then setmetatable(out, mt) end
  return out
end
R.describe = function(v) return describe(v, 0) end

-- Does a config hold anything that must be worked out at run time?
local function dynamic(v, depth)
  local t = type(v)
  if t == "function" then return true end
  if t ~= "table" or depth > 64 then return false end
  if af.is_secret(v) then return true end
  for _, x in pairs(v) do
    if dynamic(x, depth + 1) then return true end
  end
  return false
end
R.dynamic = function(v) return dynamic(v, 0) end

local run -- forward

-- Runs fn(i) for i = 1..n with at most `limit` running at once; returns results in order.
-- A nil result keeps its place in the list as null.
local function run_bounded(n, limit, fn)
  local results = setmetatable({}, ARRAY_MT)
  if limit <= 1 or n <= 1 then
    for i = 1, n do
      local r = fn(i)
      if r == nil then r = af.null end
      results[i] = r
    end
    return results
  end
  local next_i = 0
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      if i > n then return end
      local r = fn(i)
      if r == nil then r = af.null end
      results[i] = r
    end
  end
  local tasks = {}
  for w = 1, (limit < n and limit or n) do tasks[w] = spawn(worker) end
  for w = 1, #tasks do
    local ok, err = join(tasks[w]) -- returns early with any worker's failure
    if not ok then
      for k = 1, #tasks do cancel(tasks[k]) end
      error(err, 0)
    end
  end
  return results
end

-- A node body sees the item as ctx.item and ctx.index.
local function run_body(body, ctx, item, index, ...)
  if type(body) == "function" then return body(item, index, ...) end
  if index ~= nil then
    ctx = setmetatable({ item = item, index = index }, { __index = ctx })
  end
  return run(body, ctx)
end

function R.gather(fns, limit)
  return run_bounded(#fns, limit or #fns, function(i) return fns[i]() end)
end

local HANDLERS = {}

function HANDLERS.lua(node, ctx) return node.fn(ctx) end

function HANDLERS.condition(node, ctx)
  local v = node.fn(ctx)
  if v and v ~= af.null then return true, "yes" end
  return false, "no"
end

function HANDLERS.switch(node, ctx)
  local case = node.fn(ctx)
  for _, p in ipairs(node.ports) do
    if p == case and p ~= "default" then return case, case end
  end
  return "default", "default"
end

function HANDLERS.foreach(node, ctx)
  local items = node.items
  if type(items) == "function" then items = items(ctx) end
  if type(items) ~= "table" then
    error(af.fatal("foreach: items must be a list, got " .. type(items)), 0)
  end
  local body = node.body
  return run_bounded(#items, node.concurrency, function(i)
    return run_body(body, ctx, items[i], i, ctx)
  end)
end

function HANDLERS.loop(node, ctx)
  local state = node.init
  if type(state) == "function" then state = state(ctx) end
  local i = 0
  while node.condition(state, ctx) do
    i = i + 1
    if i > node.max then
      error(af.fatal("loop: still running after its bound of " .. node.max .. " iterations",
                     "LOOP_BOUND"), 0)
    end
    state = node.body(state, i, ctx)
  end
  return state
end

function HANDLERS.parallel(node, ctx)
  local names = {}
  for name in pairs(node.branches) do names[#names + 1] = name end
  table.sort(names)
  local results = run_bounded(#names, #names, function(i)
    local branch = node.branches[names[i]]
    if type(branch) == "function" then return branch(ctx) end
    return run(branch, ctx)
  end)
  local out = af.object()
  for i, name in ipairs(names) do out[name] = results[i] end
  return out
end

-- Runs any node: Lua kinds here, others through the host's node registry (yields).
run = function(node, ctx)
  local h = HANDLERS[node.type]
  if h then return h(node, ctx) end
  local raw = host.raw_plugin(node.type) -- takes its config as declared: run it right here
  if raw then return R.run_plugin_node(raw, node.type, node.config, ctx) end
  local ok, out = exec_node(node.type, resolve(node.config, ctx, 0), node.where)
  if not ok then error(out, 0) end
  return out
end
R.run = run

--- A Lua plugin's node type: execute(config, ctx) -> output[, port].
function R.run_plugin_node(plugin, name, config, ctx)
  return require("agentflow.plugin").run_node(plugin, name, config, ctx)
end

--- A Lua plugin's trigger type: start(config, fire), in the trigger's own VM.
function R.run_plugin_trigger(plugin, name, config, fire)
  return require("agentflow.plugin").start_trigger(plugin, name, config, fire)
end

--- The ctx a step attempt sees.
function R.ctx(state, attempt, err)
  local e = state.execution
  return { trigger = state.trigger, steps = state.steps, vars = state.vars, error = err,
           execution = { id = e.id, workflow = e.workflow, started_at = e.started_at,
                         attempt = attempt } }
end


-- A plain description of a workflow, for the host to compile into a graph (JSON-convertible).
function R.describe_workflow(wf)
  local o = wf.options
  local d = { name = wf.name, where = wf.where, description = o.description,
              retry = o.retry, timeout = o.timeout, step_timeout = o.step_timeout,
              vars = o.vars, sample_input = o.sample_input, limits = o.limits,
              concurrency = o.concurrency, triggers = af.array(), steps = af.array() }
  for i, t in ipairs(wf.triggers) do
    d.triggers[i] = { type = t.type, where = t.where, config = describe(t.config, 0) }
  end
  for i, s in ipairs(wf.steps) do
    local n = s.node
    local config
    if LUA_TYPES[n.type] then
      config = describe({ fn = n.fn, items = n.items, body = n.body, concurrency = n.concurrency,
                          condition = n.condition, init = n.init, max = n.max,
                          branches = n.branches }, 0)
    elseif dynamic(n.config, 0) then
      config = describe(n.config, 0)
    else
      config = n.config or {} -- static: this is the config the node gets, converted whole
    end
    local after = af.array()
    for k, a in ipairs(s.after) do after[k] = { step = a.step, port = a.port } end
    d.steps[i] = { name = s.name, type = n.type, where = s.where, node_where = n.where,
                   after = after, ports = n.ports and af.array(n.ports) or nil,
                   retry = rawget(s, "retry"), timeout = rawget(s, "timeout"),
                   on_error = rawget(s, "on_error"), join = rawget(s, "join"),
                   config = af.object(config), lua = LUA_TYPES[n.type] or false,
                   dynamic = not LUA_TYPES[n.type] and dynamic(n.config, 0) or false }
  end
  return d
end

return R
