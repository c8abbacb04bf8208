// The run list (#/runs?workflow=&status=&key=&created_after=&created_before=): filters,
// live counts per status, and the runs page by page (cursor pagination).

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { fromLocalInput, toLocalInput } from "../format.js";
import { poll } from "../poll.js";
import { errorBox, field, fillRuns, runsTable } from "./common.js";

export const STATUSES = [
  "pending",
  "running",
  "paused",
  "completed",
  "failed",
  "cancelled",
  "terminated",
  "held",
  "dead_letter",
];
const FILTERS = ["workflow", "status", "key", "created_after", "created_before", "limit"];
const PAGE_SIZE = 25; // #/runs?limit=N shows N a page (the API allows up to 500)
const EVERY_MS = 3000;

const hashFor = (filters) => {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
  const text = query.toString();
  return `#/runs${text ? `?${text}` : ""}`;
};

export function runsView({ root, params }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || ""]));
  const errors = errorBox();

  // -- filters ----------------------------------------------------------------------
  const workflows = h("datalist", { id: "workflow-names" });
  const inputs = {
    workflow: h("input", {
      name: "workflow",
      list: "workflow-names",
      value: filters.workflow,
      autocomplete: "off",
    }),
    status: h(
      "select",
      { name: "status" },
      h("option", { value: "" }, "any"),
      STATUSES.map((st) =>
        h("option", { value: st, selected: st === filters.status }, st.replace("_", " ")),
      ),
    ),
    key: h("input", { name: "key", value: filters.key, autocomplete: "off" }),
    created_after: h("input", {
      name: "created_after",
      type: "datetime-local",
      value: toLocalInput(filters.created_after),
    }),
    created_before: h("input", {
      name: "created_before",
      type: "datetime-local",
      value: toLocalInput(filters.created_before),
    }),
  };
  const apply = (next) => {
    const hash = hashFor(next);
    if (hash === location.hash) list.refresh();
    else location.hash = hash;
  };
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter runs",
      onsubmit: (event) => {
        event.preventDefault();
        apply({
          limit: filters.limit,
          workflow: inputs.workflow.value.trim(),
          status: inputs.status.value,
          key: inputs.key.value.trim(),
          created_after: fromLocalInput(inputs.created_after.value),
          created_before: fromLocalInput(inputs.created_before.value),
        });
      },
    },
    field("Workflow", inputs.workflow),
    field("Status", inputs.status),
    field("Key", inputs.key),
    field("Created after", inputs.created_after),
    field("Created before", inputs.created_before),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit" }, "Apply"),
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => apply({ limit: filters.limit }) },
        "Clear",
      ),
    ),
    workflows,
  );

  // -- counts per status: one button each, updated in place ------------------------
  const countValues = new Map();
  const countsBar = h("div", { class: "counts", role: "group", "aria-label": "Runs per status" });
  const totalValue = h("span", { class: "count-value" }, "…");
  countsBar.append(
    h(
      "button",
      {
        type: "button",
        class: "count count-all",
        "aria-pressed": String(!filters.status),
        onclick: () => apply({ ...filters, status: "" }),
      },
      h("span", { class: "count-name" }, "all"),
      " ",
      totalValue,
    ),
  );
  const countButton = (st) => {
    const value = h("span", { class: "count-value" }, "…");
    countValues.set(st, value);
    countsBar.append(
      h(
        "button",
        {
          type: "button",
          class: `count status-${st.replace(/[^a-z_]/g, "")}`,
          "aria-pressed": String(filters.status === st),
          dataset: { status: st },
          onclick: () => apply({ ...filters, status: filters.status === st ? "" : st }),
        },
        h("span", { class: "count-name" }, st.replace("_", " ")),
        " ",
        value,
      ),
    );
  };
  STATUSES.forEach(countButton);
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text; // untouched when unchanged: no flicker
  };
  const { status: _status, limit: _limit, ...countFilters } = filters;
  const counts = poll(async () => {
    const data = await api("runs/counts", { query: countFilters });
    let total = 0;
    for (const [st, n] of Object.entries(data.counts || {})) {
      if (!countValues.has(st)) countButton(st);
      setText(countValues.get(st), String(n));
      total += Number(n) || 0;
    }
    setText(totalValue, String(total));
  }, EVERY_MS);

  // -- the runs, a page at a time ----------------------------------------------------
  const cursors = [null]; // cursors[i]: the cursor of page i (null: the first page)
  let page = 0;
  let next = null;
  let shown = "";
  const described = [
    filters.workflow && `workflow ${filters.workflow}`,
    filters.status && `status ${filters.status}`,
    filters.key && `key ${filters.key}`,
    filters.created_after && `created after ${filters.created_after}`,
    filters.created_before && `created before ${filters.created_before}`,
  ].filter(Boolean);
  const { table, body } = runsTable(
    `Runs, newest first${described.length ? ` (${described.join(", ")})` : ""}`,
  );
  const newer = h("button", { type: "button", class: "secondary", disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "secondary", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "page", "aria-live": "polite" }, "Page 1");
  newer.addEventListener("click", () => {
    if (page > 0) {
      page -= 1;
      list.refresh();
    }
  });
  older.addEventListener("click", () => {
    if (next) {
      cursors[page + 1] = next;
      page += 1;
      list.refresh();
    }
  });
  const list = poll(async () => {
    try {
      const data = await api("runs", {
        query: { ...filters, limit: filters.limit || PAGE_SIZE, cursor: cursors[page] },
      });
      errors.clear();
      next = data.next_cursor || null;
      newer.disabled = page === 0;
      older.disabled = !next;
      setText(pageLabel, `Page ${page + 1}`);
      const text = JSON.stringify(data.runs);
      if (text !== shown) {
        shown = text; // redrawn only when something changed
        fillRuns(body, data.runs, "No runs match these filters.");
      }
    } catch (err) {
      errors.show(err);
      throw err;
    }
  }, EVERY_MS);

  api("definitions")
    .then((data) =>
      fill(
        workflows,
        data.definitions.map((d) => h("option", { value: d.name })),
      ),
    )
    .catch(() => {}); // only suggestions: the list works without them

  fill(
    root,
    h("h1", {}, "Runs"),
    form,
    countsBar,
    errors.el,
    h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Pages of runs" }, newer, pageLabel, older),
  );
  return () => {
    counts.stop();
    list.stop();
  };
}
