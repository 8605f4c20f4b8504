// cityledger dashboard: draws each chart from its JSON route with plotly.js (served by the node).
"use strict";
(function () {
  const REFRESH_MS = 5000;
  const root = document.getElementById("dashboard");
  const blocks = Number(root.dataset.blocks);
  const config = {responsive: true, displaylogo: false, displayModeBar: false};
  const layout = (xTitle, yTitle) => ({margin: {l: 48, r: 12, t: 8, b: 40}, height: 260,
    xaxis: {title: {text: xTitle}, tickformat: xTitle === "height" ? "d" : ""}, yaxis: {title: {text: yTitle}, rangemode: "tozero"}});

  function draw(id, traces, chartLayout) {
    Plotly.react(id, traces, chartLayout, config);
    document.getElementById(id).dataset.drawn = "yes";
  }
  async function refresh() {
    try {
      const chain = await (await fetch("/dashboard/data/chain?blocks=" + blocks, {cache: "no-store"})).json();
      document.getElementById("d-height").textContent = String(chain.to_height);
      document.getElementById("d-mempool").textContent = String(chain.mempool_size);
      document.getElementById("d-validators").textContent = String(chain.validators);
      draw("c-interval", [{x: chain.heights, y: chain.interval_ms, type: "scatter", mode: "lines+markers"}],
           layout("height", "ms"));
      draw("c-txs", [{x: chain.heights, y: chain.txs, type: "bar"}], layout("height", "txs"));
      draw("c-modules", [{x: Object.keys(chain.txs_by_module), y: Object.values(chain.txs_by_module), type: "bar"}],
           layout("module", "messages"));
      if (root.dataset.batteries === "on") {
        const batteries = await (await fetch("/dashboard/data/batteries", {cache: "no-store"})).json();
        draw("c-stages", [{x: Object.keys(batteries.stages), y: Object.values(batteries.stages), type: "bar"}],
             layout("stage", "passports"));
      }
    } catch (err) {
      // The node restarting: keep the charts as they are and try again later.
    }
    setTimeout(refresh, REFRESH_MS);
  }
  refresh();
})();
