// AccessHive's own script (a static file, so a Content-Security-Policy of script-src 'self'
// allows it): countdowns, tracebacks kept open across htmx refreshes, a table that scrolls in
// its own box reachable by keyboard, and the Settings menu closing.
(function () {
  "use strict";
  var openDetails = {};

  function tick() {
    document.querySelectorAll("[data-countdown-to]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.countdownTo) - Date.now()) / 1000);
      el.textContent = left > 0 ? "in " + left + " s" : "due now";
    });
  }

  // A scrolling table box is a stop for the keyboard only when it really scrolls.
  function markScrollers() {
    document.querySelectorAll(".table-scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth) {
        box.setAttribute("tabindex", "0");
      } else {
        box.removeAttribute("tabindex");
      }
    });
  }

  function refresh() {
    document.querySelectorAll("details[id]").forEach(function (el) {
      if (openDetails[el.id]) { el.open = true; }
    });
    tick();
    markScrollers();
  }

  document.addEventListener("toggle", function (event) {
    if (event.target.id) { openDetails[event.target.id] = event.target.open; }
  }, true);

  document.addEventListener("click", function (event) {
    // A click outside the open Settings menu closes it.
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.open = false; }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach(function (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
      });
    }
  });

  document.addEventListener("htmx:afterSwap", refresh);
  window.addEventListener("resize", markScrollers);
  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(tick, 1000);
  });
})();
