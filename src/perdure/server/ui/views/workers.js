// The workers and queues page (#/workers): live workers as they last checked in, and
// each queue's limits and runs per status. Refreshed every few seconds.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { poll } from "../poll.js";
import { errorBox, time } from "./common.js";

const EVERY_MS = 5000;

const cell = (value) =>
  h(
    "td",
    {},
    value instanceof Node ? value : value === null || value === undefined ? "—" : String(value),
  );
const joined = (items) =>
  Array.isArray(items)
    ? items.length
      ? items.join(", ")
      : "—"
    : items == null
      ? "all"
      : String(items);

function workerRows(workers) {
  if (!workers.length) {
    return h(
      "tr",
      {},
      h(
        "td",
        { colspan: "9", class: "empty" },
        "No live worker. Start one with: perdure worker module:app",
      ),
    );
  }
  return workers.map((w) =>
    h(
      "tr",
      {},
      cell(w.id),
      cell(w.host),
      cell(w.pid),
      cell(w.version),
      cell(joined(w.queues)),
      cell(joined(w.workflows)),
      cell(w.held !== undefined ? `${w.held} / ${w.concurrency}` : w.concurrency),
      cell(time(w.started_at)),
      cell(time(w.seen_at)),
    ),
  );
}

function rateText(rate) {
  if (rate === null || rate === undefined) return "—";
  if (typeof rate === "object") return `${rate.limit} per ${rate.period ?? rate.per}s`;
  return String(rate);
}

function queueRows(queues) {
  if (!queues.length) return h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No queues."));
  return queues.map((q) => {
    const counts = Object.entries(q.counts || {}).filter(([, n]) => n);
    return h(
      "tr",
      {},
      cell(q.name),
      cell(q.concurrency ?? "unlimited"),
      cell(q.per_worker ?? "—"),
      cell(q.per_key ?? "—"),
      cell(rateText(q.rate)),
      h(
        "td",
        { class: "queue-counts" },
        counts.length
          ? counts.map(([st, n]) =>
              h(
                "span",
                { class: `status status-${st.replace(/[^a-z_]/g, "")}` },
                `${st.replace("_", " ")} ${n}`,
              ),
            )
          : "no runs",
      ),
    );
  });
}

export function workersView({ root }) {
  const errors = errorBox();
  const workerBody = h("tbody");
  const queueBody = h("tbody");
  const head = (cols) =>
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        cols.map((c) => h("th", { scope: "col" }, c)),
      ),
    );
  fill(
    root,
    h("h1", {}, "Workers and queues"),
    errors.el,
    h(
      "section",
      { class: "panel", "aria-labelledby": "workers-title" },
      h("h2", { id: "workers-title" }, "Workers"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "workers" },
          h("caption", {}, "Workers alive on this database (they check in every few seconds)"),
          head([
            "Worker",
            "Host",
            "PID",
            "Version",
            "Queues",
            "Workflows",
            "Runs held / concurrency",
            "Started",
            "Last seen",
          ]),
          workerBody,
        ),
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "queues-title" },
      h("h2", { id: "queues-title" }, "Queues"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "queues" },
          h("caption", {}, "Queues, their limits and runs"),
          head(["Queue", "Concurrency", "Per worker", "Per key", "Rate", "Runs"]),
          queueBody,
        ),
      ),
    ),
  );
  let shown = "";
  const refresher = poll(async () => {
    try {
      const [w, q] = await Promise.all([api("workers"), api("queues")]);
      errors.clear();
      const text = JSON.stringify([w, q]);
      if (text === shown) return;
      shown = text;
      fill(workerBody, workerRows(w.workers));
      fill(queueBody, queueRows(q.queues));
    } catch (err) {
      errors.show(err);
      throw err;
    }
  }, EVERY_MS);
  return () => refresher.stop();
}
