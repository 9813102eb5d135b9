// The console's little JavaScript; every form works without it.
(function () {
  "use strict";
  // Destination inbox: shown read-only with a pencil that makes it editable.
  document.querySelectorAll("[data-pencil]").forEach(function (field) {
    var input = field.querySelector("input");
    var pencil = field.querySelector(".pencil");
    if (!input || !pencil || input.closest("fieldset[disabled]") || input.getAttribute("aria-invalid")) return;
    input.readOnly = true;
    pencil.hidden = false;
    pencil.addEventListener("click", function () {
      input.readOnly = false;
      pencil.hidden = true;
      input.focus();
      input.select();
    });
  });
  // Destination kind: the digest window and set-up guide follow the choice.
  var kind = document.getElementById("destination_kind");
  if (kind) {
    kind.addEventListener("change", function () {
      var option = kind.options[kind.selectedIndex];
      var text = document.querySelector("[data-window-text]");
      var link = document.querySelector("[data-guide-link]");
      if (text) text.textContent = option.dataset.window;
      if (link) link.href = option.dataset.guide;
    });
  }
  // Simulation: poll the status while it is in progress.
  var sim = document.getElementById("simulation");
  if (sim && sim.dataset.status === "in_progress") {
    var labels = { ok: "Done", pending: "Waiting", failed: "Failed", not_reached: "Not yet" };
    var poll = function () {
      fetch(window.location.pathname, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (status) {
          if (!status) return;
          status.steps.forEach(function (step) {
            var li = document.querySelector('[data-step="' + step.step + '"]');
            if (!li) return;
            li.className = "step step-" + step.state;
            li.querySelector(".step-state").textContent = labels[step.state] || step.state;
            li.querySelector(".step-detail").textContent = step.detail;
          });
          var overall = document.getElementById("overall");
          sim.dataset.status = status.status;
          if (status.status === "ok") {
            overall.className = "banner ok";
            overall.textContent = "Every step succeeded: the set-up works.";
          } else if (status.status === "failed") {
            overall.className = "banner problem";
            overall.textContent = "A step failed: " + status.reason;
          }
          if (status.status === "in_progress") window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 2000);
  }
})();
