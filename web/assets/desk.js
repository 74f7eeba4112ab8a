// bizcred desk: live updates where a page asks for them. Every page works without this script
// (each has a "check again" link); with it, an element carrying data-poll is refreshed from its
// JSON URL every two seconds, its status text replaced in a live region, and the browser moves
// on to the result page when the answer is in.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var status = el.querySelector("[data-poll-status]");
    var stopped = false;
    function tick() {
      if (stopped) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) { return; }
          if (status && s.text && status.textContent !== s.text) { status.textContent = s.text; }
          if (s.done && s.location) { stopped = true; window.location.assign(s.location); }
        })
        .catch(function () { /* the next tick tries again; the link still works */ })
        .then(function () { if (!stopped) { setTimeout(tick, 2000); } });
    }
    setTimeout(tick, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), poll);
  });
})();
