
// The calculators on KPI pages. Each page registers its formula as a function generated from
// the formula's syntax tree (window.kpiCalculators[id] = {unit, f}); this file only reads
// numbers from the form, calls that function and writes the result in the KPI's unit. It never
// evaluates text typed by the visitor.
(function () {
  "use strict";

  var two = { minimumFractionDigits: 2, maximumFractionDigits: 2 };

  // Mirrors kpi_registry.site.numbers.format_value.
  function formatValue(v, unit) {
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number" || Number.isNaN(v)) return "\u2014";
    if (unit === "percent") return v.toLocaleString("en-US", two) + "%";
    if (unit === "currency") return v.toLocaleString("en-US", two);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return v.toLocaleString("en-US", two);
  }

  function readNumber(input) {
    var text = input.value.trim();
    return text === "" ? NaN : Number(text);
  }

  function wire(form) {
    var calc = (window.kpiCalculators || {})[form.dataset.kpi];
    var out = form.querySelector("output.kpi-calc-result");
    if (!calc || !out) return;
    var inputs = form.querySelectorAll("input[data-name]");
    function update() {
      var v = {};
      inputs.forEach(function (input) {
        v[input.dataset.name] = readNumber(input);
      });
      var result = calc.f(v);
      out.textContent = formatValue(result, calc.unit);
      out.title = Number.isNaN(result) ? "no value: an input is missing or a division by zero" : "";
    }
    form.addEventListener("input", update);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      update();
    });
    update();
  }

  function start() {
    document.querySelectorAll("form.kpi-calculator").forEach(wire);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
