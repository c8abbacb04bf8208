// Pieces several pages share: the error box, labelled fields, the runs table.

import { seg } from "../api.js";
import { badge, fill, h } from "../dom.js";
import { between, duration, short, when } from "../format.js";

/** A box that shows an API error's message (role=alert), hidden while there is none. */
export function errorBox() {
  const el = h("p", { class: "error", role: "alert", hidden: true });
  return {
    el,
    show(err) {
      el.hidden = false;
      fill(el, err && err.message ? err.message : String(err));
    },
    clear() {
      if (!el.hidden) {
        el.hidden = true;
        fill(el);
      }
    },
  };
}

let fieldIds = 0;

/** A <label> with its control; the control gets an id if it has none. */
export function field(label, control, hint) {
  if (!control.id) control.id = `field-${++fieldIds}`;
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export const runHref = (id) => `#/runs/${seg(id)}`;

/** A <time> with the local time as text and the ISO value in its attributes. */
export const time = (iso) => (iso ? h("time", { datetime: iso, title: iso }, when(iso)) : "");

/** One row of a runs table. */
export function runRow(run) {
  const err = run.error ? `${run.error.type}: ${run.error.message}` : "";
  return h(
    "tr",
    { dataset: { runId: run.id } },
    h("td", { class: "id" }, h("a", { href: runHref(run.id), title: run.id }, run.id)),
    h("td", {}, run.workflow),
    h("td", {}, badge(run.status)),
    h("td", {}, run.key || ""),
    h("td", {}, run.queue || ""),
    h("td", {}, time(run.created_at)),
    h("td", { class: "num" }, duration(between(run.started_at, run.finished_at))),
    h("td", { class: "err", title: err || null }, short(err, 90)),
  );
}

/** A table of runs with a caption; `body` is filled by the caller with runRow(). */
export function runsTable(caption) {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "runs" },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Run", "Workflow", "Status", "Key", "Queue", "Created", "Duration", "Error"].map((c) =>
          h("th", { scope: "col" }, c),
        ),
      ),
    ),
    body,
  );
  return { table, body };
}

/** Fill a runs table body, or say there is nothing. */
export function fillRuns(body, runs, empty) {
  if (!runs.length) {
    fill(body, h("tr", {}, h("td", { colspan: "8", class: "empty" }, empty)));
  } else {
    fill(body, runs.map(runRow));
  }
}
