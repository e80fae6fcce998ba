// The Quality trends page's only script (dq/trends.py writes it beside the page).
// Each <script type="application/json" class="vega-spec" data-chart="ID"> holds a
// Vega-Lite spec; vega-embed draws it into the element with that id. `ast: true`
// makes Vega interpret expressions instead of compiling them with Function, so
// the page runs under a Content-Security-Policy without 'unsafe-eval'.
// When every chart is drawn (or failed), <body data-charts> says "done" and
// window.dqCharts maps chart ids to their Vega views (for tests).
(function () {
  "use strict";
  window.dqCharts = {};
  var blocks = document.querySelectorAll("script.vega-spec[type='application/json']");
  var pending = [];
  blocks.forEach(function (block) {
    var id = block.getAttribute("data-chart");
    var target = document.getElementById(id);
    if (!target) {
      return;
    }
    var drawn;
    try {
      drawn = vegaEmbed(target, JSON.parse(block.textContent), {
        ast: true,
        renderer: "svg",
        actions: { export: true, source: false, compiled: false, editor: false },
      }).then(function (result) {
        window.dqCharts[id] = result.view;
      });
    } catch (error) {
      drawn = Promise.reject(error);
    }
    pending.push(
      drawn.catch(function (error) {
        target.textContent = "This chart could not be drawn: " + error;
        console.error("chart " + id + ": " + error);
      })
    );
  });
  Promise.all(pending).then(function () {
    document.body.setAttribute("data-charts", "done");
  });
})();
