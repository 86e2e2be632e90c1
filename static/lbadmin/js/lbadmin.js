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
