// Small hand-drawn bar charts: SVG bars stretched to the card's width, labels in HTML (SVG
// text would stretch with them). Each bar has a <title>, the browser's own tooltip.
import { h, s } from "./dom.js";

/**
 * Stacked bars. bars: [{label, parts: [{value, className, name}]}]; axis: labels under the
 * chart (first, middle, last). Returns the chart element.
 */
export function stackedBars(bars, { axis = [], height = 120, unit = "" } = {}) {
  const top = Math.max(1, ...bars.map((bar) => bar.parts.reduce((sum, part) => sum + part.value, 0)));
  const width = Math.max(1, bars.length);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    class: "chart-bars",
    role: "img",
  });
  bars.forEach((bar, index) => {
    let y = height;
    for (const part of bar.parts) {
      if (!part.value) continue;
      const barHeight = (part.value / top) * (height - 4);
      y -= barHeight;
      svg.append(
        s("rect", { x: index + 0.12, y, width: 0.76, height: barHeight, class: part.className },
          s("title", {}, `${bar.label}: ${part.value} ${part.name}`)),
      );
    }
  });
  svg.prepend(s("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: "chart-baseline" }));
  return h("div", { class: "chart" },
    h("div", { class: "chart-top" }, `${top}${unit}`),
    svg,
    h("div", { class: "chart-axis" }, axis.map((label) => h("span", {}, label))));
}

export function legend(items) {
  return h("div", { class: "legend" },
    items.map(([className, text]) => h("span", {}, h("i", { class: `swatch ${className}` }), text)));
}
