// The arrival timeline: an SVG step chart of cumulative bytes against time, and the packet list.

import { ui } from "./dom.js";
import { formatBytes } from "./format.js";
import { state } from "./state.js";

/** @param {string} tag @param {Record<string,string|number>} attrs */
function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Per-packet arrivals: cumulative bytes over time, plus the list. @param {import("./stream.js").Stream} s */
export function drawTimeline(s) {
  const W = 600;
  const H = 140;
  const pad = { l: 64, r: 10, t: 10, b: 24 };
  const a = s.arrivals;
  const tMax = Math.max(50, ...a.map((x) => x.t)) * 1.05;
  const total = state.header ? state.header.packets.reduce((n, p) => n + p.bytes, 0) : 1;
  const bMax = Math.max(total, s.bytes, 1);
  const X = (t) => pad.l + (t / tMax) * (W - pad.l - pad.r);
  const Y = (b) => H - pad.b - (b / bMax) * (H - pad.t - pad.b);
  const nodes = [
    svg("line", { x1: pad.l, y1: Y(0), x2: W - pad.r, y2: Y(0), class: "axis" }),
    svg("line", { x1: pad.l, y1: Y(0), x2: pad.l, y2: pad.t, class: "axis" }),
    svg("line", { x1: pad.l, y1: Y(total), x2: W - pad.r, y2: Y(total), class: "total" }),
  ];
  const label = (x, y, text, anchor) => {
    const el = svg("text", { x, y, "text-anchor": anchor, class: "tick" });
    el.textContent = text;
    return el;
  };
  nodes.push(label(pad.l - 4, Y(total) + 4, formatBytes(total), "end"));
  nodes.push(label(pad.l - 4, Y(0) + 4, "0", "end"));
  nodes.push(label(W - pad.r, H - 6, `${Math.round(tMax)} ms`, "end"));
  nodes.push(label(pad.l, H - 6, "0", "start"));
  let cum = 0;
  let d = `M ${X(0)} ${Y(0)}`;
  const dots = [];
  for (const x of a) {
    d += ` H ${X(x.t).toFixed(1)}`;
    cum += x.bytes;
    d += ` V ${Y(cum).toFixed(1)}`;
    const dot = svg("circle", { cx: X(x.t).toFixed(1), cy: Y(cum).toFixed(1), r: 3.5, class: `dot ${x.kind}` });
    const title = svg("title", {});
    title.textContent = `${what(x)} · ${x.bytes} B at ${x.t.toFixed(0)} ms`;
    dot.append(title);
    dots.push(dot);
  }
  nodes.push(svg("path", { d, class: "line" }), ...dots);
  ui.timeline.replaceChildren(...nodes);

  const items = a.map((x, i) => {
    const li = document.createElement("li");
    li.className = x.kind;
    li.textContent = `#${i + 1} ${what(x)} · ${x.bytes} B · ${x.t.toFixed(0)} ms${x.error ? ` — ${x.error}` : ""}`;
    return li;
  });
  ui.packets.replaceChildren(...items);
}

/** A packet in words: header, layer U, refinement L of layer U, layer U whole (a direct packet). */
function what(x) {
  if (x.kind === "header" || x.kind === "rejected") return x.kind;
  if (x.kind === "refinement") return x.direct ? `layer ${x.layer} whole (level ${x.level})` : `refinement ${x.level} of layer ${x.layer}`;
  return `layer ${x.layer ?? "?"}`;
}
