// The header clock: starts from the server's time and ticks locally, so it costs no requests.
(function () {
  const clock = document.getElementById("clock");
  if (!clock) return;
  const offset = Number(clock.dataset.epochMs) - Date.now();
  const pad = (n) => String(n).padStart(2, "0");
  function tick() {
    const t = new Date(Date.now() + offset);
    clock.textContent = `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
      `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())} UTC`;
  }
  setInterval(tick, 1000);
})();

// System Overview: which services are expanded is remembered by this browser and sent with
// every refresh (the server renders real servers only for those), so the table stays cheap.
(function () {
  const KEY = "lbadmin.overview.expanded";
  const expanded = new Set(JSON.parse(localStorage.getItem(KEY) || "[]"));
  function publish() {
    const field = document.getElementById("overview-expanded");
    if (field) field.value = [...expanded].join(",");
  }
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("#overview-table button.toggle");
    if (!toggle) return;
    const id = toggle.closest("tbody.service").dataset.service;
    if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
    localStorage.setItem(KEY, JSON.stringify([...expanded]));
    publish();
    htmx.trigger("#overview-table", "refresh");
  });
  document.addEventListener("DOMContentLoaded", function () {
    publish();
    if (expanded.size && document.getElementById("overview-table")) {
      htmx.trigger("#overview-table", "refresh");
    }
  });
})();
