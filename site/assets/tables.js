/* Catalog tables (.kpi-catalog): sort by a click on a column header, filter by the box above.
   Runs on every page load, including mkdocs-material's instant navigation (document$). */
(function () {
  "use strict";

  function cellText(row, index) {
    var cell = row.cells[index];
    return cell ? cell.textContent.trim() : "";
  }

  function sortBy(table, index, header) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellText(a, index), y = cellText(b, index);
      // Empty cells last in either order; ties keep the name order (column 0).
      if (!x !== !y) return x ? -1 : 1;
      var c = x.localeCompare(y, undefined, { sensitivity: "base", numeric: true });
      if (c === 0) c = cellText(a, 0).localeCompare(cellText(b, 0));
      return ascending ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function filter(box, table, counter) {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.hidden = !keep;
      if (keep) shown += 1;
    });
    counter.textContent = shown + " of " + table.tBodies[0].rows.length + " KPIs";
  }

  function setUp(root) {
    var table = root.querySelector("table.kpi-sortable");
    var box = root.querySelector("input.kpi-filter");
    var counter = root.querySelector(".kpi-count");
    if (!table || root.dataset.kpiReady) return;
    root.dataset.kpiReady = "1";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.classList.add("kpi-sort");
      th.addEventListener("click", function () { sortBy(table, index, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, index, th); }
      });
    });
    box.addEventListener("input", function () { filter(box, table, counter); });
    filter(box, table, counter);
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".kpi-catalog"), setUp);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
