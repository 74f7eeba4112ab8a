// bizcred portal: live updates of the founder's applications. Every page works without this
// script (each has a "check again" link). With it, /tracker.json is polled every 500 ms while
// an application is under way: the tracker's rows are replaced when their content changed (in
// an aria-live="polite" region), and the checklist and application pages say when what they
// show has changed. Rows in a final state (issued, refused, withdrawn, removed) do not keep
// the polling going: when every row is final it stops, except that an issued credential is
// still looked at every 5 s (the agency flags upstream events on it, or stops answering);
// rows refused, withdrawn or removed never change and are skipped. Polling pauses while the
// page is hidden and resumes when it is shown again.
(function () {
  "use strict";
  var root = document.getElementById("portal");
  if (!root || !root.getAttribute("data-poll")) { return; }
  var url = root.getAttribute("data-poll");
  var csrf = root.getAttribute("data-csrf") || "";
  var withdrawLabel = root.getAttribute("data-withdraw") || "";
  var FAST = 500;
  var SLOW = 5000;
  var FINAL = { issued: true, refused: true, withdrawn: true, removed: true };
  var SETTLED = { refused: true, withdrawn: true, removed: true };
  var timer = null;
  var inFlight = false;
  var paused = false;
  var stopped = false;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function rowOf(r) {
    var tr = el("tr");
    tr.id = "row-" + r.n;
    tr.setAttribute("data-sig", r.sig);
    tr.setAttribute("data-state", r.state);
    tr.appendChild(el("td", "", r.agency));
    var type = el("td");
    var a = el("a", "", r.type_name);
    a.href = r.href;
    type.appendChild(a);
    tr.appendChild(type);
    var state = el("td");
    state.appendChild(el("span", "badge " + r.state_class, r.state_text));
    r.details.forEach(function (d) {
      var p = el("p");
      p.appendChild(el("span", "detail-label", d.label));
      p.appendChild(document.createTextNode(" "));
      p.appendChild(el(d.mono ? "code" : "span", "", d.text));
      state.appendChild(p);
    });
    tr.appendChild(state);
    tr.appendChild(el("td", "", r.time));
    var act = el("td");
    if (r.withdraw && csrf) {
      var f = el("form");
      f.method = "post";
      f.action = r.withdraw;
      var h = el("input");
      h.type = "hidden";
      h.name = "csrf";
      h.value = csrf;
      f.appendChild(h);
      var b = el("button", "secondary", withdrawLabel);
      b.type = "submit";
      f.appendChild(b);
      act.appendChild(f);
    }
    tr.appendChild(act);
    return tr;
  }

  function apply(data) {
    var body = document.getElementById("tracker-rows");
    if (body) {
      data.rows.forEach(function (r) {
        var old = document.getElementById("row-" + r.n);
        if (old && old.getAttribute("data-sig") === r.sig) { return; }
        if (old && SETTLED[old.getAttribute("data-state")] && old.getAttribute("data-state") === r.state) { return; }
        var fresh = rowOf(r);
        if (old) { body.replaceChild(fresh, old); } else { body.appendChild(fresh); }
      });
      var table = document.getElementById("tracker-table");
      var empty = document.getElementById("tracker-empty");
      if (data.rows.length > 0) {
        if (table) { table.hidden = false; }
        if (empty) { empty.hidden = true; }
      }
      var checked = document.getElementById("checked");
      if (checked && data.checked) { checked.textContent = data.checked; }
    }
    var changed = document.getElementById("changed");
    var steps = root.getAttribute("data-steps");
    if (steps !== null && steps !== data.steps && changed) { changed.hidden = false; }
    var n = root.getAttribute("data-row");
    if (n !== null) {
      var r = data.rows[parseInt(n, 10)];
      if (r && r.sig !== root.getAttribute("data-sig")) {
        if (changed) { changed.hidden = false; }
        Array.prototype.forEach.call(document.querySelectorAll("[data-state-of='" + n + "']"), function (s) {
          if (s.textContent !== r.state_text) { s.textContent = r.state_text; }
        });
      }
    }
  }

  // The delay before the next poll: 500 ms while a row is under way, 5 s while every row is
  // final and one is issued, none (stop) when every row is refused, withdrawn or removed.
  function nextDelay(rows) {
    var live = false;
    var issued = false;
    rows.forEach(function (r) {
      if (!FINAL[r.state]) { live = true; } else if (r.state === "issued") { issued = true; }
    });
    if (live) { return FAST; }
    return issued ? SLOW : 0;
  }

  function schedule(ms) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (ms <= 0) { stopped = true; return; }
    timer = setTimeout(tick, ms);
  }

  function tick() {
    timer = null;
    if (document.hidden) { paused = true; return; }
    if (inFlight) { return; }
    inFlight = true;
    var delay = FAST;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (d && d.rows) {
          apply(d);
          delay = nextDelay(d.rows);
        }
      })
      .catch(function () { /* the next tick tries again; the link still works */ })
      .then(function () {
        inFlight = false;
        schedule(delay);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !paused || stopped) { return; }
    paused = false;
    tick();
  });
  schedule(FAST);
})();
