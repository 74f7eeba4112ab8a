// bizcred portal: live updates of the founder's applications. Every page works without this
// script (each has a "check again" link). With it, /tracker.json is polled every 500 ms: the
// tracker's rows are replaced when their content changed (in an aria-live="polite" region),
// and the checklist and application pages say when what they show has changed.
(function () {
  "use strict";
  var root = document.getElementById("portal");
  if (!root || !root.getAttribute("data-poll")) { return; }
  var url = root.getAttribute("data-poll");
  var csrf = root.getAttribute("data-csrf") || "";
  var withdrawLabel = root.getAttribute("data-withdraw") || "";

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

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d && d.rows) { apply(d); } })
      .catch(function () { /* the next tick tries again; the link still works */ })
      .then(function () { setTimeout(tick, 500); });
  }
  setTimeout(tick, 500);
})();
