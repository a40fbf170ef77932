// Easel dashboard: the only script. Pages work without it; it refreshes progress bars and adds
// the juror page's keyboard shortcuts. Loaded from this origin (the CSP allows nothing inline).
"use strict";

(function () {
  // Progress bars (`div.progress[data-slug]`): refreshed every 5 s from /dashboard/progress.json.
  var bars = document.querySelectorAll("div.progress[data-slug]");
  if (bars.length > 0) {
    var refresh = function () {
      fetch("/dashboard/progress.json", { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (all) {
          if (!all) { return; }
          bars.forEach(function (bar) {
            var p = all[bar.dataset.slug];
            if (!p) { return; }
            var meter = bar.querySelector("progress");
            meter.max = Math.max(p.total, 1);
            meter.value = p.done + p.failed;
            bar.querySelector(".done").textContent = p.done;
            bar.querySelector(".failed").textContent = p.failed;
            bar.querySelector(".total").textContent = p.total;
          });
        })
        .catch(function () {});
    };
    setInterval(refresh, 5000);
  }

  // The juror's page: type a score and press Enter (the form's own behaviour); outside the
  // form fields, N / P go to the next / previous entry and C declares a conflict of interest.
  var judge = document.querySelector("form.judge-form");
  if (judge) {
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (typing) {
        if (event.key === "Escape") { target.blur(); }
        return;
      }
      var key = event.key.toLowerCase();
      var link = null;
      if (key === "n") { link = document.querySelector("a[rel=next]"); }
      if (key === "p") { link = document.querySelector("a[rel=prev]"); }
      if (link) { event.preventDefault(); window.location.assign(link.href); return; }
      if (key === "c") {
        var conflict = judge.querySelector("button[name=conflict]");
        if (conflict) { event.preventDefault(); conflict.click(); }
        return;
      }
      if (/^[0-9]$/.test(event.key)) {
        var score = judge.querySelector("input[name=score]");
        if (score) { event.preventDefault(); score.focus(); score.value = event.key; }
      }
    });
  }
})();
