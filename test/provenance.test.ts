/**
 * calibration.json says how it was made and holds every layer's integers: an independent
 * recomputation, written here from the README's rules with nothing but calibration.json and the
 * int8/int16 weights of model.qdq.onnx, reproduces every integer layer's output bit for bit, in
 * the MMA, int16 and 16-bit bias forms; a calibration refuses a model it was not made for.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import type { CalibrationTable } from '../sdk/export/table.js';
import { attrNumber, attrNumbers, type Graph } from '../sdk/graph/ir.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { buildModel, floats, node, randomTensor, rng } from './helpers.js';

/** Conv+Relu, depthwise Conv+Clip, Conv, Add, Concat, padded AveragePool (border windows count
 *  fewer elements), MaxPool, GlobalAveragePool, Mul, Gemm. */
function model(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 12, 12] }],
    outputs: [{ name: 'y', dims: [1, 5] }],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1], strides: [2, 2] }),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'wd', 'bd'], ['c2'], { pads: [1, 1, 1, 1], group: 8 }),
      node('Clip', ['c2', 'zero', 'six'], ['r2']),
      node('Conv', ['r2', 'w3', 'b3'], ['c3']),
      node('Add', ['c3', 'r1'], ['sum']),
      node('Mul', ['sum', 'r2'], ['prod']),
      node('Concat', ['prod', 'r2'], ['cat'], { axis: 1 }),
      node('AveragePool', ['cat'], ['ap'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('MaxPool', ['ap'], ['mp'], { kernel_shape: [2, 2], strides: [2, 2] }),
      node('GlobalAveragePool', ['mp'], ['gap']),
      node('Flatten', ['gap'], ['flat']),
      node('Gemm', ['flat', 'fw', 'fb'], ['y'], { transB: 1 }),
    ],
    initializers: {
      w1: randomTensor([8, 3, 3, 3], 1, -0.5, 0.5), b1: randomTensor([8], 2, -0.2, 0.2),
      wd: randomTensor([8, 1, 3, 3], 3, -1, 1), bd: randomTensor([8], 4, -0.2, 0.2),
      w3: randomTensor([8, 8, 1, 1], 5, -0.5, 0.5), b3: randomTensor([8], 6, -0.1, 0.1),
      fw: randomTensor([5, 16], 7, -1, 1), fb: randomTensor([5], 8, -0.1, 0.1),
      zero: floats([], [0]), six: floats([], [6]),
    },
  });
}

// ---- the rules, as the README states them ----
const roundShift = (acc: number, n: number) => (n <= 0 ? acc * 2 ** -n : Math.floor((acc + 2 ** (n - 1)) / 2 ** n));
const sat = (v: number, [lo, hi]: number[]) => Math.min(hi, Math.max(lo, v));

/** The integer weights of a layer, from the QDQ model: its weight input's DequantizeLinear. */
function qdqWeights(g: Graph, layer: string): { data: ArrayLike<number>; dims: number[] } {
  const n = g.nodes.find((x) => x.name === layer)!;
  const dq = g.nodes.find((x) => x.outputs[0] === n.inputs[1] && x.op === 'DequantizeLinear')!;
  const t = g.initializers.get(dq.inputs[0])!;
  return { data: t.data, dims: t.dims };
}

type Ints = Map<string, ArrayLike<number>>;

/** One step of calibration.json's integers, recomputed from its inputs' integers. */
function recompute(name: string, s: NonNullable<CalibrationTable['integers']>[string], g: Graph, model: Graph, ints: Ints, shapes: Map<string, number[]>): number[] | undefined {
  const p = s.params as Record<string, any>;
  const x = ints.get(s.inputs[0].name)!;
  const xs = shapes.get(s.inputs[0].name)!;
  const ys = shapes.get(s.outputs[0].name)!;
  const out = new Array<number>(ys.reduce((a, b) => a * b, 1)).fill(0);
  const op = s.ops[0];
  const src = model.nodes.find((n) => n.name === name)!;
  if (op === 'Conv') {
    const w = qdqWeights(g, name);
    const [m, cg, kh, kw] = w.dims;
    const [, c, h, wd] = xs;
    const [, , oh, ow] = ys;
    const group = attrNumber(src, 'group', 1);
    const [sh, sw] = attrNumbers(src, 'strides') ?? [1, 1];
    const [pt, pl] = attrNumbers(src, 'pads') ?? [0, 0];
    for (let o = 0; o < m; o++) {
      const gi = Math.floor(o / (m / group));
      for (let yy = 0; yy < oh; yy++) {
        for (let xx = 0; xx < ow; xx++) {
          let acc = 0;
          for (let ci = 0; ci < cg; ci++) {
            for (let u = 0; u < kh; u++) {
              for (let v = 0; v < kw; v++) {
                const iy = yy * sh - pt + u, ix = xx * sw - pl + v;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x[((gi * cg + ci) * h + iy) * wd + ix] * w.data[((o * cg + ci) * kh + u) * kw + v];
              }
            }
          }
          out[(o * oh + yy) * ow + xx] = sat(roundShift(acc + p.bias[o], p.shift[o]), p.saturate);
        }
      }
      assert.ok(c === cg * group);
    }
    return out;
  }
  if (op === 'Gemm') {
    const w = qdqWeights(g, name); // [N, K] (transB)
    const [n, k] = w.dims;
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += x[t] * w.data[j * k + t];
      out[j] = sat(roundShift(acc + p.bias[j], p.shift[j]), p.saturate);
    }
    return out;
  }
  if (op === 'Add' || op === 'Mul') {
    const b = ints.get(s.inputs[1].name)!;
    for (let i = 0; i < out.length; i++) {
      out[i] = sat(roundShift(op === 'Mul' ? x[i] * b[i] : p.factors[0] * x[i] + p.factors[1] * b[i], p.shift), p.saturate);
    }
    return out;
  }
  if (op === 'Concat') {
    let offset = 0;
    s.inputs.forEach((inp, k) => {
      const v = ints.get(inp.name)!;
      for (let i = 0; i < v.length; i++) out[offset + i] = sat(roundShift(v[i] * p.inputs[k].factor, p.inputs[k].shift), p.saturate);
      offset += v.length;
    });
    return out;
  }
  if (op === 'AveragePool' || op === 'GlobalAveragePool' || op === 'MaxPool') {
    const [, c, h, wd] = xs;
    const [, , oh, ow] = ys.length === 4 ? ys : [1, c, 1, 1];
    const global = op === 'GlobalAveragePool';
    const [kh, kw] = global ? [h, wd] : attrNumbers(src, 'kernel_shape')!;
    const [sh, sw] = global ? [1, 1] : attrNumbers(src, 'strides') ?? [1, 1];
    const [pt, pl] = global ? [0, 0] : attrNumbers(src, 'pads') ?? [0, 0];
    for (let ch = 0; ch < c; ch++) {
      for (let yy = 0; yy < oh; yy++) {
        for (let xx = 0; xx < ow; xx++) {
          let sum = 0, count = 0, max = -Infinity;
          for (let u = 0; u < kh; u++) {
            for (let v = 0; v < kw; v++) {
              const iy = yy * sh - pt + u, ix = xx * sw - pl + v;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              const val = x[(ch * h + iy) * wd + ix];
              sum += val;
              max = Math.max(max, val);
              count++;
            }
          }
          const i = (ch * oh + yy) * ow + xx;
          if (op === 'MaxPool') {
            out[i] = sat(roundShift(max * (p.factor ?? 1), p.shift ?? 0), p.saturate ?? [-Infinity, Infinity]);
          } else {
            // A window with fewer elements gets its own multiplier from the same rule.
            const sBits = p.reciprocalShift - Math.floor(Math.log2(p.windowCount));
            const rs = sBits + Math.floor(Math.log2(count));
            const m = count === p.windowCount ? p.multiplier : Math.floor(2 ** rs / count + 0.5);
            out[i] = sat(roundShift(sum * m, rs + (p.shift - p.reciprocalShift)), p.saturate);
          }
        }
      }
    }
    return out;
  }
  return undefined;
}

async function checkRecomputation(options: sdk.CalibrateOptions) {
  const bytes = model();
  const m = await sdk.loadModel(bytes);
  const r = rng(3);
  const samples = Array.from({ length: 4 }, () => Float32Array.from({ length: 3 * 12 * 12 }, () => r(-1, 2)));
  const cal = await sdk.calibrate(m, samples, options);
  // Through the file: what a user's own tool would read.
  const table = JSON.parse(sdk.tableJson(cal.table)) as CalibrationTable;
  const qdq = decodeModel(cal.toQdqOnnx());
  const plan = await cal.fixedPlan(1);
  const ints: Ints = new Map();
  plan.run({ x: samples[1] }, (layer) => {
    // The input's buffer is reused once its last reader has run: read it after the first step.
    if (!ints.has('x')) ints.set('x', Float64Array.from(plan.tensor('x')));
    for (const t of layer.outputs) ints.set(t.name, Float64Array.from(plan.tensor(t.name)));
  });
  // The input itself: quantized at its recorded scale, half away from zero.
  const inQ = table.integers![Object.keys(table.integers!)[0]].inputs[0];
  const range = { int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535] }[inQ.type];
  assert.equal(Array.from(ints.get('x')!), Array.from(samples[1], (v) => sat(Math.sign(v) * Math.floor(Math.abs(v) * 2 ** inQ.scaleLog2 + 0.5), range)));
  const shapes = new Map([...m.inferred.values].map(([k, v]) => [k, v.shape]));
  const seen = new Set<string>();
  for (const [name, step] of Object.entries(table.integers!)) {
    if (step.arithmetic !== 'integer') continue;
    const want = recompute(name, step, qdq, m.graph, ints, shapes);
    if (!want) continue;
    seen.add(step.ops[0]);
    assert.equal(Array.from(ints.get(step.outputs[0].name)!), want, `${name} (${step.ops.join('+')}) recomputed from calibration.json`);
  }
  assert.equal([...seen].sort(), ['Add', 'AveragePool', 'Concat', 'Conv', 'Gemm', 'GlobalAveragePool', 'MaxPool', 'Mul']);
  return table;
}

test('calibration.json: every integer layer recomputes bit-exactly from its integers (MMA bias)', async () => {
  const t = await checkRecomputation({ preset: 'advanced-dw' });
  const conv = t.integers!['Conv_c1'];
  assert.equal(conv.params!.bias, t.layers['Conv_c1'].biasA!.map((a, c) => a * t.layers['Conv_c1'].biasB![c]), 'the MMA bias added is biasA x biasB');
  assert.is(conv.weights!.clip, null);
});

test('calibration.json: the int16 bias form and 16-bit layers recompute too', async () => {
  await checkRecomputation({ preset: 'advanced', biasMode: 'int16' });
  const t = await checkRecomputation({ preset: 'simple', bits: 16 });
  assert.ok(Object.values(t.integers!).some((s) => s.outputs[0].type === 'int16' || s.outputs[0].type === 'uint16'));
});

test('calibration.json: a weight scale lowered by the bias cap says why; an outlier weight clip is recorded', async () => {
  // Tiny weights and a large bias: the int16 bias at the weight scale forces the scale down.
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 2, 4, 4] }], outputs: [{ name: 'y' }],
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'])],
    initializers: {
      w: floats([2, 2, 1, 1], [0.001, -0.002, 40, 0.5]), b: floats([2], [5000, -1]),
    },
  });
  const m = await sdk.loadModel(bytes);
  const r = rng(1);
  const cal = await sdk.calibrate(m, [Float32Array.from({ length: 32 }, () => r(-1, 1))], { preset: 'advanced' });
  const w = cal.table.integers!['Conv_y'].weights!;
  assert.match(w.lowered ?? '', /int16 at the weight scale/);
  assert.ok(cal.table.layers['Conv_y'].weightScaleLog2[0] < w.scaleLog2FromWeights[0]);
  assert.is(w.clip, 7.5, 'max|w| 40 > 16 x median: clipped to 2^ceil(log2 16·median) x 120/128');
});

test('provenance: model hash, input shape, options with defaults; loadCalibration refuses another model', async () => {
  const bytes = model();
  const m = await sdk.loadModel(bytes);
  const r = rng(4);
  const cal = await sdk.calibrate(m, [Float32Array.from({ length: 3 * 12 * 12 }, () => r(-1, 1))], {
    source: { preprocessing: sdk.presetSpec('imagenet'), images: [{ name: 'a.png', sha256: 'ab'.repeat(32) }] },
  });
  const p = cal.table.provenance!;
  assert.is(p.model.sha256, m.sha256);
  assert.match(p.model.sha256!, /^[0-9a-f]{64}$/);
  assert.equal(p.inputShape, { x: [1, 3, 12, 12] });
  assert.is(p.options.preset, 'advanced');
  assert.is(p.options.iterations, 1);
  assert.is(p.images.count, 1);
  assert.match(p.images.sha256!, /^[0-9a-f]{64}$/);
  assert.is(cal.preprocessing!.resize, 'crop');
  const again = sdk.loadCalibration(m, JSON.parse(sdk.tableJson(cal.table)));
  assert.equal(again.toQdqOnnx(), cal.toQdqOnnx());
  const other = await sdk.loadModel(buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 12, 12] }], outputs: [{ name: 'y', dims: [1, 5] }],
    nodes: decodeModel(bytes).nodes, initializers: Object.fromEntries([...decodeModel(bytes).initializers].map(([k, v]) => [k, k === 'fb' ? floats([5], [0, 0, 0, 0, 1]) : v])),
  }));
  try {
    sdk.loadCalibration(other, cal.table);
    assert.unreachable('another model must be refused');
  } catch (e) {
    assert.instance(e, sdk.P2Error);
    assert.match((e as Error).message, /made for another model: its SHA-256 is [0-9a-f]{16}…, this model's is/);
  }
});

test.run();
