
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
    var warning = form.querySelector(".kpi-calc-warning");
    // An input outside its valid range (the datapoint's `valid`, or a KPI that cannot be
    // negative) gives a warning instead of a number: a negative starting revenue would
    // otherwise give a confident retention of 130%.
    function outOfRange(input) {
      var x = readNumber(input);
      if (Number.isNaN(x)) return null;
      var low = input.getAttribute("min"), high = input.getAttribute("max");
      var label = input.closest("label");
      var name = label && label.firstElementChild ? label.firstElementChild.textContent.trim() : input.dataset.name;
      if (low !== null && x < Number(low)) {
        return high !== null
          ? name + " must lie between " + low + " and " + high + "."
          : name + " cannot be below " + low + ".";
      }
      if (high !== null && x > Number(high)) {
        return low !== null
          ? name + " must lie between " + low + " and " + high + "."
          : name + " cannot be above " + high + ".";
      }
      return null;
    }
    function update() {
      var v = {};
      var problems = [];
      inputs.forEach(function (input) {
        v[input.dataset.name] = readNumber(input);
        var problem = outOfRange(input);
        if (problem) problems.push(problem);
      });
      if (warning) {
        warning.hidden = problems.length === 0;
        warning.textContent = problems.length ? "Check the inputs: " + problems.join(" ") : "";
      }
      if (problems.length) {
        out.textContent = "\u2014";
        out.title = "no value: an input is outside its valid range";
        return;
      }
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
