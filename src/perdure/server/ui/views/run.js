// A run's page (#/runs/<id>): its status and facts, operator actions, its error, the
// workflow's graph with what this run did, the step timeline, input and output, logs,
// child runs and the raw journal. Refreshed every few seconds; parts are redrawn only
// when their data changed, and what the user opened or chose is kept.

import { api, seg } from "../api.js";
import { badge, fill, h, jsonBlock } from "../dom.js";
import { between, duration, short } from "../format.js";
import { dagGraph, drawGraph, machineGraph, stepsGraph } from "../graph.js";
import { poll } from "../poll.js";
import { canWrite } from "../session.js";
import { runActions } from "./actions.js";
import { errorBox, fillRuns, runHref, runsTable, time } from "./common.js";
import { definitions } from "./definitions.js";
import { drawTimeline } from "./timeline.js";

const EVERY_MS = 2000;

function section(id, title, ...children) {
  return h(
    "section",
    { class: `panel ${id}`, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    ...children,
  );
}

function facts(run) {
  const rows = [
    ["Workflow", h("a", { href: `#/definitions/${seg(run.workflow)}` }, run.workflow)],
    ["Status", badge(run.status)],
    ["Key", run.key],
    ["Queue", run.queue],
    ["Priority", run.priority],
    ["Created", time(run.created_at)],
    ["Started", time(run.started_at)],
    ["Finished", time(run.finished_at)],
    ["Duration", duration(between(run.started_at, run.finished_at))],
    ["Parent", run.parent_id ? h("a", { href: runHref(run.parent_id) }, run.parent_id) : null],
    ["Generation", run.generation],
    ["Recoveries", run.recoveries],
    ["Journal entries", run.journal_len],
    ["Version", run.version],
    ["Waiting for", run.waiting_for],
  ];
  return rows
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([name, value]) =>
      h("div", {}, h("dt", {}, name), h("dd", {}, value instanceof Node ? value : String(value))),
    );
}

/** How each node of the workflow's graph fared in this run. */
function graphFor(def, run, steps, machineStatus) {
  if (def.kind === "dag") {
    const byTask = new Map(steps.map((st) => [st.name.slice(def.name.length + 1), st.status]));
    return drawGraph({
      ...dagGraph(def, (task) => byTask.get(task) || null),
      title: `DAG ${def.name}: what run ${run.id} did`,
    });
  }
  if (def.kind === "state_machine") {
    const byStatus = new Map();
    for (const st of steps) {
      const status = st.name.slice(def.name.length + 1).split(".")[0];
      if (!byStatus.has(status) || st.status !== "completed") byStatus.set(status, st.status);
    }
    const stateOf = (name) => {
      const stepState = byStatus.get(name);
      if (name === machineStatus && stepState !== "failed") return "current";
      return stepState || null;
    };
    return drawGraph({
      ...machineGraph(def, stateOf),
      title: `State machine ${def.name}: where run ${run.id} went`,
    });
  }
  return drawGraph({ ...stepsGraph(def, steps), title: `Steps run ${run.id} executed` });
}

export function runView({ root, arg: runId }) {
  const errors = errorBox();
  const heading = h("h1", {}, "Run ", h("span", { class: "run-id" }, runId));
  const headBadge = h("span", { class: "head-status" });
  const factList = h("dl", { class: "facts" });
  const errorPanel = h("div");
  const graphPanel = h("div", { class: "graph-wrap" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Steps of this run" });
  const inputPanel = h("div");
  const outputPanel = h("div");
  const logBody = h("tbody");
  const children = runsTable("Child runs");
  const journalBody = h("tbody");
  const ui = { open: new Set(), fork: null, onFork: null };
  const actions = canWrite() ? runActions(runId, () => refresher.refresh()) : null;
  if (actions) {
    ui.onFork = (position, name) => {
      ui.fork = position;
      actions.forkFrom(position, name);
    };
  }
  const graphSection = section("graph", "Graph", graphPanel);
  graphSection.hidden = true; // until the workflow's definition is known
  const drawn = {}; // part -> the JSON it was last drawn from
  const changed = (part, value) => {
    const text = JSON.stringify(value);
    if (drawn[part] === text) return false;
    drawn[part] = text;
    return true;
  };

  const refresher = poll(async () => {
    let run;
    let steps;
    let logs;
    let kids;
    try {
      [run, steps, logs, kids] = await Promise.all([
        api(`runs/${seg(runId)}`),
        api(`runs/${seg(runId)}/steps`).then((d) => d.steps),
        api(`runs/${seg(runId)}/logs`).then((d) => d.logs),
        api(`runs/${seg(runId)}/children`).then((d) => d.runs),
      ]);
      errors.clear();
    } catch (err) {
      errors.show(err);
      throw err;
    }
    document.title = `${run.status} · ${run.id} · perdure`;
    if (changed("head", run)) {
      fill(headBadge, badge(run.status));
      fill(factList, facts(run));
      fill(
        errorPanel,
        run.error
          ? section(
              "run-error",
              "Error",
              h(
                "p",
                { class: "run-error-message" },
                h("strong", {}, run.error.type || "Error"),
                ": ",
                run.error.message || "",
              ),
              run.error.traceback
                ? h(
                    "details",
                    { class: "traceback" },
                    h("summary", {}, "Traceback"),
                    h("pre", { tabindex: "0" }, run.error.traceback),
                  )
                : null,
            )
          : null,
      );
      fill(
        inputPanel,
        h("h3", {}, "Input"),
        run.input === undefined || run.input === null
          ? h("p", { class: "muted" }, "Not readable.")
          : jsonBlock(run.input, "Input"),
      );
      fill(
        outputPanel,
        h("h3", {}, "Output"),
        run.status === "completed"
          ? jsonBlock(run.result, "Output")
          : h("p", { class: "muted" }, "None until the run completes."),
      );
      if (actions) actions.update(run);
    }
    if (changed("steps", [run.started_at, run.finished_at, steps, logs])) {
      drawTimeline(timeline, run, steps, logs, ui);
      fill(
        logBody,
        logs.length
          ? logs.map((l) =>
              h(
                "tr",
                {},
                h("td", {}, time(l.at)),
                h(
                  "td",
                  {},
                  h("span", { class: `level level-${String(l.level).toLowerCase()}` }, l.level),
                ),
                h("td", {}, l.step ? `#${l.position} ${l.step}` : "workflow"),
                h("td", { class: "message" }, l.message),
              ),
            )
          : h("tr", {}, h("td", { colspan: "4", class: "empty" }, "Nothing logged.")),
      );
    }
    if (changed("children", kids)) fillRuns(children.body, kids, "No child runs.");
    const defs = await definitions().catch(() => []);
    const def = defs.find((d) => d.name === run.workflow);
    let machineStatus = null;
    if (def && def.kind === "state_machine") {
      machineStatus = await api(`runs/${seg(runId)}/events/status`)
        .then((e) => (e.value && e.value.status) || null)
        .catch(() => null); // not reached any status yet
    }
    if (
      def &&
      changed("graph", [def.name, steps.map((st) => [st.name, st.status]), machineStatus])
    ) {
      fill(graphPanel, graphFor(def, run, steps, machineStatus));
      graphSection.hidden = false;
    }
  }, EVERY_MS);

  const journalDetails = h(
    "details",
    {
      class: "journal",
      ontoggle: async (event) => {
        if (!event.target.open) return;
        try {
          const data = await api(`runs/${seg(runId)}/journal`);
          fill(
            journalBody,
            data.entries.map((e) =>
              h(
                "tr",
                {},
                h("td", { class: "num" }, String(e.seq)),
                h("td", {}, e.kind),
                h(
                  "td",
                  {},
                  time(typeof e.at === "number" ? new Date(e.at * 1000).toISOString() : e.at),
                ),
                h("td", { class: "num" }, e.position ?? ""),
                h("td", {}, e.name || ""),
                h(
                  "td",
                  {},
                  short(
                    Object.fromEntries(
                      Object.entries(e).filter(
                        ([k]) => !["seq", "kind", "at", "position", "name"].includes(k),
                      ),
                    ),
                    120,
                  ),
                ),
              ),
            ),
          );
        } catch (err) {
          errors.show(err);
        }
      },
    },
    h("summary", {}, "Journal (raw entries)"),
    h(
      "table",
      { class: "journal-table" },
      h("caption", {}, "Journal of the current generation"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Seq", "Kind", "At", "Position", "Name", "More"].map((c) =>
            h("th", { scope: "col" }, c),
          ),
        ),
      ),
      journalBody,
    ),
  );

  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "← All runs")),
    h("div", { class: "run-head" }, heading, headBadge),
    errors.el,
    factList,
    actions
      ? actions.el
      : h("p", { class: "read-only-note" }, "Read-only token: actions are hidden."),
    errorPanel,
    section("steps", "Step timeline", timeline),
    graphSection,
    section("io", "Input and output", h("div", { class: "columns" }, inputPanel, outputPanel)),
    section(
      "logs",
      "Logs",
      h(
        "table",
        { class: "logs" },
        h("caption", {}, "Lines the run logged"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["At", "Level", "Where", "Message"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        logBody,
      ),
    ),
    section("children", "Child runs", h("div", { class: "table-wrap" }, children.table)),
    journalDetails,
  );
  return () => refresher.stop();
}
