// camkit report: renders the leaderboard of the chosen metric, the paired comparisons, and filters the
// gallery. Everything it needs is in the page (#report-data); it makes no network request.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var groups = {};
  data.groups.forEach(function (g) { groups[g.index] = g; });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function fmt(v) { return (v === null || v === undefined) ? "n/a" : v.toFixed(2); }

  function cellText(rec, board) {
    var text = rec.not_applicable ? "n/a" : rec.text;
    if (rec.direction > 0) { text += " \u25B2"; } else if (rec.direction < 0) { text += " \u25BC"; }
    if (rec.baseline) { text += " (baseline)"; }
    if (rec.best_overall) { text += " **"; } else if (rec.best_in_row) { text += " *"; }
    return text;
  }

  // Empty ``table`` and give it a caption and the header row (row title, then the test-cams); returns its body.
  function startTable(table, board, caption) {
    table.textContent = "";
    table.appendChild(el("caption", {}, caption));
    var head = el("tr");
    head.appendChild(el("th", {scope: "col"}, board.header));
    board.cols.forEach(function (c) { head.appendChild(el("th", {scope: "col"}, c)); });
    table.appendChild(el("thead")).appendChild(head);
    return table.appendChild(el("tbody"));
  }

  function renderBoard(gi, metric) {
    var board = groups[gi].leaderboards[metric];
    var table = document.getElementById("leaderboard-" + gi);
    var comp = document.getElementById("comparisons-" + gi);
    if (!board || !table) { return; }
    var byKey = {};
    board.records.forEach(function (r) { byKey[r.row + "\u0000" + r.test_cam] = r; });
    var better = board.lower_is_better ? " (lower is better)" : " (higher is better)";
    var body = startTable(table, board, board.title + (board.title.indexOf(better) >= 0 ? "" : better));
    board.rows.forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("th", {scope: "row"}, r));
      board.cols.forEach(function (c) {
        var rec = byKey[r + "\u0000" + c];
        var td = el("td", rec ? {"data-row": r, "data-col": c, "data-value": rec.value === null ? "" : String(rec.value)} : {},
                    rec ? cellText(rec, board) : "");
        if (rec && rec.best_overall) { td.className = "best-overall"; }
        else if (rec && rec.best_in_row) { td.className = "best-row"; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    var base = document.getElementById("baseline-" + gi);
    if (base) { base.textContent = board.baseline ? "baseline " + board.baseline.join(" x ") : "no baseline in this table"; }
    var method = document.getElementById("method-" + gi);
    if (method) { method.textContent = board.method ? board.method + ", alpha " + board.alpha : "no paired test"; }
    if (comp) {
      var b = startTable(comp, board, "Difference from the baseline and Holm-corrected p (" + metric + ")");
      board.rows.forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(el("th", {scope: "row"}, r));
        board.cols.forEach(function (c) {
          var rec = byKey[r + "\u0000" + c];
          var text = "";
          if (rec && rec.baseline) { text = "baseline"; }
          else if (rec && rec.difference !== null && rec.difference !== undefined) {
            text = (rec.difference >= 0 ? "+" : "") + rec.difference.toFixed(2) + " (p " + fmt(rec.p_holm) + ")";
            if (rec.significant) { text += rec.difference >= 0 ? " \u25B2" : " \u25BC"; }
          }
          tr.appendChild(el("td", {}, text));
        });
        b.appendChild(tr);
      });
    }
  }

  function filterGallery(gi) {
    var box = document.querySelector('.gallery-controls[data-group="' + gi + '"]');
    if (!box) { return; }
    var row = box.querySelector(".gal-row").value;
    var cam = box.querySelector(".gal-cam").value;
    var outcome = box.querySelector(".gal-outcome").value;
    var shown = 0;
    document.querySelectorAll('.gallery[data-group="' + gi + '"]').forEach(function (gal) {
      var active = gal.getAttribute("data-row") === row;
      gal.hidden = !active;
      if (!active) { return; }
      gal.querySelectorAll(".gal-image").forEach(function (im) {
        var any = false;
        im.querySelectorAll(".panel").forEach(function (p) {
          var c = p.getAttribute("data-cam");
          var tags = (p.getAttribute("data-tags") || "").split(" ");
          var camOk = !cam || c === cam || c === "image";
          var outOk = !outcome || c === "image" || tags.indexOf(outcome) >= 0;
          p.hidden = !(camOk && outOk);
          if (c !== "image" && camOk && (!outcome || tags.indexOf(outcome) >= 0)) { any = true; }
        });
        im.hidden = !any;
        if (any) { shown += 1; }
      });
    });
    var count = document.getElementById("gal-count-" + gi);
    if (count) { count.textContent = shown + " image" + (shown === 1 ? "" : "s"); }
  }

  document.querySelectorAll(".metric-select").forEach(function (sel) {
    var gi = sel.getAttribute("data-group");
    sel.addEventListener("change", function () { renderBoard(gi, sel.value); });
    renderBoard(gi, sel.value);
  });
  document.querySelectorAll(".gallery-controls").forEach(function (box) {
    var gi = box.getAttribute("data-group");
    box.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", function () { filterGallery(gi); }); });
    filterGallery(gi);
  });
  document.querySelectorAll(".toggle").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var on = btn.getAttribute("aria-pressed") !== "true";
      btn.setAttribute("aria-pressed", on ? "true" : "false");
      var curve = document.getElementById(btn.getAttribute("data-curve"));
      if (curve) { curve.style.display = on ? "" : "none"; }
    });
  });
  // A click on a picture opens it full size in a dialog (a plain link without JavaScript).
  var dialog = document.createElement("dialog");
  dialog.className = "viewer";
  dialog.setAttribute("aria-label", "Full-size picture");
  var big = dialog.appendChild(document.createElement("img"));
  var close = dialog.appendChild(el("button", {type: "button", "class": "close"}, "Close"));
  close.addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("click", function (e) { if (e.target === dialog) { dialog.close(); } });
  document.body.appendChild(dialog);
  document.querySelectorAll("a.open").forEach(function (a) {
    a.addEventListener("click", function (e) {
      if (typeof dialog.showModal !== "function") { return; }
      e.preventDefault();
      var img = a.querySelector("img");
      big.src = a.getAttribute("href");
      big.alt = img ? img.alt : "";
      dialog.showModal();
      close.focus();
    });
  });
  window.camkitReport = {renderBoard: renderBoard, filterGallery: filterGallery};

  // index.html#selftest: drive the page's own controls as a user would and write what they showed into
  // <pre id="selftest">, for a headless browser's --dump-dom (tests/test_report.py).
  if (window.location.hash === "#selftest") {
    var out = {leaderboards: {}, opened: {}, gallery: {}, toggles: 0};
    document.querySelectorAll(".metric-select").forEach(function (sel) {
      var gi = sel.getAttribute("data-group");
      out.leaderboards[gi] = {};
      // the metric the page opened on, and the table it drew for it, before the self-check switches
      var caption = document.querySelector("#leaderboard-" + gi + " caption");
      out.opened[gi] = {metric: sel.value, caption: caption ? caption.textContent : null};
      Array.prototype.forEach.call(sel.options, function (opt) {
        sel.value = opt.value;
        sel.dispatchEvent(new Event("change"));
        var cells = {};
        document.querySelectorAll("#leaderboard-" + gi + " td[data-row]").forEach(function (td) {
          cells[td.getAttribute("data-row") + " " + td.getAttribute("data-col")] = td.textContent;
        });
        out.leaderboards[gi][opt.value] = cells;
      });
    });
    document.querySelectorAll(".gallery-controls").forEach(function (box) {
      var gi = box.getAttribute("data-group");
      var outcome = box.querySelector(".gal-outcome");
      out.gallery[gi] = {};
      Array.prototype.forEach.call(outcome.options, function (opt) {
        outcome.value = opt.value;
        outcome.dispatchEvent(new Event("change"));
        out.gallery[gi][opt.value || "any"] = document.querySelectorAll(
          '.gallery[data-group="' + gi + '"]:not([hidden]) .gal-image:not([hidden])').length;
      });
      outcome.value = "";
      outcome.dispatchEvent(new Event("change"));
    });
    var first = document.querySelector(".toggle");
    if (first) {
      first.click();
      var curve = document.getElementById(first.getAttribute("data-curve"));
      out.toggles = (curve && curve.style.display === "none" && first.getAttribute("aria-pressed") === "false") ? 1 : 0;
      first.click();
    }
    document.body.appendChild(el("pre", {id: "selftest"}, JSON.stringify(out)));
  }
})();
