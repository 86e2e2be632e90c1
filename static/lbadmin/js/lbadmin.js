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

// System Overview: which services are expanded is remembered by this browser, and kept across
// the table's htmx refreshes.
(function () {
  const KEY = "lbadmin.overview.expanded";
  const expanded = new Set(JSON.parse(localStorage.getItem(KEY) || "[]"));
  function apply(root) {
    root.querySelectorAll("tbody.service").forEach(function (body) {
      const open = expanded.has(body.dataset.service);
      body.querySelector(".servers").hidden = !open;
      const toggle = body.querySelector("button.toggle");
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = open ? "▾" : "▸";
    });
  }
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("#overview-table button.toggle");
    if (!toggle) return;
    const id = toggle.closest("tbody.service").dataset.service;
    if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
    localStorage.setItem(KEY, JSON.stringify([...expanded]));
    apply(document);
  });
  document.addEventListener("DOMContentLoaded", function () { apply(document); });
  document.addEventListener("htmx:afterSwap", function () { apply(document); });
  document.addEventListener("htmx:afterSettle", function () { apply(document); });
})();
