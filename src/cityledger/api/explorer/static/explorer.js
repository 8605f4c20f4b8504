// cityledger explorer: new blocks appear in the list without a reload.
// It asks the node's /status for the height every data-poll-ms milliseconds and, when the chain
// grew, reads each new block from /blocks/{height} (the REST API's JSON) and puts its row on top.
"use strict";
(function () {
  const table = document.getElementById("blocks");
  if (!table || table.dataset.live !== "on") return;
  const body = table.tBodies[0];
  const pollMs = Number(table.dataset.pollMs);
  const keep = Number(table.dataset.keep);
  let shown = Number(table.dataset.height);

  function cell(row, content) {
    const td = row.insertCell();
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    return td;
  }
  function link(href, text, mono) {
    const a = document.createElement("a");
    a.href = href; a.textContent = text;
    if (mono) a.className = "v";
    return a;
  }
  function showTime(ns) {
    const d = new Date(Math.floor(ns / 1e6));
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function addRow(block) {
    const placeholder = body.querySelector("td[colspan]");
    if (placeholder) placeholder.parentElement.remove();
    const row = body.insertRow(0);
    row.className = "new";
    cell(row, link("/explorer/block/" + block.height, String(block.height), false));
    cell(row, showTime(block.time_ns));
    if (block.tx_ids.length) {
      const list = document.createElement("ul");
      list.className = "txs";
      for (const id of block.tx_ids) {
        const item = document.createElement("li");
        item.appendChild(link("/explorer/tx/" + id, id.slice(0, 16) + "…", true));
        list.appendChild(item);
      }
      cell(row, list);
    } else {
      cell(row, "0");
    }
    cell(row, block.hash.slice(0, 16) + "…").className = "v";
    while (body.rows.length > keep) body.deleteRow(body.rows.length - 1);
  }
  async function poll() {
    try {
      const status = await (await fetch("/status", {cache: "no-store"})).json();
      document.getElementById("latest-height").textContent = String(status.height);
      document.getElementById("mempool").textContent = String(status.mempool_size);
      document.getElementById("txs-committed").textContent = String(status.txs_committed);
      const first = Math.max(shown + 1, status.height - keep + 1);
      for (let h = first; h <= status.height; h++) {
        const answer = await fetch("/blocks/" + h, {cache: "no-store"});
        if (answer.ok) addRow(await answer.json());
        shown = h;
      }
      if (first <= status.height) {
        document.getElementById("live").textContent = "Latest block: " + status.height;
      }
    } catch (err) {
      // The node restarting or the network dropping: keep the page as it is and ask again later.
    }
    setTimeout(poll, pollMs);
  }
  setTimeout(poll, pollMs);
})();
