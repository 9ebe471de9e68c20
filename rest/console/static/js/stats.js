// Stats: uploads per day, formats and cameras, drawn as SVG (each also readable as a table).
import { getJson } from "./api.js";
import { h, pageHeading, svg } from "./dom.js";

const COLUMNS_WIDTH = 640; // drawn at this size (1 unit = 1 pixel), smaller on narrow screens
const BARS_WIDTH = 420;

function table(caption, heads, rows) {
  return h("details", { class: "as-table" }, h("summary", { text: `${caption} as a table` }),
    h("table", {}, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", { text: String(cell) })))))));
}

function niceMax(value) {
  if (value <= 5) return Math.max(1, value);
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function columnChart(title, points) {
  const height = 240;
  const left = 36;
  const bottom = 28;
  const top = 10;
  const plotHeight = height - top - bottom;
  const max = niceMax(Math.max(...points.map((p) => p.value)));
  const slot = (COLUMNS_WIDTH - left - 8) / points.length;
  const y = (value) => top + plotHeight - (value / max) * plotHeight;
  const bars = points.map((p, i) => svg("rect", {
    class: "bar", x: left + i * slot + slot * 0.15, width: slot * 0.7, y: y(p.value),
    height: Math.max(0, top + plotHeight - y(p.value)), "data-value": p.value,
  }, svg("title", { text: `${p.label}: ${p.value}` })));
  const ticks = [...new Set([0, Math.round(max / 2), max])].map((v) => svg("g", {},
    svg("line", { class: "grid", x1: left, x2: COLUMNS_WIDTH - 8, y1: y(v), y2: y(v) }),
    svg("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end", text: v })));
  const labels = points.map((p, i) => (i % 5 === points.length % 5 || i === points.length - 1
    ? svg("text", { class: "tick", x: left + (i + 0.5) * slot, y: height - 8, "text-anchor": "middle", text: p.short })
    : null));
  return svg("svg", { class: "chart", viewBox: `0 0 ${COLUMNS_WIDTH} ${height}`, width: COLUMNS_WIDTH,
    role: "img", "aria-label": title }, ticks, bars, labels);
}

function barChart(title, points) {
  if (!points.length) return h("p", { class: "muted", text: "Nothing yet." });
  const row = 28;
  const left = 150;
  const height = points.length * row + 8;
  const max = niceMax(Math.max(...points.map((p) => p.value)));
  const scale = (value) => (value / max) * (BARS_WIDTH - left - 40);
  return svg("svg", { class: "chart", viewBox: `0 0 ${BARS_WIDTH} ${height}`, width: BARS_WIDTH,
    role: "img", "aria-label": title },
    points.map((p, i) => svg("g", {},
      svg("text", { class: "tick", x: left - 8, y: i * row + 19, "text-anchor": "end",
        text: p.label.length > 22 ? `${p.label.slice(0, 21)}…` : p.label }),
      svg("rect", { class: "bar", x: left, y: i * row + 5, height: row - 10, width: Math.max(2, scale(p.value)), "data-value": p.value },
        svg("title", { text: `${p.label}: ${p.value}` })),
      svg("text", { class: "tick", x: left + Math.max(2, scale(p.value)) + 6, y: i * row + 19, text: p.value }))));
}

function chartSection(id, title, chart, tableView) {
  return h("section", { class: "chart-box", "aria-labelledby": id }, h("h2", { id, text: title }), chart, tableView);
}

function draw(main, counts) {
  const days = counts.uploads_per_day.map((d) => ({ label: d.day, short: d.day.slice(5), value: d.count }));
  const total = days.reduce((sum, d) => sum + d.value, 0);
  const formats = counts.formats.map((f) => ({ label: f.format, value: f.count }));
  const cameras = counts.cameras.map((c) => ({ label: c.camera, value: c.count }));
  main.replaceChildren(pageHeading("Statistics"),
    h("p", { text: `${total} new image(s) in the last ${days.length} days (UTC).` }),
    chartSection("days-heading", "Uploads per day", columnChart("New images per day, last 30 days", days),
      table("Uploads per day", ["Day", "New images"], days.map((d) => [d.label, d.value]))),
    h("div", { class: "two-charts" },
      chartSection("formats-heading", "Formats", barChart("Images per format", formats),
        table("Formats", ["Format", "Images"], formats.map((f) => [f.label, f.value]))),
      chartSection("cameras-heading", "Cameras", barChart("Images per camera (top 10)", cameras),
        table("Cameras", ["Camera", "Images"], cameras.map((c) => [c.label, c.value])))));
}

export function render(main, { notify, onKeyChange }) {
  let stopped = false;
  async function load() {
    try {
      const counts = await getJson("/api/stats/counts");
      if (!stopped) draw(main, counts);
    } catch (error) {
      if (stopped) return;
      main.replaceChildren(pageHeading("Statistics"), h("p", { class: "error-text", text: error.message }));
      notify(error.message, error.needsKey);
    }
  }
  main.replaceChildren(pageHeading("Statistics"), h("p", { text: "Loading…" }));
  onKeyChange(load); // a key entered after a refusal shows the charts without a reload
  load();
  return () => { stopped = true; };
}
