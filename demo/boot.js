// Loaded before PyScript: until the page's Python has started, a form must not do a plain HTML
// submission (the page would reload and lose what was typed, and Pyodide would start again).
// Every submit is stopped here; one made before Python listens is remembered and submitted
// again once it does (window.demoFormsReady, called by the page's Python).
// The chat runs on Pyodide, or on MicroPython with ?python=micropython (window.demoInterpreter).
(function () {
  "use strict";
  var queued = null;
  var ready = false;
  var started = performance.now();
  var micropython = new URLSearchParams(location.search).get("python") === "micropython";
  var interpreter = micropython ? "MicroPython" : "Pyodide";

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function progress() {
    var seconds = Math.round((performance.now() - started) / 1000);
    var waiting = queued ? " Your “" + queued.label + "” will go ahead as soon as it is ready." : "";
    each(".boot-progress", function (el) {
      el.textContent = "Starting Python in your browser (" + interpreter + ")… " + seconds + " s." + waiting;
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

  // Called right after the page's <script type="py">, before PyScript looks for it: on
  // MicroPython it becomes type="mpy"; the page names its interpreter and the switch between
  // the two keeps the other URL options (room, dev, node).
  window.demoInterpreter = function (script) {
    if (micropython) {
      script.type = "mpy";
      script.setAttribute("config", "/pyscript-mpy.toml");
    }
    document.documentElement.dataset.interpreter = micropython ? "micropython" : "pyodide";
    each(".python-name", function (el) { el.textContent = interpreter; });
    each("a[data-python]", function (a) {
      var query = new URLSearchParams(location.search);
      if (a.dataset.python === "micropython") query.set("python", "micropython");
      else query.delete("python");
      a.search = query.toString();
      if ((a.dataset.python === "micropython") === micropython) a.setAttribute("aria-current", "page");
    });
  };

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
