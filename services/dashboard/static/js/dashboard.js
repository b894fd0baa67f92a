// The dashboard's pages: each asks the JSON API (as the signed-in person) and draws what it answers.
"use strict";

const body = document.body;
const csrf = body.dataset.csrf;
const content = () => document.getElementById("content");

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
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// A table whose columns sort when their heading is pressed (the rows of one page; paging is the server's).
function table(columns, rows, caption) {
  let order = null;
  const tbody = el("tbody");
  const draw = () => {
    tbody.replaceChildren(...rows.map((row) => el("tr", {}, columns.map((c) => el("td", {}, c.cell ? c.cell(row) : row[c.key] ?? "")))));
  };
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", "aria-sort": "none" },
    el("button", { type: "button", onclick: (event) => {
      order = order === c.key ? `-${c.key}` : c.key;
      const sign = order.startsWith("-") ? -1 : 1;
      rows.sort((a, b) => (a[c.key] > b[c.key] ? sign : a[c.key] < b[c.key] ? -sign : 0));
      event.currentTarget.parentElement.setAttribute("aria-sort", sign > 0 ? "ascending" : "descending");
      draw();
    } }, c.title))));
  draw();
  return el("div", { class: "table-wrap" }, el("table", {}, caption ? el("caption", {}, caption) : "", el("thead", {}, head), tbody));
}

function barChart(labels, series, label) {
  const canvas = el("canvas", { role: "img", "aria-label": label });
  const holder = el("div", { class: "chart" }, canvas);
  new window.Chart(canvas, {
    type: "bar",
    data: { labels, datasets: series.map((s) => ({ label: s.label, data: s.data })) },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  });
  return holder;
}

const pages = {
  async summary() {
    const summary = await api("/api/summary");
    const cards = summary.cards.map((card) => el("section", { class: "card", "aria-label": card.title },
      el("h2", {}, card.title), el("pre", {}, JSON.stringify(card.data, null, 2))));
    content().replaceChildren(el("p", {}, `${summary.user.display_name}, ${summary.date}`), ...cards);
  },

  async customers() {
    const results = el("div", { "aria-live": "polite" });
    const form = el("form", { class: "row", role: "search", onsubmit: async (event) => {
      event.preventDefault();
      problem("");
      const query = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) query.set(k, v);
      try {
        const found = await api(`/api/customers?${query}`);
        results.replaceChildren(table([
          { key: "full_name", title: "Name", cell: (c) => el("a", { href: `/customers/${c.customer_id}` }, c.full_name) },
          { key: "mobile_phone", title: "Mobile" },
          { key: "owning_agent_id", title: "Agent" },
        ], found.customers, `${found.customers.length} found`));
      } catch (e) { problem(e.message); }
    } },
      el("label", {}, "Name", el("input", { name: "name", maxlength: 100 })),
      el("label", {}, "Mobile", el("input", { name: "mobile_phone", inputmode: "tel" })),
      el("label", {}, "Last four of the national id", el("input", { name: "national_id_last4", maxlength: 4 })),
      el("button", { type: "submit" }, "Find"));
    content().replaceChildren(form, results);
  },

  async customer() {
    const id = body.dataset.customer;
    const view = await api(`/api/customers/${id}`);
    const timeline = await api(`/api/customers/${id}/timeline?limit=50`);
    content().replaceChildren(
      el("section", { class: "card", "aria-label": "The customer" }, el("h2", {}, view.full_name || id),
        el("pre", {}, JSON.stringify(view, null, 2))),
      el("section", { class: "card", "aria-label": "Timeline" }, el("h2", {}, "Timeline"),
        table([{ key: "occurred_at", title: "When" }, { key: "kind", title: "What" }, { key: "summary", title: "" }],
          timeline.entries || [])));
  },

  async segments() {
    const scheme = new URLSearchParams(window.location.search).get("scheme") || "value_tier";
    const counts = await api(`/api/segments?scheme=${encodeURIComponent(scheme)}`);
    const labels = counts.segments.map((s) => s.segment);
    content().replaceChildren(
      el("p", {}, `${counts.scheme}, ${counts.month}: ${counts.total} customers`),
      barChart(labels, [
        { label: counts.month, data: counts.segments.map((s) => s.count) },
        { label: "month before", data: counts.segments.map((s) => s.last_month) },
        { label: "a year before", data: counts.segments.map((s) => s.same_month_last_year) },
      ], `Customers per segment of ${counts.scheme}`),
      table([
        { key: "segment", title: "Segment" }, { key: "count", title: "Customers" },
        { key: "change_on_last_month", title: "Month on month" }, { key: "change_on_last_year", title: "Year on year" },
      ], counts.segments));
  },

  async health() {
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
      el("p", {}, `Broker: ${health.broker.up ? "up" : `down (${health.broker.problem})`}; read models: ${health.read_models.up ? "up" : "down"}`));
  },

  async queues() {
    const queues = await api("/api/ops/queues");
    if (queues.problem) problem(queues.problem);
    content().replaceChildren(table([
      { key: "name", title: "Queue" }, { key: "messages", title: "Depth" }, { key: "unacknowledged", title: "Unacked" },
      { key: "publish_rate", title: "In /s" }, { key: "deliver_rate", title: "Out /s" }, { key: "consumers", title: "Consumers" },
    ], queues.queues));
  },

  async projections() {
    const found = await api("/api/ops/projections");
    const rows = found.projections;
    content().replaceChildren(table([
      { key: "name", title: "Read model" }, { key: "lag", title: "Lag" },
      { key: "rebuild", title: "Rebuild", cell: (p) => el("button", { type: "button", class: "secondary", onclick: async () => {
        if (!window.confirm(`Rebuild ${p.name}? The live model keeps answering until the new one is ready.`)) return;
        try { await api("/api/ops/projections/rebuild", { json: { model: p.name } }); pages.projections(); }
        catch (e) { problem(e.message); }
      } }, `Rebuild ${p.name}`) },
    ], rows));
  },

  async deadLetters() {
    const queue = new URLSearchParams(window.location.search).get("queue") || "";
    const found = await api(`/api/ops/dead-letters${queue ? `?queue=${encodeURIComponent(queue)}` : ""}`);
    const act = (action, letter) => async () => {
      if (action === "discard" && !window.confirm(`Discard ${letter.message_id} for good?`)) return;
      try { await api(`/api/ops/dead-letters/${action}`, { json: { queue: found.queue, message_id: letter.message_id } }); pages.deadLetters(); }
      catch (e) { problem(e.message); }
    };
    const picker = el("nav", { "aria-label": "Queues" }, found.queues.map((q) => el("a", { href: `?queue=${encodeURIComponent(q)}` }, q)));
    content().replaceChildren(picker, table([
      { key: "message_id", title: "Message" }, { key: "reason", title: "Reason" },
      { key: "body", title: "Body", cell: (d) => el("pre", {}, JSON.stringify(d.body).slice(0, 400)) },
      { key: "act", title: "Act", cell: (d) => el("span", {},
        el("button", { type: "button", onclick: act("requeue", d) }, "Requeue"), " ",
        el("button", { type: "button", class: "secondary", onclick: act("discard", d) }, "Discard")) },
    ], found.dead_letters, `${found.dead_letters.length} dead letters in ${found.queue}`));
  },
};

const draw = pages[body.dataset.page];
if (draw) draw().catch((e) => problem(e.message));
