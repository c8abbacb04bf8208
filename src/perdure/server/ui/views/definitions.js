// The definitions page (#/definitions, or #/definitions/<name> for one): every workflow
// the app can run. DAGs and state machines are drawn as graphs; a code-first workflow
// shows its parameters.

import { api, seg } from "../api.js";
import { fill, h } from "../dom.js";
import { dagGraph, drawGraph, machineGraph } from "../graph.js";
import { errorBox } from "./common.js";

let cached = null;

/** The app's definitions (GET /definitions), fetched once per page load. */
export function definitions() {
  if (!cached) {
    cached = api("definitions").then((d) => d.definitions);
    cached.catch(() => {
      cached = null; // ask again next time
    });
  }
  return cached;
}

const KIND = { dag: "DAG", state_machine: "state machine", workflow: "workflow" };
const list = (items) => (items && items.length ? items.join(", ") : "—");

function table(caption, columns, rows) {
  return h(
    "table",
    { class: "def-table" },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          {},
          r.map((cell) => h("td", {}, cell === null || cell === undefined ? "" : String(cell))),
        ),
      ),
    ),
  );
}

function retryText(retry) {
  if (!retry) return "default";
  return `${retry.max_attempts} attempts, every ${retry.initial_interval}s ×${retry.backoff}`;
}

function figure(graph, title, caption) {
  return h(
    "figure",
    { class: "graph-wrap" },
    drawGraph({ ...graph, title }),
    h("figcaption", {}, caption),
  );
}

/** The graph beside its tables (below them on a narrow screen). */
const side = (graph, ...details) =>
  h("div", { class: "def-body" }, graph, h("div", { class: "def-details" }, details));

function body(def) {
  if (def.kind === "dag") {
    return side(
      figure(
        dagGraph(def),
        `DAG ${def.name}`,
        `${def.tasks.length} tasks; solid arrows: runs after; dashed arrows: runs if it fails (rounded: failure handlers).`,
      ),
      h("p", {}, `Inputs: ${list(def.inputs)}. Results from: ${list(def.sinks)}.`),
      table(
        `Tasks of ${def.name}`,
        ["Task", "Function", "After", "On failure", "Retry", "Timeout"],
        def.tasks.map((t) => [
          t.name,
          t.function,
          list(t.after),
          list(t.on_failure),
          retryText(t.retry),
          t.timeout ?? "—",
        ]),
      ),
    );
  }
  if (def.kind === "state_machine") {
    return side(
      figure(
        machineGraph(def),
        `State machine ${def.name}`,
        `${def.statuses.length} statuses from ${def.start}; double borders: terminal; dashed arrows: callbacks, timeouts and connections.`,
      ),
      table(
        `Transitions of ${def.name}`,
        ["From", "To", "By", "Label"],
        def.transitions.map((t) => [t.from, t.to, t.by, t.label]),
      ),
      def.steps.length
        ? table(
            `Steps of ${def.name}`,
            ["In status", "Function", "To", "Attempts", "On failure"],
            def.steps.map((st) => [
              st.status,
              st.function,
              list(st.to),
              st.max_attempts,
              st.on_failure,
            ]),
          )
        : null,
      def.callbacks.length
        ? table(
            `Callbacks of ${def.name}`,
            ["In status", "Function", "To"],
            def.callbacks.map((c) => [c.status, c.function, list(c.to)]),
          )
        : null,
      def.timeouts.length
        ? table(
            `Timeouts of ${def.name}`,
            ["In status", "After (s)", "At", "To", "Function"],
            def.timeouts.map((t) => [
              t.status,
              t.after_seconds ?? "—",
              t.at ?? "—",
              list(t.to),
              t.function ?? "—",
            ]),
          )
        : null,
      def.connections.length
        ? table(
            `Connections of ${def.name}`,
            ["Waiting in", "Machine", "Reached", "To"],
            def.connections.map((c) => [c.waiting_in, c.machine, c.reached, list(c.to)]),
          )
        : null,
    );
  }
  return [
    h(
      "p",
      { class: "signature" },
      h("code", {}, `${def.name}(${(def.parameters || []).join(", ")})`),
      h("span", { class: "muted" }, " code-first: each run's page draws the steps it executed"),
    ),
  ];
}

function mermaid(def) {
  if (def.kind !== "dag" && def.kind !== "state_machine") return null;
  const pre = h("pre", { class: "mermaid-source", tabindex: "0" }, "…");
  return h(
    "details",
    {
      ontoggle: async (event) => {
        if (!event.target.open) return;
        try {
          const one = await api(`definitions/${seg(def.name)}`);
          fill(pre, one.mermaid || "(none)");
        } catch (err) {
          fill(pre, err.message);
        }
      },
    },
    h("summary", {}, "Mermaid source"),
    pre,
  );
}

function article(def) {
  const meta = [
    h("span", { class: `kind kind-${def.kind}` }, KIND[def.kind] || def.kind),
    def.queue ? ` queue ${def.queue}` : null,
    def.timeout ? ` · timeout ${def.timeout}s` : null,
  ];
  return h(
    "article",
    {
      class: "definition",
      "aria-labelledby": `def-${seg(def.name)}`,
      dataset: { kind: def.kind, name: def.name },
    },
    h(
      "header",
      {},
      h(
        "h2",
        { id: `def-${seg(def.name)}` },
        h("a", { href: `#/definitions/${seg(def.name)}` }, def.name),
      ),
      h(
        "p",
        { class: "meta" },
        meta,
        " · ",
        h("a", { href: `#/runs?workflow=${seg(def.name)}` }, "its runs"),
      ),
    ),
    body(def),
    mermaid(def),
  );
}

export function definitionsView({ root, arg }) {
  const errors = errorBox();
  const content = h("div", { class: "definitions" }, h("p", { class: "muted" }, "Loading…"));
  cached = null; // the page always shows what the server has now
  fill(
    root,
    arg
      ? h("p", { class: "crumbs" }, h("a", { href: "#/definitions" }, "← All definitions"))
      : null,
    h("h1", {}, arg ? `Definition ${arg}` : "Definitions"),
    errors.el,
    content,
  );
  definitions()
    .then((defs) => {
      // Graphs first: DAGs, then state machines, then code-first workflows.
      const rank = (d) => ({ dag: 0, state_machine: 1 })[d.kind] ?? 2;
      const sorted = [...defs].sort((a, b) => rank(a) - rank(b));
      const shown = arg ? sorted.filter((d) => d.name === arg) : sorted;
      if (arg && !shown.length) {
        errors.show(`No definition named ${arg} on this server.`);
        fill(content);
        return;
      }
      fill(
        content,
        shown.length ? shown.map(article) : h("p", {}, "The app defines no workflows."),
      );
    })
    .catch((err) => {
      fill(content);
      errors.show(err);
    });
  return () => {};
}
