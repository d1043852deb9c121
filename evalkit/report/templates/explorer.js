// The pair explorer of report.html: every scored pair of each dataset, filtered, sorted and paged here.
// Data comes from the page's own JSON block (#pairs-data, a script element of type application/json); every text is
// inserted with textContent (never as markup), so markup in a prompt shows as text.
addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("pairs-data");
  const root = document.getElementById("explorer");
  if (!source || !root) return;
  const data = JSON.parse(source.textContent);
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const controls = {
    dataset: $("ex-dataset"), model: $("ex-model"), subset: $("ex-subset"), flip: $("ex-flip"),
    change: $("ex-change"), length: $("ex-length"), search: $("ex-search"),
  };
  const body = root.querySelector("tbody");
  const state = { sort: "id", descending: false, page: 0 };
  const option = (select, value, text) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.append(o);
  };
  const dataset = () => data.datasets[Number(controls.dataset.value) || 0];

  function fillChoices() {
    const d = dataset();
    controls.model.replaceChildren();
    d.models.forEach((m, i) => { if (i !== d.anchor) option(controls.model, String(i), `${m} vs ${d.models[d.anchor]}`); });
    if (!controls.model.options.length) option(controls.model, String(d.anchor), d.models[d.anchor]);
    controls.subset.replaceChildren();
    option(controls.subset, "", "every subset");
    d.subsets.forEach((s, i) => option(controls.subset, String(i), s));
  }

  // One row: [id, subset index, Δlength, prompt, chosen, rejected, margin of each model...].
  function view(row, d, model) {
    const before = row[6 + d.anchor], after = row[6 + model];
    const flip = before === null || after === null ? "" : (before > 0) === (after > 0) ? "same" : after > 0 ? "up" : "down";
    const change = before === null || after === null ? null : after - before;
    return { row, before, after, change, flip };
  }

  function selected() {
    const d = dataset(), model = Number(controls.model.value);
    const subset = controls.subset.value, flip = controls.flip.value, length = controls.length.value;
    const least = Number(controls.change.value) || 0, needle = controls.search.value.trim().toLowerCase();
    const out = [];
    for (const row of d.rows) {
      if (subset !== "" && row[1] !== Number(subset)) continue;
      if (length && Math.sign(row[2]) !== Number(length)) continue;
      const v = view(row, d, model);
      if (flip === "flipped" ? v.flip !== "up" && v.flip !== "down" : flip && v.flip !== flip) continue;
      if (least && (v.change === null || Math.abs(v.change) < least)) continue;
      if (needle && ![row[0], row[3], row[4], row[5]].some((t) => String(t).toLowerCase().includes(needle))) continue;
      out.push(v);
    }
    const key = { id: (v) => v.row[0], subset: (v) => d.subsets[v.row[1]], length: (v) => v.row[2],
      before: (v) => v.before, after: (v) => v.after, change: (v) => v.change }[state.sort];
    const sign = state.descending ? -1 : 1;
    out.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    return out;
  }

  const number = (x) => (x === null ? "—" : (x > 0 ? "+" : x < 0 ? "−" : "") + Math.abs(x).toFixed(2));
  const FLIPS = { up: "wrong→right", down: "right→wrong", same: "", "": "" };

  function cell(tr, text, css) {
    const td = document.createElement("td");
    td.textContent = text;
    if (css) td.className = css;
    tr.append(td);
    return td;
  }

  function detail(v) {
    const tr = document.createElement("tr");
    tr.className = "ex-detail";
    const td = document.createElement("td");
    td.colSpan = 7;
    for (const [label, text, css] of [["prompt", v.row[3], "prompt"], ["chosen", v.row[4], "chosen"], ["rejected", v.row[5], "rejected"]]) {
      const box = document.createElement("div");
      box.className = css;
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = label;
      const pre = document.createElement("pre");
      pre.className = "text";
      const known = v.row[3] || v.row[4] || v.row[5];
      pre.textContent = known ? text : "(no text: the per-pair texts file was not beside results.json)";
      box.append(name, pre);
      td.append(box);
    }
    tr.append(td);
    return tr;
  }

  function render() {
    const d = dataset(), rows = selected();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const shown = rows.slice(state.page * PAGE, (state.page + 1) * PAGE);
    const trs = [];
    for (const v of shown) {
      const tr = document.createElement("tr");
      tr.tabIndex = 0;
      cell(tr, v.row[0], "l");
      cell(tr, d.subsets[v.row[1]], "l");
      cell(tr, String(v.row[2]));
      cell(tr, number(v.before));
      cell(tr, number(v.after));
      cell(tr, number(v.change));
      cell(tr, FLIPS[v.flip], v.flip === "up" ? "good l" : v.flip === "down" ? "bad l" : "l");
      const open = () => {
        const next = tr.nextElementSibling;
        if (next && next.className === "ex-detail") next.remove();
        else tr.after(detail(v));
      };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      trs.push(tr);
    }
    body.replaceChildren(...trs);
    $("ex-count").textContent = `${rows.length} of ${d.rows.length} pairs · page ${state.page + 1} of ${pages}`;
    $("ex-prev").disabled = state.page === 0;
    $("ex-next").disabled = state.page >= pages - 1;
    const model = Number(controls.model.value);
    $("ex-before").textContent = `margin ${d.models[d.anchor]}`;
    $("ex-after").textContent = `margin ${d.models[model]}`;
    for (const th of root.querySelectorAll("th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort !== state.sort ? "none" : state.descending ? "descending" : "ascending");
    }
  }

  for (const th of root.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      state.descending = state.sort === th.dataset.sort ? !state.descending : false;
      state.sort = th.dataset.sort;
      render();
    });
  }
  for (const [name, c] of Object.entries(controls)) {
    c.addEventListener("input", () => {
      if (name === "dataset") fillChoices();
      state.page = 0;
      render();
    });
  }
  $("ex-prev").addEventListener("click", () => { state.page -= 1; render(); });
  $("ex-next").addEventListener("click", () => { state.page += 1; render(); });
  data.datasets.forEach((d, i) => option(controls.dataset, String(i), d.name));
  fillChoices();
  render();
  root.dataset.ready = "true";
  root.dataset.readyMs = String(Math.round(performance.now()));  // time to interactive, read by `make perf`
});
