// The colour scheme follows the reader's system (prefers-color-scheme) until they choose one
// with the header's toggle (issue 19). mkdocs-material stores the palette it picked on the
// first visit and keeps it, so a reader who later switches their system to dark still got the
// light site, and the page was drawn light before the theme's script ran. This runs before the
// theme's palette script (md-palette.js): until the reader has used the toggle, the stored
// palette is dropped and the system's scheme applied at once; a change of the system's scheme
// is followed while the page is open.
(function () {
  "use strict";
  var chosen = "__kpi_palette_chosen";
  var dark = matchMedia("(prefers-color-scheme: dark)");
  var own = document.currentScript.dataset;
  function media() {
    return "(prefers-color-scheme: " + (dark.matches ? "dark" : "light") + ")";
  }
  if (!__md_get(chosen)) {
    __md_set("__palette", null);
    var scheme = dark.matches ? own.dark : own.light;
    if (scheme) document.body.setAttribute("data-md-color-scheme", scheme);
  }
  document.addEventListener(
    "change",
    function (e) {
      // the reader's own click (a trusted event), not the switch below
      if (e.isTrusted && e.target && e.target.name === "__palette") __md_set(chosen, true);
    },
    true
  );
  dark.addEventListener("change", function () {
    if (__md_get(chosen)) return;
    var input = document.querySelector("input[name=__palette][data-md-color-media='" + media() + "']");
    if (input && !input.checked) {
      input.checked = true;
      input.dispatchEvent(new Event("change"));
    }
  });
})();
