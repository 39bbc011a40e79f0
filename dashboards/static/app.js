// primewatch dashboard: local times, client-side sorting, auto-submit, refresh that
// keeps the scroll position. Everything works without it; nothing is loaded from elsewhere.
"use strict";
(function () {
  function localTimes() {
    var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.title = el.textContent; el.textContent = fmt.format(d); }
    });
  }
  function sortable() {
    document.querySelectorAll("table[data-sortable]").forEach(function (table) {
      table.querySelectorAll("th[data-sort]").forEach(function (th, index) {
        th.tabIndex = 0;
        function sort() {
          var asc = th.getAttribute("aria-sort") !== "ascending";
          table.querySelectorAll("th[data-sort]").forEach(function (o) { o.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", asc ? "ascending" : "descending");
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          var numeric = th.getAttribute("data-sort") === "num";
          rows.sort(function (a, b) {
            var x = a.cells[index], y = b.cells[index];
            if (!x || !y) { return 0; }
            var u = numeric ? parseFloat(x.getAttribute("data-value")) : x.textContent.trim();
            var v = numeric ? parseFloat(y.getAttribute("data-value")) : y.textContent.trim();
            var r = numeric ? u - v : String(u).localeCompare(String(v));
            return asc ? r : -r;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        }
        th.addEventListener("click", sort);
        th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
      });
    });
  }
  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }
  function refresh() {
    var meta = document.querySelector('meta[name="refresh-seconds"]');
    var seconds = meta ? parseInt(meta.getAttribute("content"), 10) : 0;
    var key = "primewatch-scroll:" + location.pathname + location.search;
    var saved = sessionStorage.getItem(key);
    if (saved !== null) { window.scrollTo(0, parseInt(saved, 10)); sessionStorage.removeItem(key); }
    if (seconds > 0) {
      setTimeout(function () {
        sessionStorage.setItem(key, String(window.scrollY));
        location.reload();
      }, seconds * 1000);
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(); sortable(); autosubmit(); refresh();
  });
})();
