// cityledger dashboard: draws each chart from its JSON route with plotly.js (served by the node).
"use strict";
(function () {
  const REFRESH_MS = 5000;
  const root = document.getElementById("dashboard");
  const blocks = Number(root.dataset.blocks);
  const days = Number(root.dataset.days);
  const modules = new Set(root.dataset.modules.split(" "));
  const config = {responsive: true, displaylogo: false, displayModeBar: false};
  // Heights are numbers; every other axis is a list of names or days, kept as written ("#2" stays "#2").
  const xType = (title) => title === "height" ? "linear" : "category";
  const layout = (xTitle, yTitle, extra) => Object.assign({margin: {l: 56, r: 12, t: 28, b: 40}, height: 280,
    xaxis: {title: {text: xTitle}, type: xType(xTitle), tickformat: xTitle === "height" ? "d" : "", automargin: true},
    yaxis: {title: {text: yTitle}, rangemode: "tozero", automargin: true},
    legend: {orientation: "h", x: 0, y: 1, yanchor: "bottom"}}, extra || {});
  const bar = (labels, values, name) => ({x: labels, y: values, type: "bar", name: name});

  function draw(id, traces, chartLayout) {
    Plotly.react(id, traces, chartLayout, config);
    document.getElementById(id).dataset.drawn = "yes";
  }
  async function get(path) {
    const answer = await fetch(path, {cache: "no-store"});
    if (!answer.ok) throw new Error(path + ": " + answer.status);
    return answer.json();
  }
  async function chain() {
    const data = await get("/dashboard/data/chain?blocks=" + blocks);
    document.getElementById("d-height").textContent = String(data.to_height);
    document.getElementById("d-mempool").textContent = String(data.mempool_size);
    draw("c-interval", [{x: data.heights, y: data.interval_ms, type: "scatter", mode: "lines+markers"}],
         layout("height", "ms"));
    draw("c-txs", [bar(data.heights, data.txs)], layout("height", "txs"));
    draw("c-modules", [bar(Object.keys(data.txs_by_module), Object.values(data.txs_by_module))],
         layout("module", "messages"));
  }
  async function validators() {
    const data = await get("/dashboard/data/validators?blocks=" + blocks);
    document.getElementById("d-validators").textContent = data.up + " of " + data.validators.length;
    const names = data.validators.map((v) => v.address.slice(0, 8));
    document.getElementById("d-signing").textContent = (data.source === "solo" ?
      "Solo engine: this node commits every block alone. " : "Signatures on the commits CometBFT handed this node. ") +
      data.heights.length + " commits, signed power " + (data.signed_power.length ?
      data.signed_power[data.signed_power.length - 1] : 0) + " of " + data.total_power + " in the newest.";
    draw("c-validators", [bar(names, data.validators.map((v) => v.signed), "commits signed"),
      bar(names, data.validators.map((v) => data.heights.length - v.signed), "missed")],
      layout("validator (address)", "commits", {barmode: "stack"}));
  }
  async function energy() {
    const data = await get("/dashboard/data/charging?days=" + days);
    draw("c-energy", [bar(data.days, data.sessions, "sessions"),
      {x: data.days, y: data.energy_wh.map((wh) => wh / 1000), type: "scatter", mode: "lines+markers", name: "kWh",
       yaxis: "y2"}],
      layout("day (UTC)", "sessions", {yaxis2: {title: {text: "kWh"}, overlaying: "y", side: "right",
        rangemode: "tozero", automargin: true}}));
  }
  async function devices() {
    const data = await get("/dashboard/data/devices");
    draw("c-devices", [bar(Object.keys(data.kinds), Object.values(data.kinds))], layout("kind", "devices"));
  }
  async function payments() {
    const data = await get("/dashboard/data/payments?days=" + days);
    const byKind = (series) => Object.keys(series).map((kind) => bar(data.days, series[kind], kind));
    draw("c-charging", byKind(data.redeemed).concat([{x: data.days, y: data.channels_opened,
         type: "scatter", mode: "lines+markers", name: "channels opened"}]),
         layout("day (UTC)", "count", {barmode: "stack"}));
    draw("c-paid", byKind(data.paid), layout("day (UTC)", "micro-credits", {barmode: "stack"}));
  }
  async function batteries() {
    const stages = (await get("/dashboard/data/batteries")).stages;
    draw("c-stages", [bar(Object.keys(stages), Object.values(stages))], layout("stage", "passports"));
    const alerts = await get("/dashboard/data/battery-alerts");
    document.getElementById("d-alerts").textContent = alerts.near_end_of_first_life + " in first life (of " +
      alerts.alerted + " alerted) at or below " + alerts.threshold_percent + " % state of certified energy" +
      (alerts.complete ? "" : "; more than one answer counts");
    draw("c-alerts", [bar(Object.keys(alerts.by_stage), Object.values(alerts.by_stage))],
         layout("stage now", "passports"));
    const recycling = await get("/dashboard/data/recycling");
    const elements = Object.keys(recycling.material_recovery);
    const rate = (name) => recycling.material_recovery[name].per_mille;
    const target = (name, index) => (recycling.material_recovery[name].targets[index] || {}).per_mille;
    const traces = [bar(elements, elements.map((n) => rate(n) === null ? null : rate(n) / 10), "recovered")];
    ["by end-2027", "by end-2031"].forEach((label, index) => traces.push({x: elements,
      y: elements.map((n) => target(n, index) === undefined ? null : target(n, index) / 10),
      type: "scatter", mode: "markers", marker: {symbol: "line-ew-open", size: 28}, name: "target " + label}));
    draw("c-recovery", traces, layout("element", "% recovered", {yaxis: {range: [0, 100], title: {text: "%"}, automargin: true}}));
  }
  async function rewards() {
    const data = await get("/dashboard/data/rewards");
    const names = data.programmes.map((p) => "#" + p.programme_id);
    draw("c-rewards", [bar(names, data.programmes.map((p) => p.budget), "budget"),
                       bar(names, data.programmes.map((p) => p.remaining), "remaining")],
         layout("programme", "micro-credits", {barmode: "group"}));
    draw("c-claims", [bar(names, data.programmes.map((p) => p.claims), "claims")], layout("programme", "claims"));
  }
  const charts = [chain, validators];
  if (root.dataset.charging === "yes") charts.push(energy);
  if (modules.has("devices")) charts.push(devices);
  if (modules.has("payments")) charts.push(payments);
  if (modules.has("batteries")) charts.push(batteries);
  if (modules.has("mobility")) charts.push(rewards);

  async function refresh() {
    // Each chart on its own: one that fails (the node restarting) keeps its last drawing, the others go on.
    await Promise.all(charts.map((chart) => chart().catch(() => undefined)));
    setTimeout(refresh, REFRESH_MS);
  }
  refresh();
})();
