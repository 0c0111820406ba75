// New alerts, live: rows added to the top of the alerts list as the console stores them.
// Every value is set with textContent, never as HTML: names come from pupils' devices.
"use strict";
(function () {
  const body = document.querySelector("table.alerts tbody");
  if (!body || !window.EventSource) return;
  const params = new URLSearchParams(location.search);
  const filtered = [...params].some(([k, v]) => v !== "" && k !== "status") ||
    !["", "new"].includes(params.get("status") || "");
  const note = document.getElementById("live");
  const seen = new Set([...body.querySelectorAll("tr[data-id]")].map((r) => r.dataset.id));
  let waiting = 0;
  const say = (text) => { if (note) note.textContent = text; };
  const cell = (row, text, cls) => {
    const td = row.insertCell();
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  };
  const add = (a) => {
    const row = document.createElement("tr");
    row.dataset.id = a.id;
    row.className = a.severity + " fresh";
    const link = document.createElement("a");
    link.href = "/alerts/" + encodeURIComponent(a.id);
    link.textContent = a.when;
    row.insertCell().appendChild(link);
    cell(row, a.kind);
    const device = cell(row, a.device + " ");
    if (a.ip) { const c = document.createElement("code"); c.textContent = a.ip; device.appendChild(c); }
    cell(row, a.owner);
    cell(row, a.group);
    cell(row, a.name, "name");
    cell(row, a.technique);
    cell(row, a.severity);
    const s = document.createElement("span");
    s.className = "status new";
    s.textContent = "new";
    row.insertCell().appendChild(s);
    body.insertBefore(row, body.firstChild);
  };
  const source = new EventSource("/alerts/live");
  source.addEventListener("alerts", (ev) => {
    for (const a of JSON.parse(ev.data)) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      if (filtered || params.get("page")) {
        waiting += 1;
        say(waiting + " new alert(s) since this page was opened: reload to see them.");
      } else {
        add(a);
        say("Updated live: new alerts appear at the top.");
      }
    }
  });
  source.addEventListener("reload", () => say("More alerts arrived than this page could follow: reload."));
  source.onerror = () => say("Live updates paused; they resume when the console can be reached.");
  source.onopen = () => say("Updated live: new alerts appear at the top.");
})();
