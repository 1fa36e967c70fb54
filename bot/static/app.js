// The dashboard's only script (the Content-Security-Policy allows no other): times in the
// viewer's time zone (UTC on hover), and the live tail of new audit events. Text is always
// set with textContent, never parsed as HTML.
"use strict";

function localize(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) {
      el.textContent = at.toLocaleString();
    }
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function row(e) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(e.id);
  tr.className = "new";
  const when = document.createElement("td");
  const link = document.createElement("a");
  link.href = "/events/" + encodeURIComponent(e.id);
  const time = document.createElement("time");
  time.setAttribute("datetime", e.at_iso);
  time.title = e.at_utc;
  time.textContent = e.at_utc;
  link.appendChild(time);
  when.appendChild(link);
  tr.appendChild(when);
  const actor = cell(e.actor + " ");
  const source = document.createElement("small");
  source.textContent = e.source;
  actor.appendChild(source);
  tr.appendChild(actor);
  const command = document.createElement("td");
  const name = document.createElement("code");
  name.textContent = e.command;
  const args = document.createElement("code");
  args.className = "args";
  args.textContent = " " + e.args;
  command.append(name, args);
  tr.appendChild(command);
  const outcome = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "outcome outcome-" + e.outcome.replace(/[^a-z]/g, "");
  badge.textContent = e.outcome;
  outcome.appendChild(badge);
  tr.appendChild(outcome);
  tr.appendChild(cell(e.detail, "detail"));
  localize(tr);
  return tr;
}

function liveTail() {
  const live = document.getElementById("live");
  const body = document.getElementById("events");
  if (!live || !body || !window.EventSource) return;
  const source = new EventSource("/events/stream?after=" + encodeURIComponent(live.dataset.after || "0"));
  source.addEventListener("events", (message) => {
    for (const e of JSON.parse(message.data)) {
      body.insertBefore(row(e), body.firstChild);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localize(document);
  liveTail();
});
