/* iqa report: draws the page from the JSON embedded in index.html.
   Plain JavaScript, no library, works from file://. Every text from the data is set with
   textContent and every link with setAttribute, so names are never parsed as HTML. */
(function () {
  "use strict";

  var D = JSON.parse(document.getElementById("iqa-data").textContent);
  var METRICS = D.metrics;
  var METHODS = D.methods.map(function (m) { return m.name; });

  // -- helpers -------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) { return; }
        if (k === "text") { node.textContent = String(v); }
        else if (k === "className") { node.className = v; }
        else { node.setAttribute(k, String(v)); }
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function section(id) { return document.getElementById(id); }

  /* A value from the data: numbers as they are; "inf", "-inf", "nan" as the numbers they name. */
  function num(v) {
    if (v === null || v === undefined) { return null; }
    if (typeof v === "number") { return v; }
    if (v === "inf") { return Infinity; }
    if (v === "-inf") { return -Infinity; }
    if (v === "nan") { return NaN; }
    return Number(v);
  }

  /* Five significant digits for display; the full value goes into data-value and title. */
  function fmt(v) {
    v = num(v);
    if (v === null) { return "–"; }
    if (Number.isNaN(v)) { return "nan"; }
    if (v === Infinity) { return "inf"; }
    if (v === -Infinity) { return "-inf"; }
    if (v === 0) { return "0"; }
    var a = Math.abs(v);
    if (a >= 1e-3 && a < 1e6) {
      return v.toFixed(Math.max(0, 4 - Math.floor(Math.log10(a))));
    }
    return v.toExponential(4);
  }

  function raw(v) {
    v = num(v);
    if (v === null) { return ""; }
    if (Number.isNaN(v)) { return "nan"; }
    if (v === Infinity) { return "inf"; }
    if (v === -Infinity) { return "-inf"; }
    return String(v);
  }

  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }

  function metricLabel(m) { return m.unit ? m.label + " (" + m.unit + ")" : m.label; }

  function direction(m) {
    return m.higher === true ? "higher is better" : m.higher === false ? "lower is better" : "direction unknown";
  }

  function link(href, text, cls) {
    if (href) { return el("a", { href: href, text: text, className: cls || null }); }
    return el("span", { text: text, className: "missing-link", title: "file not found" });
  }

  // -- header and warnings -------------------------------------------------------------

  function drawHeader() {
    var what = D.kind === "compare"
      ? METHODS.length + " methods, baseline " + D.baseline + ", " + D.table.keys.length + " images" +
        (D.n_common !== null && D.n_common !== undefined ? " (" + D.n_common + " scored by every method)" : "")
      : "one score file, " + D.table.keys.length + " images";
    section("subtitle").textContent = what + " · " + D.provenance.source;
    if (D.warnings.length) {
      var w = section("warnings");
      w.hidden = false;
      w.appendChild(el("h2", { text: "Warnings" }));
      w.appendChild(el("ul", null, D.warnings.map(function (t) { return el("li", { text: t }); })));
    }
  }

  // -- summary -------------------------------------------------------------------------

  /* The value ★ ranks by: the mean of the finite values, after the share of infinite values
     (PSNR of identical images), which counts as the best possible value where higher is
     better and the worst where lower is. A method whose every value is inf (identical to the
     reference) therefore ranks first for PSNR, though its finite mean is undefined. */
  function rankKey(metric, s) {
    if (!s || !s.n) { return null; }
    var mean = num(s.mean), share = (s.n_inf || 0) / s.n;
    if ((mean === null || Number.isNaN(mean)) && !share) { return null; }
    var sign = metric.higher ? 1 : -1;
    return [sign * share, mean === null || Number.isNaN(mean) ? -Infinity : sign * mean];
  }

  function bestMethods(metric) {
    if (metric.higher === null || metric.higher === undefined || METHODS.length < 2) { return []; }
    var best = null, who = [];
    METHODS.forEach(function (name) {
      var k = rankKey(metric, (D.summary[name] || {})[metric.key]);
      if (k === null) { return; }
      var cmp = best === null ? 1 : k[0] !== best[0] ? (k[0] > best[0] ? 1 : -1) :
        k[1] === best[1] ? 0 : (k[1] > best[1] ? 1 : -1);
      if (cmp > 0) { best = k; who = [name]; }
      else if (cmp === 0) { who.push(name); }
    });
    return who;
  }

  /* Whether a paired cell is better or worse than the baseline: the test's own direction
     (summary.json's "direction", from the signed-rank statistic); for a summary written
     before it was recorded, the sign of wins − losses. */
  function pairedDirection(p, m) {
    if (p.direction !== undefined) { return p.direction; }
    if (m.higher === null || m.higher === undefined) { return null; }
    var lean = (p.wins || 0) - (p.losses || 0);
    return lean > 0 ? "better" : lean < 0 ? "worse" : null;
  }

  function ciNote(how) {
    var st = D.statistics || {};
    var usual = st.bootstrap ? st.bootstrap.method : null;
    return how && usual && how !== usual ? " (" + how + ")" : "";
  }

  function drawSummary() {
    var box = section("summary");
    var head = el("tr", null, [el("th", { text: "method" })].concat(METRICS.map(function (m) {
      return el("th", { title: direction(m) }, [metricLabel(m) + " ", el("span", { className: "muted",
        text: m.higher === true ? "↑" : m.higher === false ? "↓" : "" })]);
    })));
    var bests = {};
    METRICS.forEach(function (m) { bests[m.key] = bestMethods(m); });
    var rows = METHODS.map(function (name) {
      var isBase = name === D.baseline;
      var cells = [el("th", { scope: "row" }, [name, isBase ? el("span", { className: "muted", text: " (baseline)" }) : null])];
      METRICS.forEach(function (m) {
        var s = (D.summary[name] || {})[m.key] || {};
        var p = ((D.paired || {})[name] || {})[m.key];
        var best = bests[m.key].indexOf(name) >= 0;
        var cls = ["num"];
        if (best) { cls.push("best"); }
        var attrs = { "data-method": name, "data-metric": m.key, "data-mean": raw(s.mean),
          "data-median": raw(s.median), "data-std": raw(s.std), "data-n": raw(s.n),
          "data-ci-low": raw(s.ci_low), "data-ci-high": raw(s.ci_high), "data-best": best ? "true" : "false" };
        var allInf = s.mean === null && s.n > 0 && s.n_inf === s.n;  // every value inf: so is the mean
        var parts = [el("div", { className: "mean", text: (allInf ? "inf" : fmt(s.mean)) + (best ? " ★" : ""),
          title: (allInf ? "every value is infinite (identical to the reference)" : "") +
            (best ? (allInf ? "; " : "") + "best mean (" + direction(m) + ")" : "") || null })];
        if (s.ci_low !== undefined) {
          var conf = D.statistics && D.statistics.confidence ? Math.round(100 * D.statistics.confidence) + "% CI " : "CI ";
          parts.push(el("div", { className: "ci", "data-ci-method": s.ci_method || null,
            text: conf + "[" + fmt(s.ci_low) + ", " + fmt(s.ci_high) + "]" + ciNote(s.ci_method) }));
        }
        var sub = "median " + fmt(s.median) + " · sd " + fmt(s.std) + " · n " + (s.n === undefined ? "–" : s.n);
        if (s.n_inf) { sub += " (" + s.n_inf + " inf)"; }
        if (s.min !== undefined) { sub += " · min " + fmt(s.min) + " · max " + fmt(s.max); }
        if (s.failed) { sub += " · " + s.failed + " failed"; }
        if (s.missing) { sub += " · " + s.missing + " missing"; }
        parts.push(el("div", { className: "sub", text: sub }));
        if (p) {
          var d = num(p.diff);
          var dir = pairedDirection(p, m);
          var better = dir === "better";
          var mark = "";
          if (p.significant === true && dir) {
            cls.push(better ? "sig-better" : "sig-worse");
            mark = better ? "▲ " : "▼ ";
          }
          attrs["data-diff"] = raw(p.diff);
          attrs["data-p-holm"] = raw(p.p_holm);
          attrs["data-significant"] = p.significant ? "true" : "false";
          attrs["data-direction"] = dir || "";
          var nDiff = p.n_diff === undefined ? p.n : p.n_diff;
          var delta = d === null || Number.isNaN(d) ? "Δ no finite difference" :
            "Δ " + (d > 0 ? "+" : "") + fmt(p.diff) + " [" + fmt(p.ci_low) + ", " + fmt(p.ci_high) + "]" +
            ciNote(p.ci_method) + (nDiff !== p.n ? " over " + nDiff + " finite" : "");
          parts.push(el("div", { className: "paired", title: p.significant && dir
              ? "significantly " + dir + " than " + D.baseline + " (Holm-adjusted p; direction of the signed-rank test)"
              : "not significantly different from " + D.baseline,
            text: mark + delta + " · p " + fmt(p.p_value) + ", Holm " + fmt(p.p_holm) + " · wins " + pct(p.win_rate) +
              ", ties " + pct(p.tie_rate) + " (n " + p.n + ")" }));
        }
        attrs.className = cls.join(" ");
        cells.push(el("td", attrs, parts));
      });
      return el("tr", { "data-method": name }, cells);
    });
    box.appendChild(el("table", { className: "summary", id: "summary-table" }, [el("thead", null, [head]), el("tbody", null, rows)]));
    var legend = METHODS.length > 1 ? "★ best mean per metric (↑ higher is better, ↓ lower is better, from the metric " +
      "registry); where values are infinite (PSNR of identical images), the method with the larger share of them " +
      "ranks first for a higher-is-better metric, then the mean of the finite values." :
      "↑ higher is better, ↓ lower is better (from the metric registry).";
    if (D.kind === "compare") {
      var st = D.statistics || {};
      legend += " Δ: mean of method − " + D.baseline + " over the images every method scored where both values " +
        "are finite (\"over k finite\" where that is fewer than n), with its " +
        (st.bootstrap ? "paired " + st.bootstrap.method + " bootstrap (" + st.bootstrap.n_resamples + " resamples, seed " +
          st.bootstrap.seed + "; another interval method, where the data needed one, is named beside the interval)"
          : "bootstrap") + " interval; p: " + (st.test || "paired test") + " over all n images, Holm: " +
        (st.adjustment || "adjusted") + "; ▲/▼ significantly better/worse (Holm p ≤ " +
        (st.alpha === undefined ? "alpha" : st.alpha) + "), the direction being the signed-rank test's, which counts " +
        "infinite values that Δ leaves out. Wins: share of images on which the method is better.";
      if (st.inf) { legend += " " + st.inf; }
    }
    box.appendChild(el("p", { className: "legend", text: legend }));
    var missing = D.methods.filter(function (m) { return m.n_missing; });
    if (missing.length) {
      box.appendChild(el("details", null, [el("summary", { text: "Images missing from some methods" })].concat(
        missing.map(function (m) {
          return el("p", null, [el("strong", { text: m.name + ": " + m.n_missing + " missing" }), el("br"),
            m.missing.join(", ") + (m.missing.length < m.n_missing ? " ..." : "")]);
        }))));
    }
  }

  // -- plots ---------------------------------------------------------------------------

  function drawPlots() {
    var box = section("plots");
    METRICS.forEach(function (m) {
      var p = D.plots[m.key];
      if (!p) { return; }
      box.appendChild(el("h3", { text: metricLabel(m) + " · " + direction(m) }));
      [["distribution", "per-image values of every method (violin and box plot; histograms)"],
       ["differences", "paired differences, method − " + D.baseline + ", per image"]].forEach(function (kind) {
        if (!p[kind[0]]) { return; }
        box.appendChild(el("figure", { className: "plot" }, [
          el("img", { src: p[kind[0]], alt: m.label + " " + kind[0], className: "plot-img" }),
          el("figcaption", { className: "muted", text: m.label + ": " + kind[1] })]));
      });
      (p.notes || []).forEach(function (t) { box.appendChild(el("p", { className: "muted", text: t })); });
    });
  }

  // -- per-image table -----------------------------------------------------------------

  var T = { rows: [], view: [], sortCol: null, sortDir: 1, page: 0, size: 50, filter: "" };

  function buildRows() {
    var t = D.table;
    T.rows = t.keys.map(function (key, i) {
      var vals = [];
      METRICS.forEach(function (m) {
        t.methods.forEach(function (tm) { vals.push(num(tm.values[m.key][i])); });
      });
      return { i: i, key: key, lower: key.toLowerCase(), vals: vals };
    });
  }

  function compareRows(a, b) {
    if (T.sortCol === null) { return a.i - b.i; }
    if (T.sortCol === -1) { return T.sortDir * (a.key < b.key ? -1 : a.key > b.key ? 1 : 0); }
    var x = a.vals[T.sortCol], y = b.vals[T.sortCol];
    var xm = x === null || Number.isNaN(x), ym = y === null || Number.isNaN(y);
    if (xm || ym) { return xm && ym ? a.i - b.i : xm ? 1 : -1; }  // no value: always last
    if (x === y) { return a.i - b.i; }
    return T.sortDir * (x < y ? -1 : 1);
  }

  function refresh() {
    var f = T.filter;
    T.view = T.rows.filter(function (r) { return !f || r.lower.indexOf(f) >= 0; });
    T.view.sort(compareRows);
    var pages = Math.max(1, Math.ceil(T.view.length / T.size));
    T.page = Math.min(T.page, pages - 1);
    drawBody();
  }

  function valueCell(tm, m, i) {
    if (!tm.present[i]) {
      return el("td", { className: "num absent", text: "–", title: "not scored by " + tm.name,
        "data-method": tm.name, "data-metric": m.key, "data-value": "" });
    }
    var v = tm.values[m.key][i];
    var failed = v === null;
    // iqa score's row of a reference without a distorted partner: missing, as iqa compare says.
    var missing = failed && tm.paired && tm.paired[i] === false;
    var word = missing ? "missing" : "failed";
    return el("td", { className: "num" + (failed ? " failed" : ""), "data-method": tm.name, "data-metric": m.key,
      "data-value": raw(v), title: failed ? (tm.error[i] || word) : raw(v), text: failed ? word : fmt(v) });
  }

  function drawBody() {
    var t = D.table, body = document.getElementById("image-rows");
    var start = T.page * T.size, rows = T.view.slice(start, start + T.size);
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var i = r.i;
      var cells = [el("td", { className: "name" }, [link(t.ref[i], r.key)])];
      METRICS.forEach(function (m) { t.methods.forEach(function (tm) { cells.push(valueCell(tm, m, i)); }); });
      var files = [link(t.ref[i], "reference")];
      t.methods.forEach(function (tm) {
        if (tm.present[i]) { files.push(link(tm.out[i], tm.name)); }
        if (tm.error[i]) { files.push(el("span", { className: "failed", title: tm.error[i], text: "⚠ " + tm.name })); }
      });
      cells.push(el("td", { className: "files" }, files));
      frag.appendChild(el("tr", { "data-key": r.key }, cells));
    });
    body.textContent = "";
    body.appendChild(frag);
    var total = T.rows.length, shown = T.view.length;
    document.getElementById("page-info").textContent = shown === 0 ? "no image matches" :
      "images " + (start + 1) + "–" + (start + rows.length) + " of " + shown +
      (shown < total ? " (filtered from " + total + ")" : "");
    document.getElementById("prev-page").disabled = T.page === 0;
    document.getElementById("next-page").disabled = start + T.size >= shown;
  }

  function sortBy(col, th) {
    if (T.sortCol === col) { T.sortDir = -T.sortDir; } else { T.sortCol = col; T.sortDir = 1; }
    document.querySelectorAll("#image-table th.sortable").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", T.sortDir > 0 ? "ascending" : "descending");
    T.page = 0;
    refresh();
  }

  function drawImages() {
    var box = section("images");
    var filter = el("input", { type: "search", id: "filter", placeholder: "filter by name", "aria-label": "filter by name" });
    var size = el("select", { id: "page-size", "aria-label": "rows per page" }, [25, 50, 100, 500].map(function (n) {
      return el("option", { value: n, text: n + " per page", selected: n === T.size ? "selected" : null });
    }));
    var prev = el("button", { id: "prev-page", type: "button", text: "◀ previous" });
    var next = el("button", { id: "next-page", type: "button", text: "next ▶" });
    box.appendChild(el("div", { className: "controls" }, [filter, size, prev, next, el("span", { id: "page-info" })]));
    var top = [el("th", { rowspan: 2, className: "sortable", "data-col": -1, text: "image", title: "sort by name" })];
    var second = [];
    var col = 0;
    METRICS.forEach(function (m) {
      top.push(el("th", { colspan: D.table.methods.length, title: direction(m),
        text: metricLabel(m) + (m.higher === true ? " ↑" : m.higher === false ? " ↓" : "") }));
      D.table.methods.forEach(function (tm) {
        second.push(el("th", { className: "sortable", "data-col": col, "data-metric": m.key, "data-method": tm.name,
          text: tm.name, title: "sort by " + m.label + " of " + tm.name }));
        col += 1;
      });
    });
    top.push(el("th", { rowspan: 2, text: "files" }));
    var table = el("table", { id: "image-table" }, [
      el("thead", null, [el("tr", null, top), el("tr", null, second)]), el("tbody", { id: "image-rows" })]);
    box.appendChild(table);
    box.appendChild(el("p", { className: "legend", text: "Click a column to sort (again to reverse; empty cells last). " +
      "Names link to the reference, the files column to each method's output (full size, not copied)." }));
    table.querySelectorAll("th.sortable").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(Number(th.getAttribute("data-col")), th); });
    });
    filter.addEventListener("input", function () { T.filter = filter.value.toLowerCase(); T.page = 0; refresh(); });
    size.addEventListener("change", function () { T.size = Number(size.value); T.page = 0; refresh(); });
    prev.addEventListener("click", function () { T.page = Math.max(0, T.page - 1); drawBody(); });
    next.addEventListener("click", function () { T.page += 1; drawBody(); });
    buildRows();
    refresh();
  }

  // -- galleries -----------------------------------------------------------------------

  function tile(t) {
    var img = el("img", { src: t.thumb, alt: t.label, title: t.note || t.label, className: "thumb" });
    var pic = t.href ? el("a", { href: t.href }, [img]) : img;
    return el("div", { className: "tile" }, [pic, el("span", { text: t.label })]);
  }

  function metricOf(key) { return METRICS.filter(function (m) { return m.key === key; })[0]; }

  function drawGroup(box, heading, group) {
    var m = metricOf(group.metric);
    var details = el("details", { open: "open", className: "gallery" }, [el("summary", null, [el("strong", { text: heading })])]);
    var cards = el("div", { className: "cards" });
    group.items.forEach(function (item) {
      var vals = Object.keys(item.values).map(function (name) { return name + " " + fmt(item.values[name]); }).join(" · ");
      if (item.diff !== undefined) { vals += " · Δ " + fmt(item.diff); }
      cards.appendChild(el("figure", { className: "card", "data-key": item.key }, [
        el("figcaption", null, [item.key, el("span", { className: "muted", text: " — " + m.label + ": " + vals })]),
        el("div", { className: "tiles" }, item.tiles.map(tile))]));
    });
    details.appendChild(cards);
    box.appendChild(details);
  }

  function drawGalleries() {
    var box = section("galleries");
    var g = D.galleries;
    if (!g.worst.length && !g.differ.length) {
      box.appendChild(el("p", { className: "muted", text: "No galleries (gallery size 0, or no values)." }));
      return;
    }
    var mapNote = "Previews are at most a few hundred pixels; click one for the full-size file. Heat maps are drawn " +
      "with the scoring settings: bright = different.";
    box.appendChild(el("p", { className: "legend", text: mapNote }));
    if (D.lpips_note) { box.appendChild(el("p", { className: "warning", id: "lpips-note", text: D.lpips_note })); }
    box.appendChild(el("h3", { text: "The " + D.gallery_size + " worst images per metric and method" }));
    g.worst.forEach(function (group) {
      var m = metricOf(group.metric);
      drawGroup(box, m.label + " · " + group.methods[0] + " (" + direction(m) + ")", group);
    });
    if (g.differ.length) {
      box.appendChild(el("h3", { text: "The " + D.gallery_size + " images where two methods differ most" }));
      g.differ.forEach(function (group) {
        var m = metricOf(group.metric);
        drawGroup(box, m.label + " · " + group.methods[1] + " vs " + group.methods[0], group);
      });
    }
  }

  // -- provenance ----------------------------------------------------------------------

  function shellJoin(argv) {
    return argv.map(function (a) {
      a = String(a);
      return /^[A-Za-z0-9_\-.,:\/=+@%]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\"'\"'") + "'";
    }).join(" ");
  }

  function drawProvenance() {
    var box = section("provenance"), p = D.provenance;
    var items = [
      ["source", p.source],
      ["command", p.command ? shellJoin(p.command) : "not recorded"],
      ["created", p.created || "not recorded"],
      ["scored by", p.iqa_version ? "iqa " + p.iqa_version : "not recorded"],
      ["report", "iqa " + p.report.versions.iqa + ", " + p.report.created + ", built in " + p.report.seconds + " s"],
      ["versions", Object.keys(p.report.versions).map(function (k) { return k + " " + p.report.versions[k]; }).join(", ")]
    ];
    D.methods.forEach(function (m) {
      items.push(["scores · " + m.name, m.scores + " (" + m.n_rows + " rows, " + m.n_failed + " failed)"]);
    });
    box.appendChild(el("dl", { className: "prov" }, [].concat.apply([], items.map(function (kv) {
      return [el("dt", { text: kv[0] }), el("dd", { text: kv[1] })];
    }))));
    if (p.weights.length) {
      box.appendChild(el("h3", { text: "Weights and files" }));
      box.appendChild(el("table", null, [el("thead", null, [el("tr", null, ["setting", "file", "sha256", "source"].map(function (h) {
        return el("th", { text: h });
      }))]), el("tbody", null, p.weights.map(function (w) {
        return el("tr", null, [w.setting, w.file || w.name || "", w.sha256, w.source || w.package || ""].map(function (v) {
          return el("td", { text: v });
        }));
      }))]));
    }
    box.appendChild(el("h3", { text: "Settings" }));
    box.appendChild(el("pre", { text: JSON.stringify(p.settings, null, 2) }));
    if (D.statistics) {
      box.appendChild(el("h3", { text: "Statistics" }));
      box.appendChild(el("pre", { text: JSON.stringify(D.statistics, null, 2) }));
    }
  }

  drawHeader();
  drawSummary();
  drawPlots();
  drawImages();
  drawGalleries();
  drawProvenance();
  document.body.setAttribute("data-ready", "true");
})();
