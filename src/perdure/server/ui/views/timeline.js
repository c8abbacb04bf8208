// A run's step timeline: one entry per step position, with its status, attempts,
// duration (and a bar placing it in the run's time span), its error, and on demand
// each attempt's error and traceback, the step's output and its log lines.

import { badge, fill, h, jsonBlock } from "../dom.js";
import { between, duration } from "../format.js";
import { time } from "./common.js";

/** Each attempt of a step (``attempt_details``; older servers listed them in ``attempts``). */
export function attemptsOf(step) {
  if (Array.isArray(step.attempt_details)) return step.attempt_details;
  return Array.isArray(step.attempts) ? step.attempts : [];
}

const attemptCount = (step) =>
  Array.isArray(step.attempts)
    ? step.attempts.length
    : Number(step.attempts) || attemptsOf(step).length;

function errorText(error) {
  return error ? `${error.type || "Error"}: ${error.message || ""}` : "";
}

function traceback(error, label) {
  if (!error || !error.traceback) return null;
  return h(
    "details",
    { class: "traceback" },
    h("summary", {}, label),
    h("pre", { tabindex: "0" }, error.traceback),
  );
}

function attemptsTable(step) {
  const rows = attemptsOf(step);
  if (!rows.length) return null;
  return h(
    "table",
    { class: "attempts" },
    h("caption", {}, `Attempts of step ${step.position} (${step.name})`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Attempt", "Started", "Duration", "Outcome"].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((a, i) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, String(a.attempt ?? i + 1)),
          h("td", {}, time(a.started_at)),
          h(
            "td",
            { class: "num" },
            duration(a.duration_ms ?? between(a.started_at, a.finished_at)),
          ),
          h(
            "td",
            {},
            a.error
              ? h("span", { class: "step-error" }, errorText(a.error))
              : a.finished_at
                ? "succeeded"
                : "running",
            traceback(a.error, `Traceback of attempt ${a.attempt ?? i + 1}`),
          ),
        ),
      ),
    ),
  );
}

function logList(lines) {
  if (!lines.length) return null;
  return h(
    "ul",
    { class: "log-lines", "aria-label": "Log lines" },
    lines.map((l) =>
      h(
        "li",
        {},
        time(l.at),
        " ",
        h("span", { class: `level level-${String(l.level).toLowerCase()}` }, l.level),
        " ",
        l.message,
      ),
    ),
  );
}

/**
 * Draw the timeline into `list` (an <ol>). `ui` keeps what the user chose across
 * redraws: ui.open (positions whose details are open), ui.fork (the position chosen
 * to fork from) and ui.onFork(position) (null when forking is not offered).
 */
export function drawTimeline(list, run, steps, logs, ui) {
  if (!steps.length) {
    const ended =
      run.finished_at ||
      ["completed", "failed", "cancelled", "terminated", "dead_letter"].includes(run.status);
    fill(
      list,
      h("li", { class: "empty" }, ended ? "This run recorded no steps." : "No steps recorded yet."),
    );
    return;
  }
  const starts = steps.map((st) => Date.parse(st.started_at)).filter((t) => !Number.isNaN(t));
  const ends = steps.map((st) => Date.parse(st.finished_at)).filter((t) => !Number.isNaN(t));
  const t0 = Date.parse(run.started_at) || Math.min(...starts);
  const t1 = Date.parse(run.finished_at) || Math.max(Date.now(), ...ends);
  const span = Math.max(1, t1 - t0);
  fill(
    list,
    steps.map((st) => {
      const took = st.duration_ms ?? between(st.started_at, st.finished_at);
      const bar = h("span", {
        class: `bar-fill status-${String(st.status).replace(/[^a-z_]/g, "")}`,
      });
      const start = Date.parse(st.started_at);
      if (!Number.isNaN(start)) {
        bar.style.left = `${Math.min(99.4, Math.max(0, (100 * (start - t0)) / span))}%`;
        bar.style.width = `${Math.max(0.6, (100 * (took ?? span - (start - t0))) / span)}%`;
      }
      const count = attemptCount(st);
      const fork = ui.onFork
        ? h(
            "span",
            { class: "fork-choice" },
            h("input", {
              type: "radio",
              name: "fork-from",
              id: `fork-from-${st.position}`,
              value: String(st.position),
              checked: ui.fork === st.position,
              onchange: () => ui.onFork(st.position, st.name),
            }),
            h("label", { for: `fork-from-${st.position}` }, `Fork from step ${st.position}`),
          )
        : null;
      const details = h(
        "details",
        {
          class: "step-details",
          open: ui.open.has(st.position),
          ontoggle: (event) => {
            if (event.target.open) ui.open.add(st.position);
            else ui.open.delete(st.position);
          },
        },
        h("summary", {}, `Details of step ${st.position} (${st.name})`),
        attemptsTable(st),
        traceback(st.error, "Traceback"),
        st.input !== undefined && st.input !== null ? h("h4", {}, "Input") : null,
        st.input !== undefined && st.input !== null
          ? jsonBlock(st.input, `Input of step ${st.position}`)
          : null,
        st.status === "completed" ? h("h4", {}, "Output") : null,
        st.status === "completed" ? jsonBlock(st.output, `Output of step ${st.position}`) : null,
        logList(logs.filter((l) => l.position === st.position)),
      );
      return h(
        "li",
        {
          class: `step state-${String(st.status).replace(/[^a-z_]/g, "")}`,
          dataset: { position: st.position },
        },
        h(
          "div",
          { class: "step-row" },
          h("span", { class: "pos" }, `#${st.position}`),
          h("span", { class: "name" }, st.name),
          badge(st.status),
          h("span", { class: "attempt-count" }, `${count} attempt${count === 1 ? "" : "s"}`),
          h("span", { class: "started" }, time(st.started_at)),
          h("span", { class: "took num" }, duration(took)),
          h("span", { class: "bar", "aria-hidden": "true" }, bar),
          fork,
        ),
        st.error ? h("p", { class: "step-error" }, errorText(st.error)) : null,
        details,
      );
    }),
  );
}
