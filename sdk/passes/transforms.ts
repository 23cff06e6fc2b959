/**
 * Graph rewrites run at load: constant folding, Identity/Dropout removal, BatchNormalization
 * folding into the preceding Conv/Gemm, hard-sigmoid/hard-swish recognition and dead-code
 * removal. Each takes and mutates a graph the caller owns.
 */
import type { Inferred } from './infer.js';
import { batchNormAffine } from '../ops/batchnorm.js';
import { attrNumber, attrNumbers, consumers, producers, tensor, type Graph, type Node, type Tensor } from '../graph/ir.js';

/** Replace every node whose outputs are all known constants by initializers. */
export function foldConstants(graph: Graph, inferred: Inferred): void {
  const keep: Node[] = [];
  for (const node of graph.nodes) {
    const outs = inferred.compiled.get(node)!.outputs;
    if (outs.every((o) => o.value)) {
      node.outputs.forEach((name, k) => { if (name) graph.initializers.set(name, outs[k].value!); });
    } else {
      keep.push(node);
    }
  }
  graph.nodes = keep;
  removeDead(graph);
}

/** Drop nodes and initializers that no graph output depends on. */
export function removeDead(graph: Graph): void {
  const needed = new Set(graph.outputs.map((o) => o.name));
  const prod = producers(graph);
  const live = new Set<Node>();
  const stack = [...needed];
  while (stack.length) {
    const name = stack.pop()!;
    const n = prod.get(name);
    if (!n || live.has(n)) continue;
    live.add(n);
    for (const i of n.inputs) if (i && !needed.has(i)) { needed.add(i); stack.push(i); }
  }
  graph.nodes = graph.nodes.filter((n) => live.has(n));
  for (const name of [...graph.initializers.keys()]) if (!needed.has(name)) graph.initializers.delete(name);
}

/** Identity and inference-mode Dropout pass their input through; remove them. Renames are
 *  collected and applied once, so that long chains stay linear. */
export function removeIdentities(graph: Graph): void {
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const renamed = new Map<string, string>();
  const current = (name: string) => {
    let n = name;
    while (renamed.has(n)) n = renamed.get(n)!;
    if (n !== name) renamed.set(name, n);
    return n;
  };
  const removed = new Set<Node>();
  for (const node of graph.nodes) {
    if ((node.op !== 'Identity' && node.op !== 'Dropout') || node.domain) continue;
    if (node.outputs.slice(1).some((o) => o)) continue; // Dropout mask in use
    const src = current(node.inputs[0]);
    const dst = current(node.outputs[0]);
    if (src === dst) continue;
    if (!graphOutputs.has(dst)) {
      removed.add(node);
      renamed.set(dst, src);
    } else if (!graphOutputs.has(src) && !graphInputs.has(src) && !graph.initializers.has(src)) {
      // The identity feeds a graph output: let the producer write that name directly.
      removed.add(node);
      renamed.set(src, dst);
    }
  }
  if (!removed.size) return;
  graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  for (const n of graph.nodes) {
    n.inputs = n.inputs.map((i) => (i ? current(i) : i));
    n.outputs = n.outputs.map((o) => (o ? current(o) : o));
  }
}

export function uniqueName(graph: Graph, base: string): string {
  let name = base;
  for (let i = 1; graph.initializers.has(name); i++) name = `${base}_${i}`;
  return name;
}

/**
 * What a folded BatchNorm says of its Conv's output channels: their mean (beta) and standard
 * deviation (|gamma|) over the training data, for bias absorption (passes/equalize.ts). Valid
 * while the Conv still reads the weights and bias the folding wrote.
 */
export interface ChannelStats {
  mean: ArrayLike<number>;
  std: number[];
  weights: string;
  bias: string;
}

/**
 * Fold BatchNormalization into the Conv or Gemm that feeds only it:
 * s = gamma / sqrt(var + eps), W' = W * s (per output channel), b' = (b - mean) * s + beta.
 * A BN after anything else stays an op. Returns the folded Convs' channel statistics.
 */
export function foldBatchNorm(graph: Graph): Map<Node, ChannelStats> {
  const stats = new Map<Node, ChannelStats>();
  const readers = consumers(graph);
  const prod = producers(graph);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const removed = new Set<Node>();
  for (const bn of graph.nodes) {
    if (bn.op !== 'BatchNormalization' || bn.outputs.slice(1).some((o) => o)) continue;
    const [x, gammaName, betaName, meanName, varName] = bn.inputs;
    const p = prod.get(x);
    if (!p || (p.op !== 'Conv' && p.op !== 'Gemm') || readers.get(x)!.length !== 1 || graphOutputs.has(x)) continue;
    const bnParams = [gammaName, betaName, meanName, varName].map((n) => graph.initializers.get(n));
    const w = graph.initializers.get(p.inputs[1]);
    const b = p.inputs[2] ? graph.initializers.get(p.inputs[2]) : undefined;
    if (bnParams.some((t) => !t) || !w || (p.inputs[2] && !b)) continue;
    const [gamma, beta, mean, variance] = bnParams as Tensor[];
    const eps = attrNumber(bn, 'epsilon', 1e-5);
    const m = gamma.data.length;
    const { s } = batchNormAffine(gamma.data, beta.data, mean.data, variance.data, eps);

    // Z = s*(alpha*X*W + beta*C - mean) + beta_bn: weights scale by s*alpha, bias is s*(beta*C - mean) + beta_bn.
    let scaleAxisOuter: boolean; // whether the output channel is W's outer axis
    let alpha = 1;
    let bias: number[];
    if (p.op === 'Conv') {
      if (w.dims[0] !== m) continue;
      scaleAxisOuter = true;
      bias = Array.from({ length: m }, (_, c) => (b ? b.data[c] : 0));
    } else {
      const transB = attrNumber(p, 'transB', 0) !== 0;
      if (w.dims.length !== 2 || (transB ? w.dims[0] : w.dims[1]) !== m) continue;
      if (b && !(b.data.length === m || b.data.length === 1)) continue;
      scaleAxisOuter = transB;
      alpha = attrNumber(p, 'alpha', 1);
      const beta = attrNumber(p, 'beta', 1);
      bias = Array.from({ length: m }, (_, c) => (b ? beta * b.data[b.data.length === 1 ? 0 : c] : 0));
      p.attrs = { ...p.attrs, alpha: { type: 'float', value: 1 }, beta: { type: 'float', value: 1 } };
    }
    const newW = tensor('float32', w.dims);
    const inner = scaleAxisOuter ? w.data.length / m : 1;
    for (let i = 0; i < w.data.length; i++) {
      const c = scaleAxisOuter ? Math.floor(i / inner) : i % m;
      newW.data[i] = w.data[i] * s[c] * alpha;
    }
    const newB = tensor('float32', [m], bias.map((v, c) => (v - mean.data[c]) * s[c] + beta.data[c]));
    const wName = uniqueName(graph, `${p.inputs[1]}_bnfolded`);
    const bName = uniqueName(graph, `${p.name || p.inputs[1]}_bias_bnfolded`);
    graph.initializers.set(wName, newW);
    graph.initializers.set(bName, newB);
    p.inputs = [p.inputs[0], wName, bName];
    // The Conv now writes what the BN wrote.
    p.outputs = [bn.outputs[0]];
    removed.add(bn);
    if (p.op === 'Conv') stats.set(p, { mean: beta.data, std: Array.from(gamma.data, Math.abs), weights: wName, bias: bName });
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  if (removed.size) removeDead(graph);
  return stats;
}

function scalar(graph: Graph, name: string | undefined): number | undefined {
  const t = name ? graph.initializers.get(name) : undefined;
  return t && t.data.length === 1 ? t.data[0] : undefined;
}

/** A Clip's constant bounds in either opset form (unbounded sides as -Infinity/Infinity). */
export function clipBounds(graph: Graph, n: Node): [number, number] | undefined {
  if (graph.opset < 11) return [attrNumber(n, 'min', -Infinity), attrNumber(n, 'max', Infinity)];
  const lo = n.inputs[1] ? scalar(graph, n.inputs[1]) : -Infinity;
  const hi = n.inputs[2] ? scalar(graph, n.inputs[2]) : Infinity;
  return lo === undefined || hi === undefined ? undefined : [lo, hi];
}

const near = (a: number | undefined, b: number) => a !== undefined && Math.abs(a - b) < 1e-6;

/**
 * Recognise the decompositions exporters write for hard-sigmoid and hard-swish and replace them
 * by HardSigmoid / HardSwish nodes, so that later stages see one activation with one range:
 *   Div(Clip(Add(x, 3), 0, 6), 6) or Mul(Clip(Add(x, 3), 0, 6), 1/6)  -> HardSigmoid(x; 1/6, 0.5)
 *   Mul(x, HardSigmoid(x; 1/6, 0.5))                                    -> HardSwish(x)
 *   Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)                               -> HardSwish(x)
 */
export function recognizeHardActivations(graph: Graph): number {
  let count = 0;
  for (let changed = true; changed; ) {
    changed = false;
    const prod = producers(graph);
    const readers = consumers(graph);
    const outputs = new Set(graph.outputs.map((o) => o.name));
    const single = (name: string) => !outputs.has(name) && (readers.get(name)?.length ?? 0) === 1;
    // x + 3 clipped to [0, 6]: returns x.
    const relu6Plus3 = (name: string): string | undefined => {
      const c = prod.get(name);
      if (!c || c.op !== 'Clip' || !single(name)) return undefined;
      const bounds = clipBounds(graph, c);
      if (!bounds || bounds[0] !== 0 || bounds[1] !== 6) return undefined;
      const a = prod.get(c.inputs[0]);
      if (!a || a.op !== 'Add' || !single(c.inputs[0])) return undefined;
      if (near(scalar(graph, a.inputs[1]), 3)) return a.inputs[0];
      if (near(scalar(graph, a.inputs[0]), 3)) return a.inputs[1];
      return undefined;
    };
    const divBy6 = (n: Node) =>
      (n.op === 'Div' && near(scalar(graph, n.inputs[1]), 6)) || (n.op === 'Mul' && near(scalar(graph, n.inputs[1]), 1 / 6));
    // The maps are those of the pass's start: a node takes part in one rewrite per pass, and a
    // rewrite that builds on another one (HardSwish on a new HardSigmoid) waits for the next pass.
    const touched = new Set<Node>();
    const replaced = new Map<Node, Node>();
    const replace = (dead: Node[], last: Node, op: string, x: string, attrs: Node['attrs']) => {
      if (touched.has(last) || dead.some((n) => touched.has(n))) return;
      for (const n of [last, ...dead]) touched.add(n);
      replaced.set(last, { name: last.name, op, domain: '', inputs: [x], outputs: [last.outputs[0]], attrs });
      count++;
      changed = true;
    };
    for (const n of graph.nodes) {
      if (divBy6(n)) {
        const x = relu6Plus3(n.inputs[0]);
        if (x) {
          replace([prod.get(n.inputs[0])!, prod.get(prod.get(n.inputs[0])!.inputs[0])!], n, 'HardSigmoid', x,
            { alpha: { type: 'float', value: 1 / 6 }, beta: { type: 'float', value: 0.5 } });
          continue;
        }
        const m = prod.get(n.inputs[0]);
        if (n.op === 'Div' && m && m.op === 'Mul' && single(n.inputs[0])) {
          const [p, q] = m.inputs;
          const xq = relu6Plus3(q), xp = relu6Plus3(p);
          const x = xq === p ? p : xp === q ? q : undefined;
          if (x) {
            const clipOut = x === p ? q : p;
            replace([m, prod.get(clipOut)!, prod.get(prod.get(clipOut)!.inputs[0])!], n, 'HardSwish', x, {});
            continue;
          }
        }
      }
      if (n.op === 'Mul') {
        const [p, q] = n.inputs;
        for (const [x, h] of [[p, q], [q, p]]) {
          const hs = prod.get(h);
          if (hs && hs.op === 'HardSigmoid' && hs.inputs[0] === x && single(h) &&
              near(attrNumber(hs, 'alpha', 0.2), 1 / 6) && near(attrNumber(hs, 'beta', 0.5), 0.5)) {
            replace([hs], n, 'HardSwish', x, {});
            break;
          }
        }
      }
    }
    if (changed) graph.nodes = graph.nodes.filter((n) => replaced.has(n) || !touched.has(n)).map((n) => replaced.get(n) ?? n);
  }
  if (count) removeDead(graph);
  return count;
}

/**
 * The output channel of every flat weight index of a Conv ([M, C/g, kh, kw]) or a ConvTranspose
 * with one group ([C, M, kh, kw]), and M; undefined for a grouped ConvTranspose.
 */
function convChannels(p: Node, w: Tensor): { m: number; channelOf: (i: number) => number } | undefined {
  if (p.op === 'Conv') {
    const inner = w.data.length / w.dims[0];
    return { m: w.dims[0], channelOf: (i) => Math.floor(i / inner) };
  }
  if (p.op !== 'ConvTranspose' || attrNumber(p, 'group', 1) !== 1 || w.dims.length < 2) return undefined;
  const plane = w.dims.slice(2).reduce((a, b) => a * b, 1);
  return { m: w.dims[1], channelOf: (i) => Math.floor(i / plane) % w.dims[1] };
}

/** Per-channel values of a constant that broadcasts onto an NC... output of `m` channels as
 *  [1, M, 1, ...] (or a scalar); undefined otherwise. */
function perChannel(c: Tensor, m: number, rank: number): ((ch: number) => number) | undefined {
  if (c.data.length === 1) return () => c.data[0];
  if (c.dims.length > rank) return undefined;
  const padded = [...new Array<number>(rank - c.dims.length).fill(1), ...c.dims];
  return padded.every((d, i) => (i === 1 ? d === m : d === 1)) ? (ch) => c.data[ch] : undefined;
}

/**
 * Fold every `op` node with one constant operand c into the layer p (constant weights) writing its
 * other operand x, where x has no other reader and is no model output: `fold` rewrites p's inputs
 * (and returns true) or leaves it (false); p then writes what the node wrote.
 */
function foldIntoLayer(graph: Graph, op: string, fold: (p: Node, w: Tensor, c: Tensor, x: string) => boolean): number {
  let folded = 0;
  const readers = consumers(graph);
  const prod = producers(graph);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const removed = new Set<Node>();
  for (const n of graph.nodes) {
    if (n.op !== op) continue;
    const k = n.inputs.findIndex((i) => graph.initializers.has(i));
    if (k < 0) continue;
    const x = n.inputs[1 - k];
    const p = prod.get(x);
    if (!p || readers.get(x)!.length !== 1 || graphOutputs.has(x) || !graph.initializers.has(p.inputs[1])) continue;
    if (!fold(p, graph.initializers.get(p.inputs[1])!, graph.initializers.get(n.inputs[k])!, x)) continue;
    p.outputs = [n.outputs[0]];
    removed.add(n);
    folded++;
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  if (folded) removeDead(graph);
  return folded;
}

/**
 * Fold a Mul by a constant per-channel vector (a BatchNormalization exported as Mul and Add, as
 * paddle2onnx writes it) into the Conv or ConvTranspose before it: W' = W * c per output channel,
 * b' = b * c. The Add that usually follows is then a bias Add (foldBiasAdds).
 */
export function foldScaleMuls(graph: Graph, shapeOf: (name: string) => number[] | undefined): number {
  return foldIntoLayer(graph, 'Mul', (p, w, c, x) => {
    const layout = convChannels(p, w);
    const scale = layout && perChannel(c, layout.m, shapeOf(x)?.length ?? 0);
    const b = p.inputs[2] ? graph.initializers.get(p.inputs[2]) : undefined;
    if (!layout || !scale || (p.inputs[2] && !b)) return false;
    const wName = uniqueName(graph, `${p.inputs[1]}_scaled`);
    graph.initializers.set(wName, tensor('float32', w.dims, Array.from(w.data, (v, i) => v * scale(layout.channelOf(i)))));
    p.inputs = [p.inputs[0], wName, ...(b ? [uniqueName(graph, `${p.name || p.inputs[1]}_bias_scaled`)] : [])];
    if (b) graph.initializers.set(p.inputs[2], tensor('float32', [layout.m], Array.from(b.data, (v, ch) => v * scale(ch))));
    return true;
  });
}

/**
 * Fold an Add of a constant per-channel vector into the layer before it, the form the device
 * runs (one layer with a bias): MatMul(A[M,K], B) + c[N] -> Gemm(A, B, c), and
 * Conv/ConvTranspose(x, W[, b]) + c[1,M,1,1] -> Conv/ConvTranspose(x, W, b + c).
 */
export function foldBiasAdds(graph: Graph, shapeOf: (name: string) => number[] | undefined): number {
  return foldIntoLayer(graph, 'Add', (p, w, c, x) => {
    const nonUnit = c.dims.filter((d) => d !== 1);
    if (p.op === 'MatMul' && shapeOf(p.inputs[0])?.length === 2 && w.dims.length === 2) {
      const n = w.dims[1];
      if (nonUnit.length !== 1 || nonUnit[0] !== n || c.dims.length > 2 || (c.dims.length === 2 && c.dims[1] !== n)) return false;
      const bName = uniqueName(graph, `${p.inputs[1]}_bias`);
      graph.initializers.set(bName, tensor('float32', [n], c.data));
      p.op = 'Gemm';
      p.inputs = [p.inputs[0], p.inputs[1], bName];
      p.attrs = {};
    } else if (p.op === 'Conv' || p.op === 'ConvTranspose') {
      const layout = convChannels(p, w);
      // Per-channel only: c broadcast to the output's rank must be [1, M, 1, ...] (or a scalar).
      const shift = layout && perChannel(c, layout.m, shapeOf(x)?.length ?? 0);
      if (!layout || !shift) return false;
      const old = p.inputs[2] ? graph.initializers.get(p.inputs[2]) : undefined;
      const bName = uniqueName(graph, `${p.name || p.inputs[1]}_bias_folded`);
      graph.initializers.set(bName, tensor('float32', [layout.m], Array.from({ length: layout.m }, (_, i) => shift(i) + (old ? old.data[i] : 0))));
      p.inputs = [p.inputs[0], p.inputs[1], bName];
    } else {
      return false;
    }
    return true;
  });
}

/**
 * The device runs every channel-wise broadcast with a constant, and a BatchNormalization that did
 * not fold, as a BatchNorm layer: a per-channel scale and bias in integer arithmetic (TIDL's
 * operator mapping). Give them that form here, a depthwise 1x1 Conv, so that they quantize,
 * calibrate, export and trace as the layer the device runs rather than as float fallback:
 * x*c, x+c, x-c, c-x with c a float scalar or [1, C, 1, ...] on an N, C, spatial... tensor of 1 or
 * 2 spatial axes, and such a BatchNormalization. A Mul's following constant Add becomes its bias
 * (foldBiasAdds). The node keeps its name and output tensor; a Mul/Add/Sub computes the same float
 * bits as before (x*c, x*1 + c, x*(-1) + c are the same IEEE operations).
 */
export function channelAffineLayers(graph: Graph, shapeOf: (name: string) => number[] | undefined): number {
  const scales = toDepthwise(graph, shapeOf, new Set(['Mul', 'BatchNormalization']));
  if (scales) foldBiasAdds(graph, shapeOf);
  return scales + toDepthwise(graph, shapeOf, new Set(['Add', 'Sub']));
}

function toDepthwise(graph: Graph, shapeOf: (name: string) => number[] | undefined, ops: Set<string>): number {
  let count = 0;
  for (const n of graph.nodes) {
    if (!ops.has(n.op) || n.outputs.length !== 1) continue;
    const x = n.inputs.find((i) => i && !graph.initializers.has(i));
    const shape = x ? shapeOf(x) : undefined;
    if (!x || !shape || (shape.length !== 3 && shape.length !== 4) || shapeOf(n.outputs[0])?.join() !== shape.join()) continue;
    const m = shape[1];
    const affine = n.op === 'BatchNormalization' ? unfoldedBatchNorm(graph, n, m) : constantAffine(graph, n, m, shape.length);
    if (!affine) continue;
    const unit = new Array<number>(shape.length - 2).fill(1);
    const base = n.name || n.outputs[0];
    const wName = uniqueName(graph, `${base}_scale`);
    graph.initializers.set(wName, tensor('float32', [m, 1, ...unit], affine.w));
    const inputs = [x, wName];
    if (affine.b) {
      inputs.push(uniqueName(graph, `${base}_bias`));
      graph.initializers.set(inputs[2], tensor('float32', [m], affine.b));
    }
    Object.assign(n, { op: 'Conv', domain: '', inputs, attrs: { group: { type: 'int', value: m }, kernel_shape: { type: 'ints', value: unit } } });
    count++;
  }
  if (count) removeDead(graph);
  return count;
}

/** Per-channel y = x * w + b of a Mul/Add/Sub with one float constant operand, scalar or per channel. */
function constantAffine(graph: Graph, n: Node, m: number, rank: number): { w: number[]; b?: number[] } | undefined {
  if (n.inputs.length !== 2) return undefined;
  const k = n.inputs.findIndex((i) => graph.initializers.has(i));
  const c = k >= 0 ? graph.initializers.get(n.inputs[k])! : undefined;
  const value = c && c.dtype === 'float32' ? perChannel(c, m, rank) : undefined;
  if (!value) return undefined;
  const v = Array.from({ length: m }, (_, ch) => value(ch));
  const all = (s: number) => new Array<number>(m).fill(s);
  if (n.op === 'Mul') return { w: v };
  if (n.op === 'Add') return { w: all(1), b: v };
  return k === 1 ? { w: all(1), b: v.map((t) => -t) } : { w: all(-1), b: v };
}

/** Per-channel y = x * s + t of an inference BatchNormalization with constant parameters. */
function unfoldedBatchNorm(graph: Graph, n: Node, m: number): { w: number[]; b: number[] } | undefined {
  const params = n.inputs.slice(1, 5).map((i) => graph.initializers.get(i));
  if (params.length !== 4 || params.some((t) => !t || t.data.length !== m)) return undefined;
  const [gamma, beta, mean, variance] = params as Tensor[];
  const { s, t } = batchNormAffine(gamma.data, beta.data, mean.data, variance.data, attrNumber(n, 'epsilon', 1e-5));
  return { w: s, b: t };
}

/** A per-channel affine map of 8-bit pixels: v = (p * scale - mean[c]) / std[c]. */
export interface PixelAffine {
  scale: number;
  mean: number[];
  std: number[];
  /** Where the channel axis of the model input is. */
  layout: 'NCHW' | 'NHWC';
}

/**
 * Make the model take raw 0..255 pixels: the preprocessing's affine map becomes the model's
 * first layer, a depthwise 1x1 Conv (scale per channel as weight, offset as bias), so that the
 * device quantizes the input losslessly as uint8 and the map runs in fixed point like any layer.
 * For NHWC inputs the Conv sits between a transpose to NCHW and one back (they cancel against
 * the model's own layout transpose in cancelTransposes).
 */
export function addPixelInput(graph: Graph, affine: PixelAffine): void {
  if (graph.inputs.length !== 1) throw new Error('pixel input needs a single-input model');
  const input = graph.inputs[0];
  const c = affine.mean.length;
  const nhwc = affine.layout === 'NHWC';
  const name = (s: string) => {
    let n = `${input.name}_${s}`;
    for (let i = 1; graph.initializers.has(n) || graph.nodes.some((x) => x.outputs.includes(n)); i++) n = `${input.name}_${s}_${i}`;
    return n;
  };
  const w = name('pixel_scale');
  const b = name('pixel_offset');
  graph.initializers.set(w, tensor('float32', [c, 1, 1, 1], affine.std.map((s) => affine.scale / s)));
  graph.initializers.set(b, tensor('float32', [c], affine.mean.map((m, i) => -m / affine.std[i])));
  const normalized = name('normalized');
  for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === input.name ? normalized : i));
  const nodes: Node[] = [];
  const convIn = nhwc ? name('nchw') : input.name;
  const convOut = nhwc ? name('normalized_nchw') : normalized;
  if (nhwc) nodes.push({ name: name('to_nchw'), op: 'Transpose', domain: '', inputs: [input.name], outputs: [convIn], attrs: { perm: { type: 'ints', value: [0, 3, 1, 2] } } });
  nodes.push({
    name: name('pixel_affine'), op: 'Conv', domain: '', inputs: [convIn, w, b], outputs: [convOut],
    attrs: { group: { type: 'int', value: c }, kernel_shape: { type: 'ints', value: [1, 1] } },
  });
  if (nhwc) nodes.push({ name: name('to_nhwc'), op: 'Transpose', domain: '', inputs: [convOut], outputs: [normalized], attrs: { perm: { type: 'ints', value: [0, 2, 3, 1] } } });
  graph.nodes.unshift(...nodes);
}

/** Remove Transpose pairs that undo each other (the second reading only the first). */
export function cancelTransposes(graph: Graph): number {
  let count = 0;
  const readers = consumers(graph);
  const prod = producers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  for (let again = true; again; ) {
    again = false;
    const removed = new Set<Node>();
    for (const second of graph.nodes) {
      if (removed.has(second) || second.op !== 'Transpose' || outputs.has(second.outputs[0])) continue;
      const mid = second.inputs[0];
      const first = prod.get(mid);
      if (!first || removed.has(first) || first.op !== 'Transpose' || readers.get(mid)!.length !== 1 || outputs.has(mid)) continue;
      const p1 = attrNumbers(first, 'perm'), p2 = attrNumbers(second, 'perm');
      if (!p1 || !p2 || p1.length !== p2.length || !p2.every((a, i) => p1[a] === i)) continue;
      const [src, dst] = [first.inputs[0], second.outputs[0]];
      removed.add(first).add(second);
      // The readers of dst read src instead; the maps follow, so the pass can go on.
      const moved = readers.get(dst) ?? [];
      for (const n of moved) n.inputs = n.inputs.map((i) => (i === dst ? src : i));
      const srcReaders = (readers.get(src) ?? []).filter((n) => n !== first);
      for (const n of moved) if (!srcReaders.includes(n)) srcReaders.push(n);
      readers.set(src, srcReaders);
      for (const t of [mid, dst]) { readers.delete(t); prod.delete(t); }
      count++;
      again = true;
    }
    graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  }
  return count;
}
