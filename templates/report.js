(function () {
  "use strict";
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var cases = Array.prototype.slice.call(document.querySelectorAll("details.case"));
  // What the text filter searches: the case's summary line and its verdict message, not the
  // exchanges (megabytes of bodies would make every keystroke slow).
  var text = cases.map(function (c) {
    var s = c.querySelector("summary"), m = c.querySelector(".message");
    return ((s ? s.textContent : "") + " " + (m ? m.textContent : "")).toLowerCase();
  });
  var status = document.getElementById("f-status");
  var level = document.getElementById("f-level");
  var area = document.getElementById("f-area");
  var query = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  function apply() {
    var s = status.value, l = level.value, a = area.value, q = query.value.trim().toLowerCase();
    var shown = 0;
    for (var i = 0; i < cases.length; i++) {
      var c = cases[i];
      var ok = (!s || c.getAttribute("data-verdict") === s) &&
        (!l || c.getAttribute("data-level") === l) &&
        (!a || c.getAttribute("data-area") === a) &&
        (!q || text[i].indexOf(q) >= 0);
      c.hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = shown + " of " + cases.length + " cases shown";
  }
  [status, level, area].forEach(function (e) { e.addEventListener("change", apply); });
  query.addEventListener("input", apply);
  // A link to a case (from a cause, or a shared exchange) must land on it even when filtered out.
  window.addEventListener("hashchange", function () {
    var t = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    var c = t && t.closest ? t.closest("details.case") : null;
    if (c && c.hidden) { status.value = ""; level.value = ""; area.value = ""; query.value = ""; apply(); t.scrollIntoView(); }
  });
  bar.hidden = false;
  apply();
})();
