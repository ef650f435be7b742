// Price and plan charts (uPlot, vendored under /static/vendor/uplot), on one time axis from today
// 00:00 to the end of tomorrow with a "now" line. The price chart shows what the homeowner pays
// for import (known solid, forecast dashed, only where a forecast exists) and gets for export,
// with the spot price as a thin line; the plan chart shows charging and discharging in their own
// colours and the planned charge level. Hover values carry units, local 24-hour time and the
// page's language; a value that rounds to zero is shown as 0, never -0.
(function () {
  "use strict";
  var node = document.getElementById("prices-data");
  if (!node || !window.uPlot) return;
  var data = JSON.parse(node.textContent);
  var lang = document.body.dataset.lang || "en";
  var tz = document.body.dataset.tz;
  var de = lang === "de";

  function num(v, digits) {
    if (v == null || isNaN(v)) return "–";
    var text = new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
    return /^-[0,.]*$/.test(text) ? text.slice(1) : text;
  }
  function unit(u, digits) { return function (self, v) { return v == null ? "–" : num(v, digits) + " " + u; }; }
  function when(t) {
    var d = new Date(t * 1000);
    return d.toLocaleDateString(lang, { weekday: "short", day: "numeric", month: "numeric", timeZone: tz }) + " " +
      d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: tz });
  }
  function width(el) { return Math.max(300, el.clientWidth); }
  function axisTime() {
    return {
      space: 64,
      values: function (u, ticks) {
        // midnight says which day; other ticks are 24-hour local time
        return ticks.map(function (t) {
          var clock = new Date(t * 1000).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: tz });
          if (clock !== "00:00") return clock;
          return new Date(t * 1000).toLocaleDateString(lang, { weekday: "short", day: "numeric", timeZone: tz });
        });
      },
    };
  }
  function nowLine(u) {
    var x = Math.round(u.valToPos(data.now, "x", true));
    var ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#b00020"; ctx.lineWidth = 2 * devicePixelRatio; ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    ctx.restore();
  }
  function options(el, series, axes, scales) {
    scales.x = { time: true, range: [data.start, data.end] };
    return {
      width: width(el), height: 240, series: [{ label: de ? "Zeit" : "Time", value: function (u, t) { return t == null ? "–" : when(t); } }].concat(series),
      axes: [axisTime()].concat(axes), scales: scales, hooks: { draw: [nowLine] },
      tzDate: tz ? function (ts) { return uPlot.tzDate(new Date(ts * 1e3), tz); } : undefined,
    };
  }
  var stepped = function () { return uPlot.paths.stepped({ align: 1 }); };
  function charts() {
    var priceEl = document.getElementById("price-chart");
    if (priceEl && data.prices.length) {
      var xs = [], known = [], fc = [], exp = [], spot = [], anyForecast = false;
      data.prices.forEach(function (p, i) {
        var imp = (p.import_eur_mwh != null ? p.import_eur_mwh : p.eur_mwh) / 10;
        xs.push(p.ts);
        known.push(p.forecast ? null : imp);
        fc.push(p.forecast ? imp : null);
        exp.push(p.export_eur_mwh != null ? p.export_eur_mwh / 10 : null);
        spot.push(p.eur_mwh / 10);
        anyForecast = anyForecast || p.forecast;
        // join the dashed forecast to the last known point so the line does not break
        if (p.forecast && i > 0 && !data.prices[i - 1].forecast) fc[i - 1] = known[i - 1];
      });
      var ct = unit("ct/kWh", 1);
      var series = [{ label: de ? "Bezug (Sie zahlen)" : "Import (you pay)", stroke: "#0b5cad", width: 2, paths: stepped(), value: ct }];
      var columns = [xs, known];
      if (anyForecast) {
        series.push({ label: de ? "Bezug, Prognose" : "Import, forecast", stroke: "#c05800", width: 2, dash: [6, 4], paths: stepped(), value: ct });
        columns.push(fc);
      }
      series.push({ label: de ? "Einspeisung (Sie erhalten)" : "Export (you get)", stroke: "#1b7a33", width: 1.5, paths: stepped(), value: ct });
      series.push({ label: de ? "Börsenpreis" : "Spot price", stroke: "#777", width: 1, paths: stepped(), value: ct });
      columns.push(exp, spot);
      priceEl.textContent = "";
      // an empty right axis as wide as the plan chart's % axis: both plots span the same pixels
      var blank = { side: 1, label: " ", size: 50, grid: { show: false }, ticks: { show: false }, values: function (u, ticks) { return ticks.map(function () { return ""; }); } };
      new uPlot(options(priceEl, series, [{ label: "ct/kWh", size: 60 }, blank], {}), columns, priceEl);
    }
    var planEl = document.getElementById("plan-chart");
    if (planEl && data.plan && data.plan.slots.length) {
      var px = [], charge = [], discharge = [], soc = [];
      data.plan.slots.forEach(function (s) {
        px.push(s.ts);
        charge.push(s.battery_w < 0 ? -s.battery_w : 0);
        discharge.push(s.battery_w > 0 ? s.battery_w : 0);
        soc.push(s.soc_pct);
      });
      var watts = unit("W", 0);
      planEl.textContent = "";
      new uPlot(options(planEl, [
        { label: de ? "Laden" : "Charging", stroke: "#2f6fdf", fill: "rgba(47,111,223,0.35)", paths: stepped(), value: watts },
        { label: de ? "Entladen" : "Discharging", stroke: "#d35400", fill: "rgba(211,84,0,0.35)", paths: stepped(), value: watts },
        { label: de ? "Ladestand" : "Charge level", stroke: "#5b3fa8", width: 2, scale: "soc", value: unit("%", 0) },
      ], [{ label: "W", size: 60 }, { scale: "soc", side: 1, label: "%", size: 50, grid: { show: false } }], { soc: { range: [0, 100] } }),
      [px, charge, discharge, soc], planEl);
    }
  }
  charts();
  var timer;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(charts, 200); });
})();
