/** Run a fixed-point plan once and keep a copy of every layer's integer output, as traces. */
import { FixedPlan } from '../engine/fixed.js';
import { check } from '../guard.js';
import type { TraceLayer } from './format.js';

export function captureTraces(plan: FixedPlan, feeds: Record<string, Float32Array>): TraceLayer[] {
  check(plan instanceof FixedPlan, 'captureTraces', 'the plan must be a FixedPlan (calibration.fixedPlan(1))');
  const inputs: TraceLayer[] = [];
  const layers: TraceLayer[] = [];
  const takeInputs = () => {
    if (inputs.length) return;
    plan.inputs.forEach((t, i) => inputs.push({ dataId: i, layerId: i, nodes: [], tensor: t.name, q: t.q, type: t.type, shape: t.shape, data: plan.tensor(t.name).slice() }));
  };
  plan.run(feeds, (layer) => {
    // The inputs are intact until the second step: the first reads them.
    takeInputs();
    for (const t of layer.outputs) {
      layers.push({
        dataId: 0, layerId: plan.inputs.length + layer.index, nodes: layer.nodes.map((n) => n.name),
        tensor: t.name, q: t.q, type: t.type, shape: t.shape, data: plan.tensor(t.name).slice(),
      });
    }
  });
  takeInputs();
  const all = [...inputs, ...layers];
  all.forEach((l, i) => { l.dataId = i; });
  return all;
}
