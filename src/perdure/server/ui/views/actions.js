// The operator's controls on a run page: retry, cancel, pause, resume, terminate, fork
// from the step chosen in the timeline, delete, and sending a message. Shown only to an
// admin token; the API's error message is shown when it refuses.

import { api, seg } from "../api.js";
import { fill, h } from "../dom.js";
import { errorBox, field, runHref } from "./common.js";

// The statuses each action applies to (the server decides; these only grey out buttons).
const ACTIONS = [
  {
    name: "retry",
    label: "Retry",
    when: ["failed", "cancelled", "terminated", "dead_letter", "held"],
  },
  {
    name: "cancel",
    label: "Cancel",
    when: ["pending", "running", "paused", "held"],
    confirm: true,
  },
  { name: "pause", label: "Pause", when: ["pending", "running"] },
  { name: "resume", label: "Resume", when: ["paused", "cancelled", "terminated"] },
  {
    name: "terminate",
    label: "Terminate",
    when: ["pending", "running", "paused", "held"],
    confirm: true,
  },
];
const ENDED = ["completed", "failed", "cancelled", "terminated", "dead_letter"];

/**
 * Build the controls for run `runId`. Returns {el, update(run), forkFrom(position, name),
 * forkChosen()}; `refresh()` is called after every action that changed something.
 */
export function runActions(runId, refresh) {
  const errors = errorBox();
  const status = h("p", { class: "action-status", role: "status", "aria-live": "polite" });
  let busy = false;
  let current = null;
  let forkStep = null;

  const say = (text) => fill(status, text);
  const act = async (label, path, body, after) => {
    if (busy) return;
    busy = true;
    errors.clear();
    say(`${label}…`);
    try {
      const result = await api(`runs/${seg(runId)}/${path}`, { method: "POST", body });
      say(after ? after(result) : `${label}: done.`);
      refresh();
    } catch (err) {
      say("");
      errors.show(err);
    } finally {
      busy = false;
      update(current);
    }
  };

  const buttons = new Map();
  const pending = new Map(); // actions asked for once, waiting for a confirming click
  for (const action of ACTIONS) {
    const button = h(
      "button",
      { type: "button", class: `action action-${action.name}` },
      action.label,
    );
    button.addEventListener("click", () => {
      if (action.confirm && !pending.get(action.name)) {
        pending.set(action.name, true);
        fill(button, `Really ${action.label.toLowerCase()}?`);
        button.classList.add("confirming");
        return;
      }
      pending.delete(action.name);
      fill(button, action.label);
      button.classList.remove("confirming");
      act(action.label, action.name, { reason: "from the web UI" }, (r) =>
        r && r.changed === false
          ? `${action.label}: nothing changed (status ${r.run?.status}).`
          : `${action.label}: done.`,
      );
    });
    button.addEventListener("blur", () => {
      if (pending.get(action.name)) {
        pending.delete(action.name);
        fill(button, action.label);
        button.classList.remove("confirming");
      }
    });
    buttons.set(action.name, button);
  }

  const forkButton = h(
    "button",
    { type: "button", class: "action action-fork", disabled: true },
    "Fork from a step",
  );
  const forkHint = h(
    "small",
    { id: "fork-hint", class: "hint" },
    "Choose a step in the timeline to fork from.",
  );
  forkButton.setAttribute("aria-describedby", "fork-hint");
  forkButton.addEventListener("click", async () => {
    if (forkStep === null || busy) return;
    busy = true;
    errors.clear();
    say(`Forking from step ${forkStep}…`);
    try {
      const run = await api(`runs/${seg(runId)}/fork`, {
        method: "POST",
        body: { from_step: forkStep },
      });
      say(`Forked as ${run.id}.`);
      location.hash = runHref(run.id);
    } catch (err) {
      say("");
      errors.show(err);
    } finally {
      busy = false;
    }
  });

  const deleteButton = h(
    "button",
    { type: "button", class: "action action-delete danger secondary" },
    "Delete",
  );
  let deleteAsked = false;
  deleteButton.addEventListener("click", async () => {
    if (!deleteAsked) {
      deleteAsked = true;
      fill(deleteButton, "Really delete?");
      deleteButton.classList.add("confirming");
      return;
    }
    deleteAsked = false;
    fill(deleteButton, "Delete");
    deleteButton.classList.remove("confirming");
    errors.clear();
    try {
      await api(`runs/${seg(runId)}`, { method: "DELETE" });
      location.hash = "#/runs";
    } catch (err) {
      errors.show(err);
    }
  });
  deleteButton.addEventListener("blur", () => {
    deleteAsked = false;
    fill(deleteButton, "Delete");
    deleteButton.classList.remove("confirming");
  });

  // -- sending a message ---------------------------------------------------------------
  const topic = h("input", { name: "topic", autocomplete: "off" });
  const message = h("textarea", { name: "message", rows: "3", spellcheck: "false" });
  const key = h("input", { name: "key", autocomplete: "off" });
  const signal = h(
    "form",
    {
      class: "signal",
      "aria-label": "Send a message to this run",
      onsubmit: (event) => {
        event.preventDefault();
        let value = null;
        const text = message.value.trim();
        if (text) {
          try {
            value = JSON.parse(text);
          } catch (err) {
            errors.show(
              `The message is not valid JSON (${err.message}); write e.g. {"approved": true} or "yes".`,
            );
            message.focus();
            return;
          }
        }
        const body = { topic: topic.value.trim() || null, message: value };
        if (key.value.trim()) body.key = key.value.trim();
        act("Send", "messages", body, (r) =>
          r && r.accepted === false
            ? "Not sent: a message with that key was already delivered."
            : "Message sent.",
        );
      },
    },
    field("Topic", topic, "Empty: the run's default topic."),
    field("Message (JSON)", message),
    field("Key (optional)", key, "A message with a key is delivered once."),
    h("button", { type: "submit" }, "Send message"),
  );
  const signalBox = h(
    "details",
    { class: "signal-box" },
    h("summary", {}, "Send a message…"),
    signal,
  );

  const el = h(
    "section",
    { class: "actions", "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title" }, "Actions"),
    h(
      "div",
      { class: "toolbar", role: "toolbar", "aria-label": "Run actions" },
      [...buttons.values()],
      forkButton,
      deleteButton,
    ),
    forkHint,
    status,
    errors.el,
    signalBox,
  );

  function update(run) {
    current = run;
    if (!run) return;
    for (const action of ACTIONS) {
      const button = buttons.get(action.name);
      const allowed = action.when.includes(run.status);
      button.disabled = busy || !allowed;
      button.title = allowed ? "" : `Not for a ${run.status} run`;
    }
    deleteButton.disabled = busy || !ENDED.includes(run.status);
    forkButton.disabled = busy || forkStep === null;
  }

  return {
    el,
    update,
    forkFrom(position, name) {
      forkStep = position;
      fill(forkButton, `Fork from step ${position} (${name})`);
      update(current);
    },
    forkChosen: () => forkStep,
  };
}
