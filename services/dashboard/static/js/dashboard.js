// The dashboard's pages: each asks the JSON API (as the signed-in person) and draws what it answers.
// No inline script anywhere (the Content-Security-Policy forbids it); every control has a label.
"use strict";

const body = document.body;
const csrf = body.dataset.csrf;
const role = body.dataset.role;
const content = () => document.getElementById("content");
const query = () => new URLSearchParams(window.location.search);
const thisMonth = () => new Date().toISOString().slice(0, 7);

function problem(text) {
  const p = document.getElementById("problem");
  p.textContent = text || "";
  p.hidden = !text;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers = { ...init.headers, "Content-Type": "application/json", "X-CSRF-Token": csrf };
  }
  const response = await fetch(path, init);
  if (response.status === 401) { window.location.assign("/sign-in"); throw new Error("signed out"); }
  const answer = await response.json();
  if (!response.ok) {
    const fields = (answer.error.fields || []).map((f) => `${f.field}: ${f.message}`).join("; ");
    throw new Error(answer.error.message + (fields ? ` (${fields})` : ""));
  }
  return answer;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

const human = (key) => key.replaceAll("_", " ");
const isPlain = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
const shown = (v) => (v === null || v === undefined ? "—" : typeof v === "number" ? v.toLocaleString() : String(v));

// A table whose columns sort when their heading is pressed (the rows of one page; paging is the server's).
function table(columns, rows, caption) {
  let order = null;
  const tbody = el("tbody");
  const draw = () => {
    tbody.replaceChildren(...rows.map((row) => el("tr", {}, columns.map((c) =>
      el("td", {}, c.cell ? c.cell(row) : shown(row[c.key]))))));
  };
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", "aria-sort": "none" },
    el("button", { type: "button", onclick: (event) => {
      order = order === c.key ? `-${c.key}` : c.key;
      const sign = order.startsWith("-") ? -1 : 1;
      rows.sort((a, b) => (a[c.key] > b[c.key] ? sign : a[c.key] < b[c.key] ? -sign : 0));
      for (const th of head.children) th.setAttribute("aria-sort", "none");
      event.currentTarget.parentElement.setAttribute("aria-sort", sign > 0 ? "ascending" : "descending");
      draw();
    } }, c.title || human(c.key)))));
  draw();
  return el("div", { class: "table-wrap" },
    el("table", {}, caption ? el("caption", {}, caption) : "", el("thead", {}, head), tbody));
}

// Any answer drawn as it comes: objects as labelled values, lists of records as tables.
function render(value, caption) {
  if (isPlain(value)) return document.createTextNode(shown(value));
  if (Array.isArray(value)) {
    if (!value.length) return el("span", { class: "muted" }, "none");
    if (value.every(isPlain)) return document.createTextNode(value.map(shown).join(", "));
    const keys = [];
    for (const row of value.slice(0, 20)) for (const [k, v] of Object.entries(row)) if (isPlain(v) && !keys.includes(k)) keys.push(k);
    return table(keys.slice(0, 10).map((key) => ({ key })), value, caption);
  }
  return el("dl", {}, Object.entries(value).flatMap(([k, v]) => [el("dt", {}, human(k)), el("dd", {}, render(v, human(k)))]));
}

function barChart(labels, series, label) {
  const canvas = el("canvas", { role: "img", "aria-label": label });
  const holder = el("div", { class: "chart" }, canvas);
  // Drawn once the holder is in the page, so the chart knows its size.
  requestAnimationFrame(() => new window.Chart(canvas, {
    type: "bar",
    data: { labels, datasets: series.map((s) => ({ label: s.label, data: s.data })) },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  }));
  return holder;
}

// A chart of the numeric fields of a list of records, one bar group per record.
function chartOf(rows, labelKey, label, only) {
  if (!rows || !rows.length) return el("p", { class: "muted" }, `${label}: nothing yet`);
  const numeric = Object.keys(rows[0]).filter((k) => typeof rows[0][k] === "number" && (!only || only.includes(k)));
  return barChart(rows.map((r) => r[labelKey]), numeric.map((k) => ({ label: human(k), data: rows.map((r) => r[k]) })), label);
}

function card(title, ...children) {
  return el("section", { class: "card", "aria-label": title }, el("h2", {}, title), ...children);
}

// A labelled form whose fields become the page's query; submitting reloads the page with them.
function queryForm(fields, label) {
  const current = query();
  const form = el("form", { class: "row", "aria-label": label, method: "get" },
    fields.map((f) => el("label", {}, f.label,
      f.options
        ? el("select", { name: f.name }, f.options.map((o) => el("option", { value: o, selected: (current.get(f.name) || f.value) === o }, human(o))))
        : el("input", { name: f.name, value: current.get(f.name) || f.value || "", placeholder: f.placeholder || "", inputmode: f.inputmode, maxlength: f.maxlength }))),
    el("button", { type: "submit" }, "Show"));
  return form;
}

function params(names, defaults = {}) {
  const q = query();
  const found = {};
  for (const name of names) {
    const v = q.get(name) || defaults[name];
    if (v) found[name] = v;
  }
  return new URLSearchParams(found);
}

// Redraws every few seconds while the page is open (live boards); the next draw is asked for only
// once the last one is done, so draws never overlap.
function every(seconds, draw) {
  let timer = null;
  const next = () => { timer = setTimeout(() => draw().catch((e) => problem(e.message)).finally(next), seconds * 1000); };
  next();
  window.addEventListener("pagehide", () => clearTimeout(timer));
}

const cardsByKind = {
  plan: (data) => [el("p", {}, `${data.date}: ${data.activities.length} activities`), render(data.activities, "Activities"), render(data.counts)],
  team_day: (data) => [chartOf(data.agents, "agent_id", "Planned and done per agent", ["planned", "done", "overdue"]), render(data.agents, "Agents"), render(data.totals || {})],
  segments: (data) => [chartOf(data.segments, "segment", `Customers per segment of ${data.scheme}`, ["count", "last_month", "same_month_last_year"])],
  sla: (data) => [chartOf(data.by_queue, "queue_id", "Open tickets per queue"), render(data.total)],
  health: (data) => [el("p", { class: data.all_up ? "up" : "down" }, data.all_up ? "Every process is up" : `Down: ${data.processes.filter((p) => !p.up).map((p) => p.process).join(", ") || "no beats heard yet"}`)],
};

const pages = {
  async summary() {
    const summary = await api("/api/summary");
    const cards = summary.cards.map((c) => card(c.title, ...(cardsByKind[c.kind] ? cardsByKind[c.kind](c.data) : [render(c.data)])));
    content().replaceChildren(el("p", {}, `${summary.user.display_name}, ${summary.date}`), ...cards);
  },

  async customers() {
    const results = el("div", { "aria-live": "polite" });
    const search = async (cursor) => {
      problem("");
      const q = new URLSearchParams({ limit: "20" });
      for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
      if (cursor) q.set("cursor", cursor);
      const id = q.get("customer_id");
      if (id) { window.location.assign(`/customers/${encodeURIComponent(id)}`); return; }
      try {
        const found = await api(`/api/customers?${q}`);
        results.replaceChildren(table([
          { key: "full_name", title: "Name", cell: (c) => el("a", { href: `/customers/${c.customer_id}` }, c.full_name || c.customer_id) },
          { key: "mobile_phone", title: "Mobile" }, { key: "city", title: "City" },
          { key: "owning_agent_id", title: "Agent" },
        ], found.customers, `${found.customers.length} found`),
        found.next_cursor ? el("button", { type: "button", onclick: () => search(found.next_cursor) }, "Next page") : "");
      } catch (e) { problem(e.message); }
    };
    const form = el("form", { class: "row", role: "search", "aria-label": "Find a customer", onsubmit: (event) => { event.preventDefault(); search(); } },
      el("label", {}, "Name", el("input", { name: "name", maxlength: 100, autocomplete: "off" })),
      el("label", {}, "Mobile", el("input", { name: "mobile_phone", inputmode: "tel" })),
      el("label", {}, "Last four of the national id", el("input", { name: "national_id_last4", maxlength: 4 })),
      el("label", {}, "Customer id", el("input", { name: "customer_id", maxlength: 36 })),
      el("button", { type: "submit" }, "Find"));
    content().replaceChildren(form, results);
  },

  async customer() {
    const id = body.dataset.customer;
    const view = await api(`/api/customers/${id}`);
    const profile = view.profile || {};
    const scores = view.scores || {};
    const segments = scores.segments || {};
    const entries = el("div");
    const more = async (cursor) => {
      const page = await api(`/api/customers/${id}/timeline?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      entries.append(table([{ key: "at", title: "When" }, { key: "event_type", title: "What" }, { key: "summary", title: "" }], page.entries || []),
        page.next_cursor ? el("button", { type: "button", onclick: (e) => { e.currentTarget.remove(); more(page.next_cursor); } }, "Older") : "");
    };
    const facts = {
      mobile: profile.mobile_phone, email: profile.email, born: profile.date_of_birth,
      "national id": profile.national_id_masked, agent: view.owning_agent_id, registered: view.registered_at,
      "value tier": segments.value_tier, lifecycle: segments.lifecycle, "value x churn": segments.value_churn,
      "risk score": scores.risk && scores.risk.score, "churn score": scores.churn && scores.churn.score,
      "annual premium": view.total_annual_premium, "open tickets": view.open_ticket_count,
      "churn follow-up": view.churn_follow_up ? view.churn_follow_up.subject || "planned" : null,
    };
    const lists = [["Policies", view.policies], ["Open opportunities", view.open_opportunities],
      ["Activities", view.activities], ["Tickets", view.tickets], ["Campaigns", view.campaigns]];
    content().replaceChildren(
      card(profile.full_name || id, render(facts)),
      ...lists.filter(([, rows]) => rows && rows.length).map(([title, rows]) => card(title, render(rows))),
      card("Timeline", entries),
      el("details", { class: "card" }, el("summary", {}, "Every field of the 360 view"), render(view)));
    await more();
  },

  async segments() {
    const q = params(["scheme", "month", "team_id", "agent_id"], { scheme: "value_tier" });
    const counts = await api(`/api/segments?${q}`);
    content().replaceChildren(
      queryForm([{ name: "scheme", label: "Scheme", options: ["value_tier", "lifecycle", "value_churn", "rfm_watch", "defined"], value: "value_tier" },
        { name: "month", label: "Month", placeholder: "YYYY-MM" }, { name: "team_id", label: "Team" }, { name: "agent_id", label: "Agent" }], "Which segments"),
      el("p", {}, `${counts.scheme}, ${counts.month || "no recompute yet"}: ${shown(counts.total)} customers`),
      chartOf(counts.segments, "segment", `Customers per segment of ${counts.scheme}: this month, the month before, a year before`, ["count", "last_month", "same_month_last_year"]),
      table([
        { key: "segment", title: "Segment", cell: (s) => el("a", { href: `/churn?${new URLSearchParams({ scheme: counts.scheme, segment: s.segment })}` }, human(s.segment)) },
        { key: "count", title: "Customers" }, { key: "last_month", title: "Month before" },
        { key: "same_month_last_year", title: "A year before" },
      ], counts.segments));
  },

  async churn() {
    const q = params(["scheme", "segment", "team_id", "agent_id", "cursor"], { scheme: "value_churn", segment: "high_value_at_risk" });
    q.set("limit", "50");
    const members = await api(`/api/segments/members?${q}`);
    const next = new URLSearchParams(q);
    if (members.next_cursor) next.set("cursor", members.next_cursor);
    content().replaceChildren(
      el("nav", { "aria-label": "Watch lists" },
        el("a", { href: "/churn?scheme=value_churn&segment=high_value_at_risk" }, "High value at risk"), " ",
        el("a", { href: "/churn?scheme=value_churn&segment=low_value_at_risk" }, "Low value at risk"), " ",
        el("a", { href: "/churn?scheme=rfm_watch&segment=watch" }, "RFM fell two quintiles")),
      render(members.members || members.customers || [], `${human(q.get("segment"))}: customers`),
      members.next_cursor ? el("a", { href: `/churn?${next}` }, "Next page") : "");
    for (const link of content().querySelectorAll("td")) {
      const text = link.textContent;
      if (/^[0-9a-f-]{36}$/.test(text)) link.replaceChildren(el("a", { href: `/customers/${text}` }, text));
    }
  },

  async sla() {
    const draw = async () => {
      const board = await api(`/api/sla-board?${params(["queue_id"])}`);
      content().replaceChildren(
        el("p", {}, `As of ${board.at} (refreshed every 5 seconds)`),
        chartOf(board.by_queue, "queue_id", "Open tickets per queue, by SLA state"),
        render(board.by_queue, "By queue"), render(board.by_priority, "By priority"), render(board.total));
    };
    await draw();
    every(5, draw);
  },

  async plans() {
    const q = query();
    const team = q.get("team_id");
    const form = queryForm([{ name: "agent_id", label: "Agent" }, { name: "team_id", label: "Team" }, { name: "date", label: "Date", placeholder: "YYYY-MM-DD" }], "Whose day");
    if (team) {
      const day = await api(`/api/plans/team?${params(["team_id", "date"])}`);
      content().replaceChildren(form, card(`Team ${team}, ${day.date}`, ...cardsByKind.team_day(day)));
    } else if (q.get("agent_id") || role === "agent") {
      const day = await api(`/api/plans/agent?${params(["agent_id", "date"])}`);
      content().replaceChildren(form, card(`${day.agent_id}, ${day.date}`, ...cardsByKind.plan(day)));
    } else {
      content().replaceChildren(form, el("p", {}, "Name an agent or a team."));
    }
  },

  async performance() {
    const q = query();
    const form = queryForm([{ name: "agent_id", label: "Agent" }, { name: "team_id", label: "Team" }, { name: "month", label: "Month", value: thisMonth() }], "Whose month");
    const which = q.get("team_id") ? "team" : q.get("agent_id") || body.dataset.agent ? "agent" : null;
    if (!which) { content().replaceChildren(form, el("p", {}, "Name an agent or a team.")); return; }
    const asked = which === "team" ? params(["team_id", "month"], { month: thisMonth() }) : params(["agent_id", "month"], { month: thisMonth(), agent_id: body.dataset.agent });
    const found = await api(`/api/performance/${which}?${asked}`);
    content().replaceChildren(form, found.agents ? chartOf(found.agents, "agent_id", "Activities planned and done per agent", ["activities_planned", "activities_done"]) : "", render(found));
  },

  async funnel() {
    const form = queryForm([{ name: "team_id", label: "Team" }, { name: "agent_id", label: "Agent" }, { name: "month", label: "Month", value: thisMonth() }], "Whose funnel");
    const found = await api(`/api/funnel?${params(["team_id", "agent_id", "month"], { month: thisMonth() })}`);
    content().replaceChildren(form, chartOf(found.stages || [], "stage", "Opportunities per stage"), render(found));
  },

  async complaints() {
    const form = queryForm([{ name: "team_id", label: "Team" }, { name: "agent_id", label: "Agent" }, { name: "month", label: "Month", value: thisMonth() }], "Whose complaints");
    const found = await api(`/api/complaints/statistics?${params(["team_id", "agent_id", "month"], { month: thisMonth() })}`);
    content().replaceChildren(form, chartOf(found.by_category || [], "category", "Complaints per category: this month, the month before, a year before"), render(found));
  },

  async health() {
    const draw = async () => {
      const health = await api("/api/ops/health");
      content().replaceChildren(
        el("p", { class: health.all_up ? "up" : "down", id: "all-up" }, health.all_up ? "Every process is up" : "Not every process is up"),
        table([
          { key: "process", title: "Process" },
          { key: "up", title: "State", cell: (p) => el("span", { class: p.up ? "up" : "down" }, p.up ? "up" : "down") },
          { key: "restarts", title: "Restarts" }, { key: "last_beat_seconds_ago", title: "Last beat (s ago)" },
          { key: "host", title: "Host" }, { key: "pid", title: "pid" },
        ], health.processes, "Processes"),
        table([{ key: "service", title: "Service" }, { key: "up", title: "Answers", cell: (s) => (s.up ? `yes, ${s.ms} ms` : `no: ${s.problem}`) }],
          health.services, "Services and their stores"),
        el("p", {}, `Broker: ${health.broker.up ? `up (RabbitMQ ${health.broker.rabbitmq_version || "?"}, ${shown(health.broker.messages)} messages queued)` : `down (${health.broker.problem})`}; read models: ${health.read_models.up ? "up" : `down (${health.read_models.problem})`}`));
    };
    await draw();
    every(5, draw);
  },

  async queues() {
    const draw = async () => {
      const queues = await api("/api/ops/queues");
      problem(queues.problem || "");
      const busiest = [...queues.queues].sort((a, b) => b.messages - a.messages).slice(0, 12);
      content().replaceChildren(
        chartOf(busiest, "name", "Depth of the deepest queues", ["messages", "unacknowledged"]),
        table([
          { key: "name", title: "Queue" }, { key: "messages", title: "Depth" }, { key: "unacknowledged", title: "Unacked" },
          { key: "publish_rate", title: "In /s" }, { key: "deliver_rate", title: "Out /s" }, { key: "consumers", title: "Consumers" },
        ], queues.queues, "Queues"));
    };
    await draw();
    every(5, draw);
  },

  async projections() {
    const draw = async () => {
      const found = await api("/api/ops/projections");
      const rebuild = (model) => async () => {
        if (!window.confirm(`Rebuild ${model}? The live model keeps answering until the new one is ready.`)) return;
        try { await api("/api/ops/projections/rebuild", { json: { model } }); await draw(); } catch (e) { problem(e.message); }
      };
      content().replaceChildren(
        table([
          { key: "name", title: "Read model" }, { key: "waiting_events", title: "Waiting" },
          { key: "behind_seconds", title: "Behind (s)" }, { key: "applied_events", title: "Applied" },
          { key: "consumers", title: "Consumers" }, { key: "rebuilding_into", title: "Rebuilding into" },
          { key: "rebuild", title: "Rebuild", cell: (p) => el("button", { type: "button", class: "secondary", onclick: rebuild(p.name) }, `Rebuild ${p.name}`) },
        ], found.projections, "Read models"),
        el("button", { type: "button", onclick: rebuild("all") }, "Rebuild every read model"),
        table([
          { key: "models", title: "Models", cell: (j) => j.models.join(", ") },
          { key: "state", title: "State", cell: (j) => el("span", { class: `state-${j.state}` }, j.state) },
          { key: "done", title: "Progress", cell: (j) => el("progress", { max: "1", value: String(j.done), "aria-label": `rebuild of ${j.models.join(", ")}` }, `${Math.round(j.done * 100)}%`) },
          { key: "events_read", title: "Events read" }, { key: "requested_by", title: "Asked by" },
          { key: "requested_at", title: "Asked at" }, { key: "problem", title: "Problem" },
        ], found.rebuilds || [], "Rebuilds"));
    };
    await draw();
    every(1, draw);
  },

  async deadLetters() {
    const queue = query().get("queue") || "";
    const found = await api(`/api/ops/dead-letters${queue ? `?queue=${encodeURIComponent(queue)}` : ""}`);
    const act = (action, letter) => async () => {
      if (!window.confirm(action === "discard" ? `Discard ${letter.message_id} for good?` : `Requeue ${letter.message_id} to ${found.queue}?`)) return;
      try {
        await api(`/api/ops/dead-letters/${action}`, { json: { queue: found.queue, message_id: letter.message_id } });
        await pages.deadLetters();
      } catch (e) { problem(e.message); }
    };
    const picker = el("nav", { "aria-label": "Queues" }, found.queues.map((q) =>
      el("a", { href: `?queue=${encodeURIComponent(q)}`, "aria-current": q === found.queue ? "page" : false }, q)));
    content().replaceChildren(picker, table([
      { key: "message_id", title: "Message" }, { key: "event_type", title: "Event" }, { key: "reason", title: "Reason" },
      { key: "body_preview", title: "Body", cell: (d) => el("pre", {}, d.body_preview) },
      { key: "act", title: "Act", cell: (d) => el("span", {},
        el("button", { type: "button", onclick: act("requeue", d) }, `Requeue ${d.message_id}`), " ",
        el("button", { type: "button", class: "secondary", onclick: act("discard", d) }, `Discard ${d.message_id}`)) },
    ], found.dead_letters, `${found.dead_letters.length} dead letters in ${found.queue || "no queue"}`));
  },
};

const draw = pages[body.dataset.page];
if (draw) draw().catch((e) => problem(e.message));
