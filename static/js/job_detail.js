// Counts down to the next attempt, and keeps an opened traceback open across htmx refreshes.
(function () {
  var open = {};
  function tick() {
    document.querySelectorAll("[data-countdown-to]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.countdownTo) - Date.now()) / 1000);
      el.textContent = left > 0 ? "in " + left + " s" : "due now";
    });
  }
  document.addEventListener("toggle", function (event) {
    if (event.target.id) { open[event.target.id] = event.target.open; }
  }, true);
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("details[id]").forEach(function (el) {
      if (open[el.id]) { el.open = true; }
    });
    tick();
  });
  tick();
  setInterval(tick, 1000);
})();
