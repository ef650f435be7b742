// Price and plan charts (uPlot, vendored under /static/vendor/uplot). Known prices are a solid
// line, forecast prices a dashed one, so the homeowner sees which part is certain.
(function () {
  "use strict";
  var node = document.getElementById("prices-data");
  if (!node || !window.uPlot) return;
  var data = JSON.parse(node.textContent);
  var lang = document.body.dataset.lang || "en";
  var tz = document.body.dataset.tz;

  function width(el) { return Math.max(300, el.clientWidth); }
  function axisTime() {
    return {
      space: 64,
      values: function (u, ticks) {
        // two days of quarter-hours on a phone leave room for few ticks: midnight says which day
        return ticks.map(function (t) {
          var clock = new Date(t * 1000).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: tz });
          if (clock !== "00:00") return clock;
          return new Date(t * 1000).toLocaleDateString(lang, { weekday: "short", day: "numeric", timeZone: tz });
        });
      },
    };
  }
  function charts() {
    var priceEl = document.getElementById("price-chart");
    if (priceEl && data.prices.length) {
      var xs = [], known = [], fc = [];
      data.prices.forEach(function (p, i) {
        xs.push(p.ts);
        var ct = p.eur_mwh / 10;
        known.push(p.forecast ? null : ct);
        fc.push(p.forecast ? ct : null);
        // join the dashed forecast to the last known point so the line does not break
        if (p.forecast && i > 0 && !data.prices[i - 1].forecast) fc[i - 1] = data.prices[i - 1].eur_mwh / 10;
      });
      priceEl.textContent = "";
      new uPlot({
        width: width(priceEl), height: 240, tzDate: tz ? function (ts) { return uPlot.tzDate(new Date(ts * 1e3), tz); } : undefined,
        series: [{ label: lang === "de" ? "Zeit" : "Time" }, { label: lang === "de" ? "Börsenpreis" : "Market price", stroke: "#0b5cad", width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
          { label: lang === "de" ? "Prognose" : "Forecast", stroke: "#c05800", width: 2, dash: [6, 4], paths: uPlot.paths.stepped({ align: 1 }) }],
        axes: [axisTime(), { label: "ct/kWh" }],
        legend: { show: true },
      }, [xs, known, fc], priceEl);
    }
    var planEl = document.getElementById("plan-chart");
    if (planEl && data.plan && data.plan.slots.length) {
      var px = [], pw = [], soc = [];
      data.plan.slots.forEach(function (s) { px.push(s.ts); pw.push(s.battery_w); soc.push(s.soc_pct); });
      planEl.textContent = "";
      new uPlot({
        width: width(planEl), height: 240,
        scales: { soc: { range: [0, 100] } },
        series: [{ label: lang === "de" ? "Zeit" : "Time" }, { label: "W", stroke: "#1b7a33", fill: "rgba(27,122,51,0.25)", paths: uPlot.paths.stepped({ align: 1 }) },
          { label: "%", stroke: "#5b3fa8", width: 2, scale: "soc" }],
        axes: [axisTime(), { label: "W" }, { scale: "soc", side: 1, label: "%", grid: { show: false } }],
      }, [px, pw, soc], planEl);
    }
  }
  charts();
  var timer;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(charts, 200); });
})();
