// nattery: live values over server-sent events. No framework, no build step.
// The page is complete without this script; it only keeps the numbers fresh.
(function () {
  "use strict";
  var lang = document.body.dataset.lang || "en";
  var fmt0 = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  var fmt1 = new Intl.NumberFormat(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var STALE_S = 60;
  var state = { ts: null, offset: 0, online: null };

  function power(w) {
    if (w === null || w === undefined) return "–";
    return Math.abs(w) >= 10000 ? fmt1.format(w / 1000) + " kW" : fmt0.format(w) + " W";
  }
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }
  function set(name, text) { all('[data-live="' + name + '"]').forEach(function (el) { el.textContent = text; }); }
  function direction(name, w) {
    all('[data-live="' + name + '"]').forEach(function (el) {
      el.textContent = w === null || Math.abs(w) < 10 ? el.dataset.idle : w > 0 ? el.dataset.in : el.dataset.out;
    });
  }
  function line(id, w, positiveIsIn) {
    var el = document.getElementById(id);
    if (!el) return;
    var cls = w === null || w === undefined || Math.abs(w) < 10 ? "idle" : (w > 0) === positiveIsIn ? "in" : "out";
    el.setAttribute("class", "line " + cls);
  }
  // As the server writes it: Python's float ("2.0"), and the enum's label ("2.0 (normal)").
  function registerText(v, enumJson) {
    if (v === null || v === undefined) return "–";
    var text = Number.isInteger(v) ? v.toFixed(1) : String(v);
    var label = enumJson && Number.isInteger(v) ? JSON.parse(enumJson)[String(v)] : undefined;
    return label === undefined ? text : text + " (" + label + ")";
  }
  function badge() {
    var el = document.querySelector('[data-live="online"]');
    if (!el) return;
    var age = state.ts === null ? null : Date.now() / 1000 - state.offset - state.ts;
    var on = state.online === true && age !== null && age < STALE_S;
    var off = state.online === false || (age !== null && age >= STALE_S);
    el.textContent = on ? el.dataset.on : off ? el.dataset.off : el.dataset.unknown;
    el.className = "badge " + (on ? "on" : off ? "off" : "");
    set("age", age === null ? "–" : fmt0.format(Math.max(0, age)) + " s");
  }
  function apply(d) {
    state.offset = Date.now() / 1000 - d.now;
    state.online = d.online;
    if (d.ts !== null) {
      state.ts = d.ts;
      set("pv_w", power(d.pv_w));
      set("load_w", power(d.load_w));
      set("battery_w", power(d.battery_w === null ? null : Math.abs(d.battery_w)));
      set("grid_w", power(d.grid_w === null ? null : Math.abs(d.grid_w)));
      direction("battery_dir", d.battery_w);
      direction("grid_dir", d.grid_w);
      set("soc_pct", d.soc_pct === null ? "–" : fmt0.format(d.soc_pct));
      set("state", d.state === null ? "–" : String(d.state));
      var meter = document.querySelector('[data-live="soc_meter"]');
      if (meter && d.soc_pct !== null) meter.value = d.soc_pct;
      line("line-pv", d.pv_w, true);
      line("line-load", d.load_w, false);
      line("line-battery", d.battery_w, true);
      line("line-grid", d.grid_w, true);
      if (d.registers) {
        Object.keys(d.registers).forEach(function (name) {
          var v = d.registers[name];
          all('[data-reg="' + name + '"]').forEach(function (el) { el.textContent = registerText(v, el.dataset.enum); });
          var raw = d.raw ? d.raw[name] : undefined;
          if (raw !== undefined) all('[data-raw="' + name + '"]').forEach(function (el) { el.textContent = raw === null ? "–" : String(raw); });
        });
      }
    }
    badge();
    document.body.dataset.liveTs = d.ts === null ? "" : String(d.ts);
  }

  var initial = document.getElementById("live-data");
  if (!initial || !window.EventSource) return;
  apply(JSON.parse(initial.textContent));
  var url = "/live" + (document.querySelector("[data-reg]") ? "?registers=1" : "");
  var source = new EventSource(url);
  source.addEventListener("telemetry", function (e) { apply(JSON.parse(e.data)); });
  setInterval(badge, 1000);
})();
