// Graphs drawn as SVG with a small layered ("Sugiyama") layout: cycles are broken by
// reversing back edges, nodes are ranked by longest path, long edges get invisible
// bend points, a few barycenter sweeps reduce crossings, and x positions are pulled
// towards neighbours. Enough for the tens of nodes a workflow has.

import { s } from "./dom.js";

const NODE_H = 36;
const NODE_GAP = 28;
const DUMMY_W = 8;
const MARGIN = 16;
const CHAR_W = 7.2; // average width of a 13px sans-serif character
const PAD_X = 14;
const LOOP_W = 44;
const MAX_STEPS = 40; // a code-first run's chain of steps is cut there (the timeline has all)

const nodeWidth = (node) =>
  node.kind === "entry"
    ? 18
    : Math.max(72, Math.ceil(String(node.label).length * CHAR_W) + 2 * PAD_X);

function breakCycles(nodes, links) {
  // Depth-first from the sources, in declaration order: an edge back to a node still
  // on the stack closes a cycle and is laid out reversed.
  const out = new Map(nodes.map((n) => [n.id, []]));
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  links.forEach((e, i) => {
    out.get(e.from).push(i);
    indegree.set(e.to, indegree.get(e.to) + 1);
  });
  const reversed = new Set();
  const state = new Map();
  const visit = (id) => {
    state.set(id, "open");
    for (const i of out.get(id)) {
      const next = links[i].to;
      if (state.get(next) === "open") reversed.add(i);
      else if (!state.has(next)) visit(next);
    }
    state.set(id, "done");
  };
  const sources = nodes.filter((n) => indegree.get(n.id) === 0);
  for (const n of [...sources, ...nodes]) if (!state.has(n.id)) visit(n.id);
  return reversed;
}

function rank(nodes, arcs) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  for (const a of arcs) indegree.set(a.dst, indegree.get(a.dst) + 1);
  const ready = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  while (ready.length) {
    const v = ready.shift();
    for (const a of arcs) {
      if (a.src !== v) continue;
      layer.set(a.dst, Math.max(layer.get(a.dst), layer.get(v) + 1));
      indegree.set(a.dst, indegree.get(a.dst) - 1);
      if (indegree.get(a.dst) === 0) ready.push(a.dst);
    }
  }
  return layer;
}

function crossings(layers, below) {
  let count = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const pos = new Map(layers[l + 1].map((v, i) => [v, i]));
    const segs = [];
    layers[l].forEach((v, i) => {
      for (const w of below.get(v)) segs.push([i, pos.get(w)]);
    });
    for (let a = 0; a < segs.length; a++) {
      for (let b = a + 1; b < segs.length; b++) {
        if ((segs[a][0] - segs[b][0]) * (segs[a][1] - segs[b][1]) < 0) count++;
      }
    }
  }
  return count;
}

function order(layers, above, below) {
  const sweep = (from, neighbours, step) => {
    for (let l = from; l >= 0 && l < layers.length; l += step) {
      const ref = layers[l - step];
      if (!ref) continue;
      const pos = new Map(ref.map((v, i) => [v, i]));
      const key = new Map(
        layers[l].map((v, i) => {
          const ns = neighbours.get(v).filter((w) => pos.has(w));
          return [v, ns.length ? ns.reduce((t, w) => t + pos.get(w), 0) / ns.length : i];
        }),
      );
      layers[l] = [...layers[l]].sort((a, b) => key.get(a) - key.get(b));
    }
  };
  let best = layers.map((l) => [...l]);
  let fewest = crossings(layers, below);
  for (let i = 0; i < 8 && fewest > 0; i++) {
    if (i % 2 === 0) sweep(1, above, 1);
    else sweep(layers.length - 2, below, -1);
    const now = crossings(layers, below);
    if (now < fewest) {
      fewest = now;
      best = layers.map((l) => [...l]);
    }
  }
  return best;
}

function place(layers, width, above, below) {
  const x = new Map();
  for (const layer of layers) {
    let left = 0;
    for (const v of layer) {
      x.set(v, left + width.get(v) / 2);
      left += width.get(v) + NODE_GAP;
    }
    const shift = (left - NODE_GAP) / 2;
    for (const v of layer) x.set(v, x.get(v) - shift);
  }
  // Pull each node towards the mean of its neighbours, keeping the order and the gaps.
  for (let pass = 0; pass < 6; pass++) {
    const neighbours = pass % 2 === 0 ? above : below;
    for (const layer of pass % 2 === 0 ? layers : [...layers].reverse()) {
      const want = layer.map((v) => {
        const ns = pass >= 4 ? [...above.get(v), ...below.get(v)] : neighbours.get(v);
        return ns.length ? ns.reduce((t, w) => t + x.get(w), 0) / ns.length : x.get(v);
      });
      const got = [];
      layer.forEach((v, i) => {
        const min = i
          ? got[i - 1] + (width.get(layer[i - 1]) + width.get(v)) / 2 + NODE_GAP
          : -Infinity;
        got.push(Math.max(want[i], min));
      });
      const drift = got.reduce((t, g, i) => t + g - want[i], 0) / layer.length;
      layer.forEach((v, i) => x.set(v, got[i] - drift));
    }
  }
  return x;
}

/**
 * Lay out nodes [{id, label, kind?, state?}] and edges [{from, to, label?, kind?}]
 * top to bottom. Returns {width, height, nodes: [{...node, x, y, w, h}],
 * edges: [{...edge, points: [{x, y}], loop}]}; x and y are the node's centre.
 */
export function layout(nodes, edges) {
  const known = new Set(nodes.map((n) => n.id));
  const valid = edges.filter((e) => known.has(e.from) && known.has(e.to));
  const links = valid.filter((e) => e.from !== e.to);
  const loops = valid.filter((e) => e.from === e.to);
  const reversed = breakCycles(nodes, links);
  const arcs = links.map((e, i) =>
    reversed.has(i) ? { src: e.to, dst: e.from, edge: i } : { src: e.from, dst: e.to, edge: i },
  );
  const layerOf = rank(nodes, arcs);
  const depth = Math.max(0, ...layerOf.values()) + 1;
  const layers = Array.from({ length: depth }, () => []);
  const width = new Map();
  const above = new Map();
  const below = new Map();
  const vertex = (id, layer, w) => {
    layers[layer].push(id);
    width.set(id, w);
    above.set(id, []);
    below.set(id, []);
  };
  nodes.forEach((n) => vertex(n.id, layerOf.get(n.id), nodeWidth(n)));
  const chains = arcs.map((a) => {
    const chain = [a.src];
    for (let l = layerOf.get(a.src) + 1; l < layerOf.get(a.dst); l++) {
      const id = `\u0000bend ${a.edge} ${l}`; // no node id can hold NUL
      vertex(id, l, DUMMY_W);
      chain.push(id);
    }
    chain.push(a.dst);
    for (let i = 0; i + 1 < chain.length; i++) {
      below.get(chain[i]).push(chain[i + 1]);
      above.get(chain[i + 1]).push(chain[i]);
    }
    return chain;
  });
  const ordered = order(layers, above, below);
  const x = place(ordered, width, above, below);
  const labelled = valid.some((e) => e.label);
  const layerGap = labelled ? 72 : 52;
  const yOf = (id) => MARGIN + NODE_H / 2 + layerOf.get(id) * (NODE_H + layerGap);
  const bendY = (id) => MARGIN + NODE_H / 2 + Number(id.split(" ")[2]) * (NODE_H + layerGap);

  // Each edge leaves its node from a port of its own along the bottom side and enters
  // along the top, ordered by where the other end is, so that fans stay readable and
  // edges between the same two nodes (either way) run side by side.
  const ports = new Map(); // "out <edge>" / "in <edge>" -> x offset from the node's centre
  const spread = (id, ends, side) => {
    ends.sort((a, b) => a.x - b.x || a.edge - b.edge);
    const usable = Math.min(width.get(id) * 0.7, (ends.length - 1) * 18);
    ends.forEach((end, k) => {
      const at = ends.length > 1 ? -usable / 2 + (usable * k) / (ends.length - 1) : 0;
      ports.set(`${side} ${end.edge}`, at);
    });
  };
  const outs = new Map(nodes.map((n) => [n.id, []]));
  const ins = new Map(nodes.map((n) => [n.id, []]));
  chains.forEach((chain, i) => {
    outs.get(chain[0]).push({ edge: i, x: x.get(chain[1]) });
    ins.get(chain[chain.length - 1]).push({ edge: i, x: x.get(chain[chain.length - 2]) });
  });
  for (const n of nodes) {
    spread(n.id, outs.get(n.id), "out");
    spread(n.id, ins.get(n.id), "in");
  }
  const placedEdges = links.map((e, i) => {
    const chain = chains[i];
    const points = chain.map((id, k) => {
      if (k === 0) return { x: x.get(id) + ports.get(`out ${i}`), y: yOf(id) + NODE_H / 2 };
      if (k === chain.length - 1)
        return { x: x.get(id) + ports.get(`in ${i}`), y: yOf(id) - NODE_H / 2 };
      return { x: x.get(id), y: bendY(id) };
    });
    if (reversed.has(i)) points.reverse();
    return { ...e, points, loop: false };
  });
  placeLabels(placedEdges);

  let minX = Infinity;
  let maxX = -Infinity;
  for (const [id, cx] of x) {
    minX = Math.min(minX, cx - width.get(id) / 2);
    maxX = Math.max(maxX, cx + width.get(id) / 2 + (loops.some((e) => e.from === id) ? LOOP_W : 0));
  }
  for (const e of placedEdges) {
    if (!e.label) continue;
    const mid = e.labelAt;
    const half = labelWidth(e.label) / 2;
    minX = Math.min(minX, mid.x - half);
    maxX = Math.max(maxX, mid.x + half);
  }
  if (!Number.isFinite(minX)) {
    minX = 0;
    maxX = 0;
  }
  const dx = MARGIN - minX;
  const shiftPoint = (p) => ({ x: p.x + dx, y: p.y });
  const placedNodes = nodes.map((n) => ({
    ...n,
    x: x.get(n.id) + dx,
    y: yOf(n.id),
    w: width.get(n.id),
    h: NODE_H,
  }));
  const byId = new Map(placedNodes.map((n) => [n.id, n]));
  const loopEdges = loops.map((e) => {
    const n = byId.get(e.from);
    const right = n.x + n.w / 2;
    return {
      ...e,
      loop: true,
      points: [
        { x: right, y: n.y - 8 },
        { x: right + LOOP_W, y: n.y },
        { x: right, y: n.y + 8 },
      ],
    };
  });
  return {
    width: Math.ceil(maxX - minX + 2 * MARGIN),
    height: Math.ceil(MARGIN * 2 + depth * NODE_H + (depth - 1) * layerGap),
    nodes: placedNodes,
    edges: [
      ...placedEdges.map((e) => ({
        ...e,
        points: e.points.map(shiftPoint),
        labelAt: e.labelAt && shiftPoint(e.labelAt),
      })),
      ...loopEdges,
    ],
  };
}

const labelWidth = (label) => String(label).length * 6.4 + 8;

/** Put each edge label at its edge's middle, moved along the edge off labels already placed. */
function placeLabels(edges) {
  const boxes = [];
  const hits = (p, w) =>
    boxes.some((b) => Math.abs(b.x - p.x) < (b.w + w) / 2 && Math.abs(b.y - p.y) < 15);
  for (const e of edges) {
    if (!e.label) continue;
    const w = labelWidth(e.label);
    const tries = [0.5, 0.3, 0.7, 0.2, 0.8].map((t) => along(e.points, t));
    const at = tries.find((p) => !hits(p, w)) || tries[0];
    boxes.push({ ...at, w });
    e.labelAt = at;
  }
}

/** The point at fraction t of the way along a polyline (by length). */
function along(points, t) {
  const lengths = points.slice(1).map((p, i) => Math.hypot(p.x - points[i].x, p.y - points[i].y));
  let left = t * lengths.reduce((a, b) => a + b, 0);
  for (let i = 0; i < lengths.length; i++) {
    if (left <= lengths[i] || i === lengths.length - 1) {
      const f = lengths[i] ? Math.min(1, left / lengths[i]) : 0;
      return {
        x: points[i].x + f * (points[i + 1].x - points[i].x),
        y: points[i].y + f * (points[i + 1].y - points[i].y),
      };
    }
    left -= lengths[i];
  }
  return points[0];
}

function pathOf(edge) {
  const p = edge.points;
  if (edge.loop) {
    return `M${p[0].x},${p[0].y} C${p[1].x},${p[0].y - 22} ${p[1].x},${p[2].y + 22} ${p[2].x},${p[2].y}`;
  }
  let d = `M${p[0].x},${p[0].y}`;
  for (let i = 1; i < p.length; i++) {
    const a = p[i - 1];
    const b = p[i];
    const my = (a.y + b.y) / 2;
    d += ` C${a.x},${my} ${b.x},${my} ${b.x},${b.y}`;
  }
  return d;
}

let drawn = 0; // marker ids must be unique in the document

/**
 * An <svg> of the graph, with a <title> for screen readers. Node kinds and states
 * become classes (node-<kind>, state-<state>) for the stylesheet; edge kinds too.
 */
export function drawGraph({ nodes, edges, title }) {
  const g = layout(nodes, edges);
  const id = `graph-${++drawn}`;
  const marker = (name, cls) =>
    s(
      "marker",
      {
        id: `${id}-${name}`,
        viewBox: "0 0 10 10",
        refX: "9",
        refY: "5",
        markerWidth: "7",
        markerHeight: "7",
        orient: "auto-start-reverse",
        class: cls,
      },
      s("path", { d: "M0,0 L10,5 L0,10 z" }),
    );
  const svg = s(
    "svg",
    {
      class: "graph",
      role: "img",
      "aria-labelledby": `${id}-title`,
      viewBox: `0 0 ${g.width} ${g.height}`,
      width: g.width,
      height: g.height,
    },
    s("title", { id: `${id}-title` }, title),
    s("defs", {}, marker("arrow", "arrow"), marker("arrow-alt", "arrow arrow-alt")),
  );
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  for (const e of g.edges) {
    const alt = e.kind && e.kind !== "after" && e.kind !== "step" && e.kind !== "entry";
    edgeLayer.append(
      s(
        "path",
        {
          class: `edge edge-${cssName(e.kind || "plain")}`,
          d: pathOf(e),
          "marker-end": `url(#${id}-${alt ? "arrow-alt" : "arrow"})`,
          dataset: { from: e.from, to: e.to },
        },
        s("title", {}, `${e.from} → ${e.to}${e.label ? ` (${e.label})` : ""}`),
      ),
    );
    if (e.label) {
      const at = e.loop ? { x: e.points[1].x + 4, y: e.points[1].y } : e.labelAt;
      labelLayer.append(
        s(
          "text",
          {
            class: "edge-label",
            x: at.x,
            y: at.y,
            "text-anchor": e.loop ? "start" : "middle",
            dy: "0.35em",
          },
          e.label,
        ),
      );
    }
  }
  const nodeLayer = s("g", { class: "nodes" });
  for (const n of g.nodes) {
    const cls = `node node-${cssName(n.kind || "plain")}${n.state ? ` state-${cssName(n.state)}` : ""}`;
    const group = s("g", { class: cls, dataset: { node: n.id } });
    group.append(s("title", {}, n.tooltip || n.label || n.id));
    if (n.kind === "entry") {
      group.append(s("circle", { cx: n.x, cy: n.y, r: 8 }));
    } else {
      const rx = n.kind === "handler" ? NODE_H / 2 : 6;
      group.append(
        s("rect", { x: n.x - n.w / 2, y: n.y - n.h / 2, width: n.w, height: n.h, rx, ry: rx }),
      );
      if (n.kind === "terminal") {
        group.append(
          s("rect", {
            class: "inner",
            x: n.x - n.w / 2 + 3,
            y: n.y - n.h / 2 + 3,
            width: n.w - 6,
            height: n.h - 6,
            rx: 4,
            ry: 4,
          }),
        );
      }
      group.append(s("text", { x: n.x, y: n.y, "text-anchor": "middle", dy: "0.35em" }, n.label));
    }
    nodeLayer.append(group);
  }
  svg.append(edgeLayer, nodeLayer, labelLayer);
  return svg;
}

const cssName = (value) => String(value).replace(/[^A-Za-z0-9_-]/g, "_");

// -- the graphs of perdure's definitions ----------------------------------------------

/** The nodes and edges of a DAG definition (its describe() data). */
export function dagGraph(def, stateOf = () => null) {
  const handlers = new Set(def.edges.filter((e) => e.kind === "on_failure").map((e) => e.to));
  return {
    nodes: def.tasks.map((t) => ({
      id: t.name,
      label: t.name,
      kind: handlers.has(t.name) ? "handler" : "task",
      state: stateOf(t.name),
      tooltip: `${t.name}: ${t.function}`,
    })),
    edges: def.edges.map((e) => ({ from: e.from, to: e.to, kind: e.kind })),
  };
}

/** The nodes and edges of a state machine definition (its describe() data). */
export function machineGraph(def, stateOf = () => null) {
  const entry = "\u0000start";
  return {
    nodes: [
      { id: entry, label: "", kind: "entry", tooltip: "start" },
      ...def.statuses.map((st) => ({
        id: st.name,
        label: st.name,
        kind: st.terminal ? "terminal" : st.start ? "start" : "status",
        state: stateOf(st.name),
        tooltip: `${st.name}${st.terminal ? " (terminal)" : ""}${st.start ? " (start)" : ""}`,
      })),
    ],
    edges: [
      { from: entry, to: def.start, kind: "entry" },
      ...def.transitions.map((t) => ({
        from: t.from,
        to: t.to,
        kind: t.by,
        label: transitionLabel(t),
      })),
    ],
  };
}

const UNITS = [
  [86400, "d"],
  [3600, "h"],
  [60, "min"],
];

/** "verify", "callback: appeal", "timeout after 7d" (the API gives seconds). */
function transitionLabel(t) {
  if (t.by === "step") return t.label;
  if (t.by === "timeout") {
    return String(t.label).replace(/(\d+(?:\.\d+)?)s\b/, (whole, secs) => {
      const n = Number(secs);
      const unit = UNITS.find(([size]) => n >= size && n % size === 0);
      return unit ? `${n / unit[0]}${unit[1]}` : whole;
    });
  }
  return `${t.by}: ${t.label}`;
}

/** A code-first workflow: its parameters feeding the steps it ran, in order. */
export function stepsGraph(def, steps) {
  const nodes = [
    {
      id: "\u0000input",
      label: `${def.name}(${(def.parameters || []).join(", ")})`,
      kind: "input",
    },
  ];
  const edges = [];
  let previous = nodes[0].id;
  const shown = steps.slice(0, MAX_STEPS);
  for (const step of shown) {
    const id = `#${step.position}`;
    nodes.push({ id, label: `${step.position}: ${step.name}`, kind: "task", state: step.status });
    edges.push({ from: previous, to: id, kind: "after" });
    previous = id;
  }
  if (steps.length > shown.length) {
    nodes.push({ id: "\u0000more", label: `… ${steps.length - shown.length} more`, kind: "more" });
    edges.push({ from: previous, to: "\u0000more", kind: "after" });
  }
  return { nodes, edges };
}
