// The pipeline builder: steps from the op catalogue, reordered and checked in the browser, and presets.

import { announce, h, replace } from "./dom.js";
import { check, field, initial } from "./params.js";

/**
 * Ready-made pipelines. Each lists alternatives, best first; the page offers the first one the
 * catalogue at hand supports (every op and parameter present, every value valid), else hides the preset.
 */
export const PRESETS = [
  {
    name: "Thumbnail 512",
    description: "Shrink to fit within 512×512 pixels.",
    variants: [
      [{ op: "thumbnail", width: 512, height: 512 }],
      [{ op: "resize", width: 512, height: 512, fit: "inside" }],
    ],
  },
  {
    name: "Pencil sketch",
    description: "Dark outlines on white, like a pencil drawing.",
    variants: [
      [{ op: "grayscale" }, { op: "denoise", size: 5 }, { op: "edges", normalize: true }, { op: "invert" }],
      [{ op: "grayscale" }, { op: "edges" }, { op: "invert" }],
    ],
  },
  {
    name: "8-colour poster",
    description: "Redraw the image with its 8 most representative colours.",
    variants: [[{ op: "quantize", colors: 8 }]],
  },
  {
    name: "Analyse",
    description: "Dominant colours, perceptual hashes and statistics; the image itself is kept as it is.",
    variants: [[{ op: "palette" }, { op: "hash" }, { op: "stats" }]],
  },
];

/** Tell whether the catalogue can run these steps as written. */
function supported(steps, ops) {
  return steps.every(({ op, ...given }) => {
    const schema = ops.get(op);
    if (!schema) return false;
    return Object.entries(given).every(([name, value]) => {
      const param = schema.params.find((p) => p.name === name);
      return param && !check(param, value).error;
    });
  });
}

/** Return the presets the catalogue supports, each with the steps chosen for it. */
export function availablePresets(ops, presets = PRESETS) {
  return presets
    .map((preset) => ({ ...preset, steps: preset.variants.find((steps) => supported(steps, ops)) }))
    .filter((preset) => preset.steps);
}

let stepKey = 0;

export class Pipeline {
  /** `list` is the <ol> of steps; `onChange` runs after any change. */
  constructor(list, empty, onChange) {
    this.list = list;
    this.empty = empty;
    this.onChange = onChange;
    this.ops = new Map();
    this.maxSteps = 20;
    this.steps = [];
  }

  setCatalog(catalog) {
    this.ops = new Map(catalog.ops.map((op) => [op.name, op]));
    this.maxSteps = catalog.max_steps || 20;
  }

  get full() {
    return this.steps.length >= this.maxSteps;
  }

  /** Add a step for op `name`, with `given` values over the defaults. */
  add(name, given = {}) {
    const op = this.ops.get(name);
    if (!op || this.full) return;
    const values = {};
    for (const param of op.params) {
      const value = given[param.name];
      if (value === undefined) values[param.name] = initial(param);
      else values[param.name] = param.type === "bool" ? Boolean(value) : String(value);
    }
    stepKey += 1;
    this.steps.push({ key: stepKey, op, values, errors: {}, touched: {}, fields: {} });
  }

  /** Replace all steps, e.g. with a preset's. */
  load(steps) {
    this.steps = [];
    for (const { op, ...given } of steps) this.add(op, given);
    this.render();
  }

  move(index, delta) {
    const target = index + delta;
    if (target < 0 || target >= this.steps.length) return;
    const [step] = this.steps.splice(index, 1);
    this.steps.splice(target, 0, step);
    this.render();
    const button = this.list.querySelector(`[data-key="${step.key}"] [data-move="${delta}"]`);
    const fallback = this.list.querySelector(`[data-key="${step.key}"] [data-move="${-delta}"]`);
    (button && !button.disabled ? button : fallback)?.focus();
    announce(`Step ${step.op.name} moved to position ${target + 1}.`);
  }

  removeAt(index) {
    const [step] = this.steps.splice(index, 1);
    this.render();
    const next = this.list.querySelectorAll(".step")[Math.min(index, this.steps.length - 1)];
    (next ? next.querySelector("[data-remove]") : document.getElementById("op-select")).focus();
    announce(`Step ${step.op.name} removed.`);
  }

  /** Check every value; mark the bad ones. Returns {steps} ready for the API, or {error, focus}. */
  validate() {
    const out = [];
    let first = null;
    this.steps.forEach((step) => {
      const body = { op: step.op.name };
      for (const param of step.op.params) {
        const result = check(param, step.values[param.name], step.fields[param.name]?.badInput());
        step.touched[param.name] = true;
        this.showError(step, param.name, result.error || null);
        if (result.error && !first) first = step.fields[param.name];
        if (!result.error && result.value !== null) body[param.name] = result.value;
      }
      out.push(body);
    });
    if (first) return { error: "Some step parameters need fixing (marked below).", focus: first };
    return { steps: out };
  }

  /** Show an error the server found: on the step's parameter if known, else on the step. */
  showServerError(number, paramName, message) {
    const step = this.steps[number - 1];
    if (!step) return null;
    const target = paramName && step.fields[paramName];
    if (target) {
      target.setError(message.replace(/^.*?: /, "").replace(new RegExp(`^${paramName} `), ""));
      target.focus();
      return target;
    }
    const note = this.list.querySelector(`[data-key="${step.key}"] .step-error`);
    if (note) note.textContent = message;
    return null;
  }

  showError(step, name, message) {
    step.errors[name] = message;
    step.fields[name]?.setError(message);
  }

  render() {
    replace(this.list, this.steps.map((step, index) => this.renderStep(step, index)));
    this.empty.hidden = this.steps.length > 0;
    this.onChange();
  }

  renderStep(step, index) {
    const number = index + 1;
    const name = step.op.name;
    const fields = step.op.params.map((param) => {
      const built = field(param, step.values[param.name], (raw, badInput) => {
        step.values[param.name] = raw;
        const result = check(param, raw, badInput);
        this.showError(step, param.name, result.error || null);
        this.clearStepError(step);
      });
      step.fields[param.name] = built;
      if (step.errors[param.name]) built.setError(step.errors[param.name]);
      return built.node;
    });
    const last = this.steps.length - 1;
    const up = h("button", { type: "button", class: "icon", "data-move": "-1", disabled: index === 0,
      "aria-label": `Move step ${number} (${name}) up`, title: "Move up" }, "↑");
    const down = h("button", { type: "button", class: "icon", "data-move": "1", disabled: index === last,
      "aria-label": `Move step ${number} (${name}) down`, title: "Move down" }, "↓");
    const remove = h("button", { type: "button", class: "icon", "data-remove": "",
      "aria-label": `Remove step ${number} (${name})`, title: "Remove" }, "✕");
    up.addEventListener("click", () => this.move(index, -1));
    down.addEventListener("click", () => this.move(index, 1));
    remove.addEventListener("click", () => this.removeAt(index));
    return h("li", { class: "step", "data-key": step.key, "data-op": name },
      h("fieldset", null,
        h("legend", null, `Step ${number}: ${name}`),
        h("div", { class: "step-actions" }, up, down, remove),
        h("p", { class: "muted small" }, step.op.description),
        fields.length ? h("div", { class: "params" }, fields) : null,
        h("p", { class: "step-error field-error", role: "alert" })));
  }

  clearStepError(step) {
    const note = this.list.querySelector(`[data-key="${step.key}"] .step-error`);
    if (note) note.textContent = "";
  }
}
