/**
 * A plausible QuantSpec for tests and benchmarks, before calibration exists: PACT2 formats from
 * float min/max over a few inputs, power-of-2 weight scales, and the n >= 0 rule enforced by
 * lowering a layer's output scale where needed (as TIDL's s_out = accScale / 2^n does).
 */
import { loadModel, type Model } from '../sdk/model.js';
import { placePact2, isWeightLayer } from '../sdk/quant/pact2.js';
import { tensorQ } from '../sdk/quant/ranges.js';
import type { BiasMode, Bits, LayerQ, QuantSpec, TensorQ } from '../sdk/device/spec.js';
import { analyzeWeights, quantizeWeights, weightScales } from '../sdk/quant/weights.js';
import { weightFacts } from '../sdk/ops/index.js';
import { randomArray, readModel } from './helpers.js';

export interface NaiveSpecOptions {
  bits?: Bits;
  perChannel?: boolean;
  biasMode?: BiasMode;
}

export type Ranges = Map<string, [number, number]>;

/** Float min/max of every PACT2 point over the samples. */
export async function floatRanges(model: Model, samples: Record<string, Float32Array>[]): Promise<Ranges> {
  const place = placePact2(model.graph, model.inferred);
  const { plan } = await model.floatPlan(model.inputs[0].shape[0], { keep: place.points });
  const range: Ranges = new Map();
  for (const feeds of samples) {
    plan.run(feeds);
    for (const p of place.points) {
      const v = plan.view(p);
      let [lo, hi] = range.get(p) ?? [Infinity, -Infinity];
      for (let i = 0; i < v.length; i++) {
        lo = Math.min(lo, v[i]);
        hi = Math.max(hi, v[i]);
      }
      range.set(p, [lo, hi]);
    }
  }
  return range;
}

export async function naiveSpec(model: Model, samples: Record<string, Float32Array>[], options: NaiveSpecOptions = {}): Promise<QuantSpec> {
  return specFromRanges(model, await floatRanges(model, samples), options);
}

export function specFromRanges(model: Model, range: Ranges, options: NaiveSpecOptions = {}): QuantSpec {
  const bits = options.bits ?? 8;
  const biasMode = options.biasMode ?? 'mma';
  const { graph, inferred: inf } = model;
  const place = placePact2(graph, inf);
  const formats = new Map<string, TensorQ>();
  for (const [p, [lo, hi]] of range) formats.set(p, tensorQ(place.unsigned.has(p) ? Math.max(0, lo) : lo, hi, bits));
  const format = (t: string) => formats.get(place.formatOf.get(t) ?? t)!;

  const layers: Record<string, LayerQ> = {};
  for (const node of inf.order) {
    if (!isWeightLayer(node, inf)) continue;
    const w = graph.initializers.get(node.inputs[1])!;
    const layout = weightFacts(node)!.layout(inf.compiled.get(node)!.params, w);
    const b = node.inputs[2] ? graph.initializers.get(node.inputs[2]) : undefined;
    const bias = new Float32Array(layout.channels);
    if (b) bias.set(b.data.length === 1 ? new Array(layout.channels).fill(b.data[0]) : b.data);
    const inQ = format(node.inputs[0]);
    const analysis = analyzeWeights(w, layout, !!options.perChannel, false);
    const q = quantizeWeights(analysis, weightScales(analysis, bias, inQ.scaleLog2, { bits, biasMode, signedInput: inQ.signed }).scaleLog2, bits);
    layers[node.name] = { weights: q.data, weightScaleLog2: q.scaleLog2, bias };
    const outQ = format(node.outputs[0]);
    outQ.scaleLog2 = Math.min(outQ.scaleLog2, inQ.scaleLog2 + Math.min(...q.scaleLog2));
  }
  const tensors: Record<string, TensorQ> = {};
  for (const t of place.formatOf.keys()) tensors[t] = format(t);
  return { tensors, layers, biasMode };
}

let shared: Promise<{ model: Model; feeds: Record<string, Float32Array>[]; ranges: Ranges; spec: QuantSpec }> | undefined;

/** The shared MobileNetV2 with two random inputs, their float ranges and an 8-bit spec (made once). */
export function mobileNetV2() {
  shared ??= (async () => {
    const model = await loadModel(readModel('mobilenetv2-12-fp32.onnx'), { inputShape: [1, 3, 224, 224] });
    const feeds = [1, 2].map((seed) => ({ input: randomArray(3 * 224 * 224, seed, -2, 2) }));
    const ranges = await floatRanges(model, feeds);
    return { model, feeds, ranges, spec: specFromRanges(model, ranges) };
  })();
  return shared;
}
