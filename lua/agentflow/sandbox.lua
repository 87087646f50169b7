-- agentflow.sandbox -- the environment workflow scripts run in: the safe parts of the standard
-- library and `require "agentflow"`, nothing that reaches files, processes, bytecode or the VM.
local host = require "agentflow.host"
local af = require "agentflow"

local S = {}

local function copy(t, except)
  local out = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then out[k] = v end
  end
  return out
end

-- A budget error must not be swallowed by the script's own pcall.
local function pass(ok, ...)
  if not ok and host.killed() then error((...), 0) end
  return ok, ...
end

local SAFE = { "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring",
               "type", "unpack", "rawequal", "rawget", "rawset", "setmetatable", "getmetatable" }

function S.new()
  local env = {}
  for _, k in ipairs(SAFE) do env[k] = _G[k] end
  env.pcall = function(f, ...) return pass(pcall(f, ...)) end
  env.xpcall = function(f, h, ...) return pass(xpcall(f, h, ...)) end
  env.string = copy(string, { dump = true })
  env.table = copy(table)
  env.math = copy(math)
  env.bit = bit and copy(bit)
  env.os = { time = os.time, clock = os.clock, date = os.date }
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    host.log(table.concat(parts, "\t"))
  end
  env.require = function(name)
    if name == "agentflow" then return af end
    error(string.format("module '%s' is not available to workflows (only \"agentflow\")",
                        tostring(name)), 2)
  end
  -- text chunks only, always inside this environment
  local function load_text(chunk, name)
    if type(chunk) ~= "string" then
      return nil, "load: only source text is accepted in workflows"
    end
    if chunk:byte(1) == 27 then return nil, "load: binary chunks are not allowed" end
    local f, err = loadstring(chunk, name or "=(load)")
    if not f then return nil, err end
    return setfenv(f, env)
  end
  env.load, env.loadstring = load_text, load_text
  env._G = env
  return env
end

-- Hardening of the shared standard library, done once per VM before any workflow code runs.
function S.harden()
  string.dump = nil
  getmetatable("").__metatable = false
end

return S
