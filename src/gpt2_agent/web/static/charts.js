/* Charts drawn with uPlot: dashboard throughput, training loss curves and the reliability diagram. */
(function () {
  "use strict";
  var app = window.console2a;
  if (!window.uPlot) return;
  var css = getComputedStyle(document.documentElement);
  function color(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  var GOOD = color("--ok", "#1a7f37");
  var BAD = color("--bad", "#c62828");
  var MAIN = color("--accent", "#1f4e8c");
  var SECOND = color("--warn", "#b26a00");

  function size(el) {
    var width = Math.max(el.clientWidth || 300, 240);
    return { width: width, height: Math.round(Math.min(320, Math.max(180, width * 0.4))) };
  }

  function makeChart(el, options, data) {
    var dims = size(el);
    options.width = dims.width;
    options.height = dims.height;
    var chart = new window.uPlot(options, data, el);
    var timer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { chart.setSize(size(el)); }, 100);
    });
    return chart;
  }

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (r.status === 401 || r.redirected) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  var timeFormat = new Intl.DateTimeFormat(app.locale, { hour: "2-digit", minute: "2-digit" });

  // --- dashboard throughput -------------------------------------------------------------------
  var throughput = document.getElementById("throughput");
  if (throughput) {
    var chart = null;
    var summary = document.getElementById("throughput-summary");
    var load = function () {
      getJson(throughput.dataset.src).then(function (data) {
        var rows = [data.t, data.succeeded, data.failed];
        if (!chart) {
          chart = makeChart(throughput, {
            scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
            axes: [
              { values: function (u, ticks) { return ticks.map(function (t) { return timeFormat.format(new Date(t * 1000)); }); } },
              { values: function (u, ticks) { return ticks.map(function (t) { return app.formatNumber(t); }); } },
            ],
            series: [
              { label: throughput.dataset.labelTime, value: function (u, t) { return t == null ? "" : timeFormat.format(new Date(t * 1000)); } },
              { label: throughput.dataset.labelSucceeded, stroke: GOOD, width: 2, fill: GOOD + "22", points: { show: false } },
              { label: throughput.dataset.labelFailed, stroke: BAD, width: 2, points: { show: false } },
            ],
          }, rows);
        } else {
          chart.setData(rows);
        }
        var sum = function (xs) { return xs.reduce(function (a, b) { return a + b; }, 0); };
        if (summary && summary.dataset.template) {
          summary.textContent = app.format(summary.dataset.template, {
            succeeded: app.formatNumber(sum(data.succeeded)), failed: app.formatNumber(sum(data.failed)),
          });
        }
      }).catch(function () { /* the next poll tries again */ });
    };
    load();
    window.setInterval(load, 15000);
  }

  // --- training loss curves -------------------------------------------------------------------
  var loss = document.getElementById("loss-chart");
  if (loss) {
    var lossChart = null;
    var lossSummary = document.getElementById("loss-summary");
    var reliabilityDrawn = false;
    var terminal = ["succeeded", "failed", "cancelled", "completed"];
    var poll = function () {
      getJson(loss.dataset.src).then(function (data) {
        var c = data.curves;
        var rows = [c.step, c.loss, c.val_loss];
        if (!lossChart) {
          lossChart = makeChart(loss, {
            scales: { x: { time: false } },
            // Steps are whole numbers: no ticks at 2.5.
            axes: [{ label: loss.dataset.labelStep, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] }, {}],
            series: [
              { label: loss.dataset.labelStep },
              { label: loss.dataset.labelLoss, stroke: MAIN, width: 2, spanGaps: true, points: { show: true, size: 4 } },
              { label: loss.dataset.labelVal, stroke: SECOND, width: 2, spanGaps: true, points: { show: true, size: 6 } },
            ],
          }, rows);
        } else {
          lossChart.setData(rows);
        }
        loss.dataset.points = String(c.step.length);
        var last = c.loss.filter(function (v) { return v != null; }).pop();
        if (lossSummary && lossSummary.dataset.template) {
          lossSummary.textContent = app.format(lossSummary.dataset.template, {
            n: app.formatNumber(c.step.length), loss: last == null ? "—" : app.formatNumber(last, 4),
          });
        }
        drawReliability(data.reliability);
        var badge = document.getElementById("training-status");
        if (badge && data.status_html && loss.dataset.status !== data.status) badge.innerHTML = data.status_html;
        if (terminal.indexOf(data.status) < 0) window.setTimeout(poll, 2000);
        else if (loss.dataset.status && loss.dataset.status !== data.status) window.location.reload();
        loss.dataset.status = data.status;
      }).catch(function () { window.setTimeout(poll, 5000); });
    };
    var drawReliability = function (rel) {
      var el = document.getElementById("reliability-chart");
      if (!el || !rel || reliabilityDrawn) return;
      var conf = rel.confidence || (Array.isArray(rel) ? rel.map(function (b) { return b.confidence; }) : []);
      var acc = rel.accuracy || (Array.isArray(rel) ? rel.map(function (b) { return b.accuracy; }) : []);
      if (!conf.length) return;
      reliabilityDrawn = true;
      makeChart(el, {
        scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
        series: [
          { label: el.dataset.labelConf },
          { label: el.dataset.labelAcc, stroke: MAIN, width: 2, points: { show: true, size: 6 } },
          { label: "—", stroke: "#999", dash: [4, 4], width: 1 },
        ],
      }, [conf, acc, conf]);
    };
    poll();
  }
})();
