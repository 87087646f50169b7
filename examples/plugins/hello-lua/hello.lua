-- hello.lua -- the smallest useful agentflow plugin in Lua: a node type that waits without
-- blocking (af.sleep yields its coroutine) and returns a greeting.
-- Install: copy this file into a plugin directory, or build with CMake against the SDK
-- (see CMakeLists.txt); run: agentflow run examples/plugins/hello-lua/workflow.lua --plugins DIR
local af = require "agentflow"

return {
  name = "hello-lua",
  version = "1.0.0",
  description = "Example Lua plugin: a greeting after a pause",
  nodes = {
    {
      name = "hello.lua_greet",
      description = "Greets someone by name, after `pause_ms`",
      schema = {
        type = "object",
        properties = { name = { type = "string" }, pause_ms = { type = "integer", minimum = 0 } },
      },
      execute = function(config, ctx)
        af.sleep(config.pause_ms or 0)
        af.log("greeting " .. (config.name or "world"))
        return { greeting = "Hello, " .. (config.name or "world") .. "!",
                 step = ctx.execution.attempt }
      end,
    },
  },
}
