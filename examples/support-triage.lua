-- support-triage.lua -- the main example: triage of one support ticket. A Lua heuristic
-- classifies it (an LLM node takes its place later), a switch routes it to a team, a condition
-- pages on-call for urgent tickets, a parallel group enriches it meanwhile, and a join builds
-- the summary that is the workflow's result.
--
-- Shows: workflow metadata (description, version, tags, retry/timeout defaults, vars,
-- sample_input, output), a webhook trigger with an HMAC secret reference and a manual trigger,
-- explicit dependencies, two steps running concurrently after the same step (classify and
-- enrich), switch with cases and a default, condition yes/no, a parallel group, join "any" and
-- join "all", af.node "core.echo" by name, af.log.
--
-- Run:  agentflow run examples/support-triage.lua                (the sample ticket; `make run`)
--       agentflow run examples/support-triage.lua --input @ticket.json
--       agentflow run examples/support-triage.lua --json          (the whole execution record)
--       agentflow check examples/support-triage.lua --format dot | dot -Tsvg > triage.svg
-- The webhook trigger is only declared here (`agentflow run` starts the workflow by hand); its
-- secret SUPPORT_WEBHOOK_SECRET is read when a server verifies a delivery, so a bare run does not
-- need it.
local af = require "agentflow"

local wf = af.workflow "support-triage" {
  description = "Classify, route and escalate an incoming support ticket",
  version = "1.0.0",
  tags = { "support", "example" },
  retry = { attempts = 2, backoff = "exponential", initial = "10ms", max = "1s" },
  timeout = "1m",
  step_timeout = "10s",
  vars = {
    -- words that vote for a category; the category with the most votes wins
    keywords = {
      billing = { "invoice", "refund", "charged", "charge", "billing", "payment", "receipt",
                  "subscription", "price" },
      bug = { "bug", "error", "crash", "crashes", "broken", "exception", "wrong", "fails" },
      outage = { "down", "outage", "unavailable", "502", "503", "timeout", "timeouts",
                 "unreachable", "all" },
    },
    negative = { "angry", "unacceptable", "urgent", "asap", "losing", "terrible", "worst",
                 "immediately", "!" },
    sla_hours = { urgent = 1, high = 4, normal = 24, low = 72 },
    teams = {
      billing = { team = "billing", queue = "billing-l1" },
      bug = { team = "engineering", queue = "triage-bugs" },
      outage = { team = "sre", queue = "incidents" },
      general = { team = "support", queue = "general" },
    },
    -- a stand-in for the CRM a real deployment would call
    customers = {
      ["cus-77"] = { name = "Acme Corp", tier = "enterprise", csm = "dana" },
      ["cus-12"] = { name = "Jo Smith", tier = "free" },
    },
    history = { ["cus-77"] = { "T-0981", "T-1013" } },
  },
  sample_input = {
    ticket = {
      id = "T-1042",
      customer_id = "cus-77",
      subject = "Checkout is down",
      body = "Since 10:00 all payments fail with 502 errors. This is urgent, we are losing "
          .. "orders!",
    },
  },
  output = function(ctx) return ctx.steps.summary end,
}

-- Deliveries are verified with an HMAC-SHA256 of the body keyed by the secret.
wf:on(af.webhook {
  path = "/hooks/support/tickets",
  method = "POST",
  hmac = { secret = af.secret "SUPPORT_WEBHOOK_SECRET", header = "X-Signature-256",
           algorithm = "sha256" },
})
wf:on(af.manual { description = "Re-triage a ticket by hand" })

local function words_of(text)
  local words = {}
  for w in text:lower():gmatch("[%w]+") do words[#words + 1] = w end
  if text:find("!", 1, true) then words[#words + 1] = "!" end
  return words
end

local normalize = wf:step("normalize", af.transform(function(ctx)
  local t = ctx.trigger.ticket
  if type(t) ~= "table" or type(t.id) ~= "string" then
    error(af.fatal("input must hold a ticket with an id", "BAD_INPUT"))
  end
  local text = (t.subject or "") .. ". " .. (t.body or "")
  return { id = t.id, customer_id = t.customer_id, subject = t.subject or "",
           words = af.array(words_of(text)) }
end))

-- classify and enrich both depend on normalize only: they run at the same time
local classify = wf:step("classify", af.transform(function(ctx)
  local n, v = ctx.steps.normalize, ctx.vars
  local seen = {}
  for _, w in ipairs(n.words) do seen[w] = (seen[w] or 0) + 1 end
  local best, best_votes = "general", 0
  for _, category in ipairs({ "outage", "bug", "billing" }) do -- ties go to the first
    local votes = 0
    for _, w in ipairs(v.keywords[category]) do votes = votes + (seen[w] or 0) end
    if votes > best_votes then best, best_votes = category, votes end
  end
  local negative = 0
  for _, w in ipairs(v.negative) do negative = negative + (seen[w] or 0) end
  local priority = "normal"
  if best == "outage" and negative > 0 then priority = "urgent"
  elseif best == "outage" or negative >= 2 then priority = "high"
  elseif best == "general" and negative == 0 then priority = "low" end
  af.log(string.format("ticket %s: %s, priority %s (%d votes, %d negative)", n.id, best,
                       priority, best_votes, negative))
  return { category = best, priority = priority, votes = best_votes,
           sentiment = negative > 0 and "negative" or "neutral" }
end), { after = normalize })

local enrich = wf:step("enrich", af.parallel {
  account = function(ctx)
    local c = ctx.vars.customers[ctx.steps.normalize.customer_id]
    return c or { name = "unknown", tier = "free" }
  end,
  history = function(ctx)
    af.sleep(5) -- a lookup that takes a moment
    local h = ctx.vars.history[ctx.steps.normalize.customer_id]
    return { previous_tickets = h and #h or 0 }
  end,
}, { after = normalize })

local route = wf:step("route", af.switch(function(ctx) return ctx.steps.classify.category end,
                                         { "billing", "bug", "outage" }),
                      { after = classify })

wf:step("billing", af.node "core.echo" {
  team = "billing", queue = "billing-l1",
  action = function(ctx)
    for _, w in ipairs(ctx.steps.normalize.words) do
      if w == "refund" then return "review refund" end
    end
    return "answer invoice question"
  end,
}, { after = route:case "billing" })

wf:step("engineering", af.transform(function(ctx)
  local n = ctx.steps.normalize
  return { team = "engineering", queue = "triage-bugs", action = "file issue",
           issue = { title = "[" .. n.id .. "] " .. n.subject, labels = af.array { "customer" } } }
end), { after = route:case "bug" })

wf:step("incident", af.transform(function(ctx)
  return { team = "sre", queue = "incidents", action = "open incident",
           severity = ctx.steps.classify.priority == "urgent" and "SEV1" or "SEV2" }
end), { after = route:case "outage" })

wf:step("general", af.node "core.echo" { team = "support", queue = "general",
                                          action = "reply from knowledge base" },
        { after = route.default })

-- join "any" (the default): exactly one of the four team steps runs; the others are skipped
local assign = wf:step("assign", af.transform(function(ctx)
  local s = ctx.steps
  local pick = s.billing or s.engineering or s.incident or s.general
  return { team = pick.team, queue = pick.queue, action = pick.action,
           sla_hours = ctx.vars.sla_hours[ctx.steps.classify.priority] }
end), { after = { "billing", "engineering", "incident", "general" } })

local urgent = wf:step("urgent", af.condition(function(ctx)
  return ctx.steps.classify.priority == "urgent"
end), { after = classify })

wf:step("page_oncall", af.node "core.echo" {
  channel = "#oncall-sre",
  message = function(ctx)
    return "URGENT " .. ctx.steps.normalize.id .. ": " .. ctx.steps.normalize.subject
  end,
}, { after = urgent.yes })

wf:step("acknowledge", af.node "core.echo" {
  channel = "email", template = "auto-ack",
  message = function(ctx) return "We received " .. ctx.steps.normalize.id end,
}, { after = urgent.no })

local notify = wf:step("notify", af.transform(function(ctx)
  local sent = ctx.steps.page_oncall or ctx.steps.acknowledge
  return { paged = ctx.steps.page_oncall ~= nil, channel = sent.channel }
end), { after = { "page_oncall", "acknowledge" } })

-- join "all": waits for the assignment, the enrichment and the notification
wf:step("summary", af.transform(function(ctx)
  local s = ctx.steps
  return {
    ticket = s.normalize.id,
    category = s.classify.category,
    priority = s.classify.priority,
    sentiment = s.classify.sentiment,
    team = s.assign.team,
    queue = s.assign.queue,
    action = s.assign.action,
    sla_hours = s.assign.sla_hours,
    paged = s.notify.paged,
    notified_via = s.notify.channel,
    customer = { name = s.enrich.account.name, tier = s.enrich.account.tier,
                 previous_tickets = s.enrich.history.previous_tickets },
  }
end), { after = { assign, enrich, notify }, join = "all" })

return wf
