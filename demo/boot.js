// Loaded before PyScript: until the page's Python has started, a form must not do a plain HTML
// submission (the page would reload and lose what was typed, and Pyodide would start again).
// Every submit is stopped here; one made before Python listens is remembered and submitted
// again once it does (window.demoFormsReady, called by the page's Python).
(function () {
  "use strict";
  var queued = null;
  var ready = false;
  var started = performance.now();

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function progress() {
    var seconds = Math.round((performance.now() - started) / 1000);
    var waiting = queued ? " Your “" + queued.label + "” will go ahead as soon as it is ready." : "";
    each(".boot-progress", function (el) {
      el.textContent = "Starting Python in your browser (Pyodide)… " + seconds + " s." + waiting;
    });
  }

  document.addEventListener("submit", function (ev) {
    ev.preventDefault();  // every form of these pages is handled by Python, never posted
    if (ready) return;
    var button = ev.submitter || ev.target.querySelector("[type=submit]");
    queued = { form: ev.target, label: button ? button.textContent.trim() : "submit" };
    document.documentElement.dataset.queued = ev.target.id;
    progress();
  }, true);

  var timer = setInterval(progress, 500);
  document.addEventListener("DOMContentLoaded", progress);

  window.demoFormsReady = function (ok) {
    ready = true;
    clearInterval(timer);
    document.documentElement.dataset.python = ok ? "ready" : "failed";
    each(".boot-progress", function (el) { el.hidden = true; });
    each("fieldset[data-until-ready]", function (el) { el.disabled = !ok; });
    var pending = queued;
    queued = null;
    delete document.documentElement.dataset.queued;
    if (ok && pending && pending.form.isConnected) pending.form.requestSubmit();
  };
})();
