// Incidents, live: a new incident is added to the top of the list as the console stores it,
// and one the page shows is redrawn when it grows (a quarantine after the attempt).
// Every value is set with textContent, never as HTML: names come from pupils' devices.
"use strict";
(function () {
  const body = document.querySelector("table.alerts tbody");
  if (!body || !window.EventSource) return;
  const params = new URLSearchParams(location.search);
  const filtered = [...params].some(([k, v]) => v !== "" && k !== "status") ||
    !["", "new"].includes(params.get("status") || "");
  const note = document.getElementById("live");
  const shown = new Map([...body.querySelectorAll("tr[data-id]")].map((r) => [r.dataset.id, r]));
  const waiting = new Set();
  const say = (text) => { if (note) note.textContent = text; };
  const span = (cls, text) => {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  };
  const withSchool = document.querySelector("table.alerts th.school") !== null;
  const draw = (row, a) => {
    row.dataset.id = a.id;
    row.className = a.severity + " fresh";
    row.replaceChildren();
    row.insertCell().textContent = a.when;
    if (withSchool) row.insertCell().textContent = a.school || "";
    const title = row.insertCell();
    title.className = "title";
    const link = document.createElement("a");
    link.href = "/alerts/" + encodeURIComponent(a.id);
    link.textContent = a.title;
    title.appendChild(link);
    row.insertCell().appendChild(span("risk " + a.risk, a.risk));
    row.insertCell().textContent = String(a.events);
    row.insertCell().appendChild(span("status " + a.status, a.status));
  };
  const source = new EventSource("/alerts/live");
  source.addEventListener("alerts", (ev) => {
    for (const a of JSON.parse(ev.data)) {
      const row = shown.get(a.id);
      if (row) {
        draw(row, a);
      } else if (filtered || params.get("page")) {
        waiting.add(a.id);
        say(waiting.size + " new or changed incident(s) since this page was opened: reload to see them.");
      } else {
        const fresh = document.createElement("tr");
        draw(fresh, a);
        body.insertBefore(fresh, body.firstChild);
        shown.set(a.id, fresh);
        // One more incident, and it is new: the counts above the list say so.
        document.getElementById("none")?.remove();
        const total = document.getElementById("total");
        if (total) total.textContent = String(Number(total.textContent) + 1);
        const counts = document.querySelector("p.counts");
        let fresh_count = counts && counts.querySelector("span.status.new");
        if (counts && !fresh_count) {
          fresh_count = span("status new", "");
          fresh_count.dataset.n = "0";
          counts.append(fresh_count, " ");
        }
        if (fresh_count) {
          fresh_count.dataset.n = String(Number(fresh_count.dataset.n) + 1);
          fresh_count.textContent = fresh_count.dataset.n + " new";
        }
        say("Updated live: new incidents appear at the top.");
      }
    }
  });
  source.addEventListener("reload", () => say("More incidents arrived than this page could follow: reload."));
  source.onerror = () => say("Live updates paused; they resume when the console can be reached.");
  source.onopen = () => say("Updated live: new incidents appear at the top.");
})();
