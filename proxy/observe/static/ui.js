// The status page: polls /ui/api/status and rebuilds two tables. Every value goes in through
// textContent, never as markup. A client key, when the daemon needs one, comes from the URL
// fragment (/ui#key=...), which the browser never sends anywhere.
"use strict";

const POLL_MS = 1000;
const key = new URLSearchParams(location.hash.slice(1)).get("key");

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function ms(value) {
  return value === null || value === undefined ? "-" : Math.round(value) + " ms";
}

function cost(value) {
  if (value === null || value === undefined) return "-";
  if (value >= 0.01 || value === 0) return "$" + value.toFixed(4);
  return "$" + value.toFixed(Math.min(12, 2 - Math.floor(Math.log10(value))));
}

function fill(tableId, items, render) {
  const body = document.querySelector("#" + tableId + " tbody");
  const rows = items.map((item) => {
    const row = document.createElement("tr");
    render(row, item);
    return row;
  });
  body.replaceChildren(...rows);
}

function renderTarget(row, t) {
  cell(row, t.target);
  cell(row, t.health, t.healthy ? "good" : (t.requests ? "bad" : "quiet"));
  cell(row, t.requests);
  cell(row, t.success_rate === null ? "-" : Math.round(t.success_rate * 100) + "%");
  cell(row, ms(t.latency_ms));
  cell(row, ms(t.ttft_ms));
}

function renderRequest(row, r) {
  row.id = r.id;
  cell(row, new Date(r.time * 1000).toLocaleTimeString());
  cell(row, r.id, "quiet");
  cell(row, r.model, "wrap model");
  cell(row, r.route || "-");
  cell(row, r.path || "-", "wrap");
  cell(row, r.served || "none");
  cell(row, r.outcome === "ok" ? r.status : r.status + " " + r.outcome,
       r.outcome === "ok" ? "good" : "bad");
  cell(row, r.input_tokens + r.cache_read_tokens + r.cache_write_tokens + " / " +
       r.output_tokens);
  cell(row, cost(r.cost_usd));
  cell(row, ms(r.ttft_ms));
  cell(row, ms(r.total_ms));
}

async function poll() {
  const state = document.getElementById("state");
  try {
    const headers = key ? { authorization: "Bearer " + key } : {};
    const response = await fetch("/ui/api/status", { headers, cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    fill("targets", data.targets, renderTarget);
    fill("requests", data.requests, renderRequest);
    state.textContent = "live, updated " + new Date(data.now * 1000).toLocaleTimeString();
  } catch (error) {
    state.textContent = "cannot reach the daemon: " + error.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
