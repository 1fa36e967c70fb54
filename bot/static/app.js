// The dashboard's only script (the Content-Security-Policy allows no other). Pages work
// without it: times are written in UTC by the server. With it: times in the viewer's zone
// ("2026-12-01 04:06:17 EST"), "3 min ago" on hover, a UTC switch remembered in this
// browser, the live tail of new audit events (under the page's filters, with a pause
// button), and Enter in a filter's picker submits the form. Text is always set with
// textContent, never parsed as HTML.
"use strict";

const UTC_KEY = "opsbot.times.utc";

function wantUtc() {
  try {
    return window.localStorage.getItem(UTC_KEY) === "1";
  } catch (_) {
    return false;
  }
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// "2026-12-01 04:06:17 EST" in the viewer's zone, or "... UTC".
function formatTime(at, utc) {
  if (utc) {
    return at.getUTCFullYear() + "-" + pad(at.getUTCMonth() + 1) + "-" + pad(at.getUTCDate()) + " " +
      pad(at.getUTCHours()) + ":" + pad(at.getUTCMinutes()) + ":" + pad(at.getUTCSeconds()) + " UTC";
  }
  let zone = "";
  try {
    const parts = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(at);
    const found = parts.find((p) => p.type === "timeZoneName");
    zone = found ? found.value : "";
  } catch (_) {
    zone = "";
  }
  return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " +
    pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds()) + (zone ? " " + zone : "");
}

// "3 min ago", "in 2 h".
function relative(at, now) {
  const seconds = Math.round((now - at) / 1000);
  const ahead = seconds < 0;
  const s = Math.abs(seconds);
  let text;
  if (s < 45) text = s + " s";
  else if (s < 3600) text = Math.round(s / 60) + " min";
  else if (s < 86400) text = Math.round(s / 3600) + " h";
  else text = Math.round(s / 86400) + " d";
  if (s < 5) return "just now";
  return ahead ? "in " + text : text + " ago";
}

function localize(root) {
  const utc = wantUtc();
  const now = new Date();
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) continue;
    el.textContent = formatTime(at, utc);
    el.title = relative(at, now);
  }
}

function utcSwitch() {
  const button = document.getElementById("utc-toggle");
  if (!button) return;
  button.hidden = false;
  const show = () => button.setAttribute("aria-pressed", wantUtc() ? "true" : "false");
  show();
  button.addEventListener("click", () => {
    try {
      window.localStorage.setItem(UTC_KEY, wantUtc() ? "0" : "1");
    } catch (_) {
      return;
    }
    show();
    localize(document);
  });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function link(href, text, className) {
  const a = el("a", className, text);
  a.href = href;
  return a;
}

// The same row as templates/rows.html, from the live tail's JSON.
function row(e) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(e.id);
  tr.className = "new";

  const when = el("td");
  const timeLink = link("/events/" + encodeURIComponent(e.id), "");
  const time = el("time", "", e.at_utc);
  time.setAttribute("datetime", e.at_iso);
  timeLink.appendChild(time);
  when.appendChild(timeLink);
  tr.appendChild(when);

  const actor = el("td");
  actor.append(link(e.actor_href, e.actor, "actor"), " ", el("small", "", e.source));
  tr.appendChild(actor);

  const command = el("td");
  const name = link(e.command_href, "");
  name.appendChild(el("code", "", e.command));
  command.appendChild(name);
  if (e.reference) command.append(" ", link(e.reference[0], e.reference[1], "ref"));
  if (e.channel_href) command.append(" ", link(e.channel_href, "channel", "ref"));
  const args = el("span", "args");
  for (const [key, value] of e.chips) {
    const chip = el("span", "chip");
    chip.append(el("b", "", key + ":"), " " + value);
    args.appendChild(chip);
  }
  command.append(" ", args);
  tr.appendChild(command);

  const outcome = el("td");
  outcome.appendChild(el("span", "outcome outcome-" + e.outcome.replace(/[^a-z]/g, ""), e.outcome));
  tr.appendChild(outcome);

  const detail = el("td", "detail");
  if (e.folded) {
    const fold = el("details", "detail");
    fold.append(el("summary", "", e.detail_first), e.detail);
    detail.appendChild(fold);
  } else {
    detail.textContent = e.detail;
  }
  tr.appendChild(detail);
  localize(tr);
  return tr;
}

function liveTail() {
  const live = document.getElementById("live");
  const body = document.getElementById("events");
  const pause = document.getElementById("pause");
  if (!live || !body || !window.EventSource) return;
  let source = null;
  const newest = () => {
    const first = body.querySelector("tr[data-id]");
    return first ? first.dataset.id : live.dataset.after || "0";
  };
  const start = () => {
    const filters = live.dataset.filters ? "&" + live.dataset.filters : "";
    source = new EventSource("/events/stream?after=" + encodeURIComponent(newest()) + filters);
    source.addEventListener("events", (message) => {
      for (const e of JSON.parse(message.data)) {
        body.insertBefore(row(e), body.firstChild);
      }
    });
  };
  start();
  if (pause) {
    pause.addEventListener("click", () => {
      if (source) {
        source.close();
        source = null;
        pause.textContent = "Resume";
        pause.setAttribute("aria-pressed", "true");
        live.classList.add("paused");
      } else {
        start();
        pause.textContent = "Pause";
        pause.setAttribute("aria-pressed", "false");
        live.classList.remove("paused");
      }
    });
  }
}

// Enter submits the filters from a picker too, as it does from a text field.
function enterSubmits() {
  for (const form of document.querySelectorAll("form.filters")) {
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target instanceof HTMLSelectElement) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localize(document);
  utcSwitch();
  liveTail();
  enterSubmits();
  window.setInterval(() => {
    const now = new Date();
    for (const t of document.querySelectorAll("time[datetime]")) {
      const at = new Date(t.getAttribute("datetime"));
      if (!isNaN(at)) t.title = relative(at, now);
    }
  }, 30000);
});
