// Analysis outputs, drawn by their shape: colour lists as swatches, 256-bin histograms as charts,
// hex digests in monospace, anything else as a list of values; the raw JSON is always one click away.

import { h, svg } from "./dom.js";

const HEX_COLOR = /^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;
const HEX_DIGEST = /^(?:0x)?[0-9a-fA-F]{8,}$/;
const SHARE_KEYS = ["share", "fraction", "proportion", "ratio", "weight"];
const COUNT_KEYS = ["count", "pixels", "population"];
const CHANNEL_COLORS = { R: "#c62828", G: "#2e7d32", B: "#1565c0", A: "#757575", L: "#424242", Y: "#424242" };
const MAX_DEPTH = 4;

/** Render one entry of result.analysis: {step, op, output}. */
export function renderAnalysis(entry) {
  return h("section", { class: "analysis", "data-op": entry.op },
    h("h4", null, `Step ${entry.step}: ${entry.op}`),
    renderValue(entry.output, entry.op, 0),
    h("details", { class: "raw" },
      h("summary", null, "Raw JSON"),
      h("pre", null, JSON.stringify(entry.output, null, 2))));
}

function renderValue(value, key, depth) {
  const swatches = palette(value);
  if (swatches) return renderPalette(swatches);
  if (isHistogram(value)) return chart([{ name: key, counts: value }]);
  const channels = channelsOf(value);
  if (channels) return renderChannels(channels);
  if (typeof value === "string") return renderString(value, key);
  if (typeof value === "number") return h("span", { class: "number" }, formatNumber(value));
  if (value === null || typeof value === "boolean") return h("span", null, String(value));
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== "object") && value.length <= 16) {
    return h("span", null, value.map((item) => (typeof item === "number" ? formatNumber(item) : String(item))).join(", "));
  }
  if (depth >= MAX_DEPTH || Array.isArray(value)) return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  return h("dl", { class: "values" },
    Object.entries(value).map(([name, item]) => [h("dt", null, name), h("dd", null, renderValue(item, name, depth + 1))]));
}

function renderString(value, key) {
  if (HEX_COLOR.test(value)) return renderPalette([{ color: value, share: null }]);
  if (HEX_DIGEST.test(value) || /hash/i.test(String(key))) return h("code", { class: "hash" }, value);
  return h("span", null, value);
}

function formatNumber(value) {
  return Number.isInteger(value) ? value.toLocaleString("en") : String(Number(value.toFixed(4)));
}

// ---------------------------------------------------------------- palettes

/** A CSS colour from "#rrggbb" or [r, g, b(, a)], else null. */
function cssColor(value) {
  if (typeof value === "string" && HEX_COLOR.test(value)) return value.toLowerCase();
  if (Array.isArray(value) && (value.length === 3 || value.length === 4)
      && value.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) {
    return `#${value.slice(0, 3).map((c) => c.toString(16).padStart(2, "0")).join("")}`;
  }
  return null;
}

function colorOf(item) {
  if (item && typeof item === "object" && !Array.isArray(item)) {
    for (const key of ["color", "colour", "hex", "rgb", "value"]) {
      const color = cssColor(item[key]);
      if (color) return color;
    }
    return null;
  }
  return typeof item === "string" ? cssColor(item) : null;
}

/** Return [{color, share}] when `value` is a list of colours (with optional shares), else null. */
function palette(value) {
  if (!Array.isArray(value) || value.length === 0 || value.length > 256) return null;
  const colors = value.map(colorOf);
  if (colors.some((c) => !c)) return null;
  const shares = value.map((item) => {
    if (!item || typeof item !== "object") return null;
    for (const key of SHARE_KEYS) if (typeof item[key] === "number") return item[key];
    if (typeof item.percent === "number") return item.percent / 100;
    for (const key of COUNT_KEYS) if (typeof item[key] === "number") return { count: item[key] };
    return null;
  });
  const total = shares.reduce((sum, s) => sum + (s && typeof s === "object" ? s.count : 0), 0);
  return colors.map((color, i) => {
    const share = shares[i];
    return { color, share: share && typeof share === "object" ? (total ? share.count / total : null) : share };
  });
}

function renderPalette(swatches) {
  const known = swatches.every((s) => typeof s.share === "number");
  const bar = h("div", { class: "palette-bar", role: "img",
    "aria-label": `Colours: ${swatches.map((s) => describeSwatch(s)).join(", ")}` });
  for (const swatch of swatches) {
    const part = h("span", { class: "palette-part", title: describeSwatch(swatch) });
    part.style.backgroundColor = swatch.color;
    part.style.flexGrow = String(known ? Math.max(swatch.share, 0.002) : 1);
    bar.append(part);
  }
  const legend = h("ul", { class: "palette-legend" }, swatches.map((swatch) => {
    const chip = h("span", { class: "chip", "aria-hidden": "true" });
    chip.style.backgroundColor = swatch.color;
    return h("li", null, chip, h("code", null, swatch.color),
      typeof swatch.share === "number" ? [" ", h("span", { class: "share" }, percent(swatch.share))] : null);
  }));
  return h("div", { class: "palette" }, bar, legend);
}

function describeSwatch(swatch) {
  return typeof swatch.share === "number" ? `${swatch.color} ${percent(swatch.share)}` : swatch.color;
}

function percent(share) {
  const value = share * 100;
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)}%`;
}

// ---------------------------------------------------------------- histograms

function isHistogram(value) {
  return Array.isArray(value) && value.length === 256 && value.every((n) => typeof n === "number" && n >= 0);
}

/** Return [[name, {histogram, ...}]] when every value of `value` carries a 256-bin histogram, else null. */
function channelsOf(value) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const entries = Object.entries(value);
  if (entries.length === 0 || entries.length > 8) return null;
  const ok = entries.every(([, item]) => item && typeof item === "object" && isHistogram(item.histogram));
  return ok ? entries : null;
}

function renderChannels(channels) {
  const series = channels.map(([name, item]) => ({ name, counts: item.histogram }));
  const columns = [...new Set(channels.flatMap(([, item]) => Object.keys(item).filter((k) => k !== "histogram")))];
  const table = columns.length ? h("table", { class: "channel-table" },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "channel"), columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, channels.map(([name, item]) => h("tr", null, h("th", { scope: "row" }, name),
      columns.map((c) => h("td", null, typeof item[c] === "number" ? formatNumber(item[c]) : JSON.stringify(item[c] ?? "")))))))
    : null;
  return h("div", { class: "channels" }, chart(series), table);
}

/** An SVG area chart of 256-bin histograms, one translucent area per series. */
function chart(series) {
  // Scale to the tallest inner bin so a spike at pure black or white does not flatten the rest.
  const inner = Math.max(...series.flatMap((s) => s.counts.slice(1, 255)));
  const top = inner > 0 ? inner : Math.max(1, ...series.flatMap((s) => s.counts));
  const paths = series.map((s, i) => {
    const color = CHANNEL_COLORS[s.name] || ["#6a1b9a", "#ef6c00", "#00838f"][i % 3];
    const points = s.counts.map((count, x) => `L${x},${(100 - (Math.min(count, top) / top) * 100).toFixed(2)}`);
    return svg("path", { d: `M0,100 ${points.join(" ")} L255,100 Z`, fill: color, "fill-opacity": "0.3",
      stroke: color, "stroke-width": "1", "vector-effect": "non-scaling-stroke" });
  });
  const names = series.map((s) => s.name).join(", ");
  const figure = svg("svg", { class: "histogram", viewBox: "0 0 256 100", preserveAspectRatio: "none",
    role: "img", "aria-label": `Histogram of ${names}, values 0 to 255` }, svg("title", null, `Histogram: ${names}`), paths);
  const legend = series.length > 1 ? h("ul", { class: "chart-legend" }, series.map((s, i) => {
    const chip = h("span", { class: "chip", "aria-hidden": "true" });
    chip.style.backgroundColor = CHANNEL_COLORS[s.name] || ["#6a1b9a", "#ef6c00", "#00838f"][i % 3];
    return h("li", null, chip, s.name);
  })) : null;
  return h("figure", { class: "chart" }, figure,
    h("figcaption", { class: "axis" }, h("span", null, "0"), legend, h("span", null, "255")));
}
