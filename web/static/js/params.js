// Op parameters as the catalogue describes them: an input for each type, and the same checks the server makes.

import { h, uid } from "./dom.js";

const COLOR = /^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;

/** Describe the numbers a parameter accepts, in the server's words. */
function expected(param) {
  const noun = param.type === "int" ? "an integer" : "a number";
  const low = param.minimum;
  const high = param.maximum;
  if (low !== undefined && high !== undefined) return `${noun} from ${low} to ${high}`;
  if (low !== undefined) return `${noun} of at least ${low}`;
  if (high !== undefined) return `${noun} of at most ${high}`;
  return noun;
}

/** Check a raw input value: {value} when fine (null for "not given"), {error} otherwise. */
export function check(param, raw, badInput = false) {
  if (param.type === "bool") return { value: Boolean(raw) };
  const text = typeof raw === "string" ? raw.trim() : raw;
  if (badInput) return { error: `must be ${expected(param)}` };
  if (text === "" || text === null || text === undefined) {
    return param.required ? { error: "is required" } : { value: null };
  }
  if (param.type === "choice") {
    return param.choices.includes(text) ? { value: text } : { error: `must be one of ${param.choices.join(", ")}` };
  }
  if (param.type === "color") {
    return COLOR.test(text) ? { value: text.toLowerCase() } : { error: "must be a colour like #ff8800 or #ff880080" };
  }
  const number = typeof text === "number" ? text : Number(text);
  const whole = param.type === "int";
  if (!Number.isFinite(number) || (whole && !Number.isInteger(number))
      || (param.minimum !== undefined && number < param.minimum)
      || (param.maximum !== undefined && number > param.maximum)) {
    return { error: `must be ${expected(param)}` };
  }
  return { value: number };
}

/** The value an input starts with: the default, else empty. */
export function initial(param) {
  if (param.type === "bool") return Boolean(param.default);
  if (param.default === undefined || param.default === null) return param.type === "choice" ? param.choices[0] : "";
  return String(param.default);
}

/** Words under an input: the description, the range and whether it may stay empty. */
function hint(param) {
  const parts = [param.description];
  if (param.type === "int" || param.type === "float") {
    if (param.minimum !== undefined || param.maximum !== undefined) {
      parts.push(`${param.minimum ?? "…"} to ${param.maximum ?? "…"}.`);
    }
  }
  if (!param.required && param.default === undefined && param.type !== "bool") parts.push("Optional.");
  return parts.filter(Boolean).join(" ");
}

/**
 * Build the field for one parameter. `onInput(raw, badInput)` is called on every change;
 * returns {node, setError(message|null), focus()}.
 */
export function field(param, raw, onInput) {
  const id = uid("param");
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const described = `${hintId} ${errorId}`;
  const label = h("label", { for: id }, param.name, param.required ? h("span", { class: "req" }, " (required)") : null);
  const error = h("span", { id: errorId, class: "field-error" });
  let input;
  let extra = null;

  if (param.type === "bool") {
    input = h("input", { id, type: "checkbox", checked: Boolean(raw), "aria-describedby": described });
    input.addEventListener("change", () => onInput(input.checked, false));
    return finish(h("div", { class: "field check" }, input, label), input, error, hintId, param);
  }
  if (param.type === "choice") {
    input = h("select", { id, "aria-describedby": described },
      param.choices.map((choice) => h("option", { value: choice, selected: choice === raw, text: choice })));
    input.addEventListener("change", () => onInput(input.value, false));
  } else if (param.type === "color") {
    input = h("input", { id, type: "text", value: raw, size: 10, spellcheck: "false", autocomplete: "off",
      placeholder: "#rrggbb", "aria-describedby": described, class: "color-text" });
    const picker = h("input", { type: "color", value: COLOR.test(raw) ? raw.slice(0, 7) : "#000000",
      "aria-label": `${param.name}: colour picker`, class: "color-picker" });
    picker.addEventListener("input", () => {
      const alpha = COLOR.test(input.value) && input.value.length === 9 ? input.value.slice(7) : "";
      input.value = picker.value + alpha;
      onInput(input.value, false);
    });
    input.addEventListener("input", () => {
      if (COLOR.test(input.value.trim())) picker.value = input.value.trim().slice(0, 7).toLowerCase();
      onInput(input.value, false);
    });
    extra = picker;
  } else {
    const whole = param.type === "int";
    input = h("input", { id, type: "number", value: raw, step: whole ? "1" : "any",
      min: param.minimum, max: param.maximum, inputmode: whole ? "numeric" : "decimal",
      placeholder: param.required ? "" : "optional", "aria-describedby": described });
    input.addEventListener("input", () => onInput(input.value, input.validity.badInput));
  }
  const control = extra ? h("div", { class: "color-pair" }, extra, input) : input;
  return finish(h("div", { class: "field" }, label, control), input, error, hintId, param);
}

function finish(node, input, error, hintId, param) {
  node.append(h("span", { id: hintId, class: "hint" }, hint(param)), error);
  return {
    node,
    focus: () => input.focus(),
    badInput: () => Boolean(input.validity && input.validity.badInput),
    setError(message) {
      error.textContent = message ? `${param.name} ${message}` : "";
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}
