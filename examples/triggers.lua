-- triggers.lua -- one workflow, five ways to start it. Every trigger kind is declared; a switch
-- looks at what started the run and normalises the payload.
--
-- Shows: af.webhook (path, method, HMAC verification with a secret reference), af.schedule
-- (cron + timezone, missed runs, overlap), af.event (type pattern + where + filter), af.poll
-- (an HTTP request, items picked by a function, new ones by key), af.manual, each trigger's
-- `input` saying where the run came from, and a switch with cases and a default.
-- `agentflow check` lists the triggers; `agentflow serve` runs them once the workflow is stored
-- (POST /api/workflows). `agentflow run` starts the workflow by hand with sample_input or --input.
--
-- Run:  agentflow run examples/triggers.lua                                   (a webhook payload)
--       agentflow run examples/triggers.lua --input '{"source": "schedule"}'
--       agentflow check examples/triggers.lua                                 (the triggers)
local af = require "agentflow"

local wf = af.workflow "triggers" {
  description = "Sync a shared inbox: on delivery, on a timer, on events, by polling or by hand",
  sample_input = {
    source = "webhook",
    body = { messages = { { from = "ana@example.com", subject = "Invoice #88" } } },
  },
  output = function(ctx) return ctx.steps.sync end,
}

-- a mail provider POSTs new messages; the body's HMAC-SHA256 must match the X-Signature header
wf:on(af.webhook {
  path = "/hooks/inbox",
  method = "POST",
  hmac = { secret = af.secret "INBOX_WEBHOOK_SECRET", header = "X-Signature",
           algorithm = "sha256" },
  input = function(req) return { source = "webhook", body = req.body } end,
})
-- a full sync every weekday at 07:00 Lisbon time; runs missed while down are run once, and a
-- sync still running when the next is due makes that one wait
wf:on(af.schedule { cron = "0 7 * * 1-5", timezone = "Europe/Lisbon", missed = "run_once",
                    overlap = "queue", input = { source = "schedule" } })
-- internal events, e.g. published by another workflow with af.emit("inbox.message.new", {...})
wf:on(af.event {
  type = "inbox.message.*",
  where = { folder = { ne = "spam" } },
  filter = function(event) return event.data.subject ~= nil end,
  input = function(event) return { source = "event", data = event.data } end,
})
-- ask the mail API every 5 minutes; each message not seen before starts a run
wf:on(af.poll {
  interval = "5m", jitter = "30s",
  request = { url = "https://mail.example.com/api/inbox?unread=1" },
  fn = function(res) return res.body.messages end,
  key = "id",
  input = function(message) return { source = "poll", items = { message } } end,
})
wf:on(af.manual { description = "Sync now" })

local source = wf:step("source", af.switch(function(ctx) return ctx.trigger.source end,
                                           { "webhook", "schedule", "event", "poll" }))

wf:step("from_webhook", af.transform(function(ctx)
  return { messages = ctx.trigger.body.messages, mode = "push" }
end), { after = source:case "webhook" })

wf:step("from_schedule", af.node "core.echo" { messages = af.array(), mode = "full sync" },
        { after = source:case "schedule" })

wf:step("from_event", af.transform(function(ctx)
  return { messages = af.array { ctx.trigger.data }, mode = "event" }
end), { after = source:case "event" })

wf:step("from_poll", af.transform(function(ctx)
  return { messages = ctx.trigger.items, mode = "poll" }
end), { after = source:case "poll" })

wf:step("by_hand", af.node "core.echo" { messages = af.array(), mode = "manual" },
        { after = source.default })

wf:step("sync", af.transform(function(ctx)
  local s = ctx.steps
  local batch = s.from_webhook or s.from_schedule or s.from_event or s.from_poll or s.by_hand
  local subjects = af.array()
  for i, m in ipairs(batch.messages) do subjects[i] = m.subject end
  return { started_by = s.source, mode = batch.mode, count = #batch.messages,
           subjects = subjects }
end), { after = { "from_webhook", "from_schedule", "from_event", "from_poll", "by_hand" } })

return wf
