// Building DOM nodes. Every string becomes a text node or an attribute value, never
// markup: no code in this UI parses HTML, so a run id or an error message that contains
// "<script>" is shown as the text it is.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      el[name] = value; // properties, so they also hold after the user edits the field
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("a", {href: "#/runs"}, "Runs"). Strings are text, never markup. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, built the same way as h(). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replace everything inside el with children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status as a coloured badge; the colour also comes with the word. */
export function badge(status) {
  const name = String(status || "unknown");
  return h(
    "span",
    { class: `status status-${name.replace(/[^a-z_]/g, "")}` },
    name.replace("_", " "),
  );
}

/** JSON, pretty-printed, in a <pre> (as text). */
export function jsonBlock(value, label) {
  const text = value === undefined ? "" : JSON.stringify(value, null, 2);
  return h("pre", { class: "json", "aria-label": label || null, tabindex: "0" }, text);
}
