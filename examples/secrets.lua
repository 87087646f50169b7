-- secrets.lua -- calling an API with a token kept out of the script. af.secret "NAME" is a
-- reference; its value is read from the environment (variable NAME) only when a step runs, and
-- every place the value could show -- the result, the --json record, the progress log, error
-- messages -- prints *** instead.
--
-- Shows: af.secret in a node's config (resolved at run time), af.secret(...):get() inside a
-- transform, masking of outputs and of af.log lines, a webhook trigger with an HMAC secret, and
-- on_error routing: without the variable the step fails with SECRET_MISSING and a handler step
-- explains what to set, so the workflow still succeeds.
--
-- Run:  DEMO_API_TOKEN=tok-3f9a7c1e agentflow run examples/secrets.lua   (token masked: ***)
--       agentflow run examples/secrets.lua                                (hint: set the variable)
local af = require "agentflow"

local wf = af.workflow "secrets" {
  description = "Call an API with a bearer token from the environment",
  vars = { api = "https://api.example.com/v1/tickets" },
  output = function(ctx)
    local s = ctx.steps
    if s.missing_token then return s.missing_token end
    return { authorized = true, request = s.build_request, audit = s.audit }
  end,
}
wf:on(af.webhook {
  path = "/hooks/api-events",
  hmac = { secret = af.secret "DEMO_WEBHOOK_SECRET", header = "X-Hub-Signature-256" },
})

-- the config holds a reference; core.echo outputs the resolved config, masked where it shows
local request = wf:step("build_request", af.node "core.echo" {
  method = "GET",
  url = function(ctx) return ctx.vars.api end,
  headers = { Authorization = af.secret "DEMO_API_TOKEN" },
}, { on_error = "missing_token" })

-- code that reads the value; even a careless log line shows *** instead of the token
wf:step("audit", af.transform(function(ctx)
  local token = af.secret("DEMO_API_TOKEN"):get()
  af.log("calling " .. ctx.vars.api .. " with token " .. token)
  return { token_length = #token, logged = "token " .. token }
end), { after = request })

-- runs only when build_request fails, e.g. SECRET_MISSING when DEMO_API_TOKEN is not set
wf:step("missing_token", af.transform(function(ctx)
  return { authorized = false, code = ctx.error.code,
           hint = "set DEMO_API_TOKEN in the environment of agentflow" }
end))

return wf
