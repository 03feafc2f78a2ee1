// journeyhub dashboard: a little comfort, nothing the pages need to work.
// - times: hovering one shows it in the browser's time zone;
// - auto-refresh while the tab is visible and nobody is typing (can be paused);
// - forms: a confirmation where asked, and no double submit.
(function () {
  "use strict";

  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) return;
    el.title = when.toLocaleString() + " (your time) · " + (el.title || "");
    if (el.hasAttribute("data-clock")) el.textContent = when.toLocaleTimeString();
  });

  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var toggle = document.getElementById("refresh-toggle");
  var storeKey = "journeyhub.refresh";
  function paused() {
    try { return window.localStorage.getItem(storeKey) === "off"; } catch (e) { return false; }
  }
  function label() {
    if (toggle) toggle.textContent = paused() ? "Resume auto-refresh" : "Pause auto-refresh";
  }
  if (seconds > 0) {
    if (toggle) {
      toggle.hidden = false;
      label();
      toggle.addEventListener("click", function () {
        try { window.localStorage.setItem(storeKey, paused() ? "on" : "off"); } catch (e) { /* private mode */ }
        label();
      });
    }
    window.setInterval(function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
      var selecting = String(window.getSelection ? window.getSelection() : "").length > 0;
      if (!paused() && !document.hidden && !typing && !selecting && !document.body.classList.contains("busy")) {
        window.location.reload();
      }
    }, seconds * 1000);
  }

  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
        return;
      }
      var busy = form.getAttribute("data-busy");
      var button = form.querySelector("button[type=submit]");
      document.body.classList.add("busy");
      if (button) {
        window.setTimeout(function () {
          button.disabled = true;
          if (busy) {
            var text = button.querySelector("span");
            if (text) text.textContent = busy;
          }
        }, 0);
      }
    });
  });
})();
