// The pipeline builder: steps from the op catalogue, reordered and checked in the browser, and presets.

import { announce, h, replace } from "./dom.js";
import { check, field, initial } from "./params.js";

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

/** Return the service's presets (GET /ops, declared in imgjobs/presets.py) whose steps its catalogue can run. */
export function availablePresets(ops, presets) {
  return (presets || []).filter((preset) => supported(preset.ops, ops));
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
