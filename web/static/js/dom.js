// Building DOM safely: text is always set as text, never parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Set attributes and properties on `node`; refuse event-handler attributes. */
function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) throw new Error(`use addEventListener, not ${key}`);
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in PROPERTIES) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

const PROPERTIES = { value: 1, checked: 1, disabled: 1, hidden: 1, selected: 1 };

/** Append children: nodes as they are, strings as text nodes. */
function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Create an HTML element: h("p", {class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** Create an SVG element. */
export function svg(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replace all children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Tell screen-reader users what just happened. */
export function announce(message) {
  const region = document.getElementById("announce");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = message; }, 50);
}

let counter = 0;

/** Return an id unique in this page. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Format a byte count for people: 1.2 MB. */
export function bytes(count) {
  if (typeof count !== "number" || !Number.isFinite(count)) return "?";
  if (count < 1024) return `${count} B`;
  const units = ["KB", "MB", "GB"];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
