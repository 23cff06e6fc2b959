/**
 * Cross-layer equalization (Nagel, van Baalen, Blankevoort, Welling 2019, "Data-Free Quantization
 * Through Weight Equalization and Bias Correction", §4.1): data-free, on the prepared float graph,
 * before calibration. Two weight layers joined by a positively homogeneous activation f
 * (f(x/s) = f(x)/s for s > 0: ReLU, or none) compute the same function when output channel c of
 * the first (its weights and bias) is divided by s_c and input channel c of the second multiplied
 * by s_c. With r1_c and r2_c the channel's weight ranges in each layer, s_c = sqrt(r1_c / r2_c)
 * gives both the range sqrt(r1_c r2_c): per-tensor weight quantization then wastes less of its
 * grid on the layers' small channels (MobileNetV2's depthwise convs spread their channel ranges
 * over orders of magnitude).
 *
 * Pairs: a Conv (group 1 or depthwise) whose output is read only by a Relu (or only by the next
 * layer), whose output is read only by a Conv (group 1 or depthwise); chains (pointwise ->
 * depthwise -> pointwise) are equalized pair by pair, in graph order, until the scales settle.
 * A Clip(0, hi) is not homogeneous (its hi would become hi / s_c per channel); with `clips` it is
 * taken as the PACT2 clip of the seed's rule (DESIGN.md §4: its range is learned, the device
 * saturates at the power of 2, not at hi) and becomes a Relu, so that the pair is equalized; the
 * float model then no longer clips at hi.
 *
 * Bias absorption (§4.2), before the scales: where the first layer's outputs were batch-normalized
 * (its folded BatchNorm's beta and |gamma| are the channel's mean and standard deviation) and the
 * joint is a Relu, the part h_c = max(0, beta_c - 3|gamma_c|) that nearly every value carries is
 * moved into the second layer: b1_c -= h_c, b2 += W2 h. Relu(x - h) + h = Relu(x) wherever x >= h,
 * so the function changes only for the values below mean - 3 sigma; the first layer's output range
 * (and its PACT2 clip) shrinks by h. Only into a second layer without padding: its zero borders
 * would otherwise stand for -h.
 *
 * Bias bound: dividing channel c by s_c < 1 multiplies its bias, and the MMA holds a layer's biases
 * at its per-tensor weight scale (DESIGN.md §5): a channel whose weights were small and bias large
 * would saturate there, or take every channel's weight bits (UltraFace's first conv). s_c is
 * raised so that no bias grows past R times the layer's largest weight as the sweep finds it, R its
 * largest bias over its largest weight before equalization (at least 1): equalization does not make
 * the layer's biases much harder to hold than they were. The bound only limits growth (letting it
 * shrink channels too cost MobileNetV2, DeepLabV3 and UltraFace). Not for depthwise convs that get
 * per-channel scales: each channel pays for its own bias there.
 */
import { clipBounds, removeDead, uniqueName, type ChannelStats } from './transforms.js';
import { attrNumber, attrNumbers, attrString, consumers, producers, tensor, type Graph, type Node, type Tensor } from '../graph/ir.js';

export interface EqualizeOptions {
  /** Equalize through Clip(0, hi), which becomes a Relu (the seed's PACT2 rule). */
  clips: boolean;
  /** Depthwise convs will get per-channel weight scales: each channel pays for its own bias, so
   *  their biases need no bound. */
  perChannelDepthwise?: boolean;
}

export interface Equalized {
  /** Layer pairs equalized (first layer's node name, second's). */
  pairs: [string, string][];
  /** Clips that became Relus. */
  clips: string[];
  /** Layer pairs whose first layer's biases were partly absorbed into the second. */
  absorbed: [string, string][];
}

/** A Conv being equalized: its weights and bias as float64 working copies. */
interface Layer {
  node: Node;
  w: Float64Array;
  dims: number[];
  bias?: Float64Array;
  depthwise: boolean;
}

/** Standard deviations below the mean that a channel's values are taken to stay above. */
const ABSORB_SIGMAS = 3;

const MAX_SWEEPS = 50;
/** Sweeps stop when no scale moved by more than this (relative). */
const SETTLED = 1e-4;

function weightLayer(graph: Graph, node: Node | undefined, shared: (name: string) => boolean): Omit<Layer, 'w' | 'bias'> | undefined {
  if (!node || node.op !== 'Conv' || node.domain) return undefined;
  const w = graph.initializers.get(node.inputs[1]);
  if (!w || w.dims.length < 3 || shared(node.inputs[1]) || (node.inputs[2] && (!graph.initializers.has(node.inputs[2]) || shared(node.inputs[2])))) return undefined;
  const group = attrNumber(node, 'group', 1);
  const depthwise = group > 1 && w.dims[1] === 1 && w.dims[0] === group;
  if (group !== 1 && !depthwise) return undefined;
  return { node, dims: w.dims, depthwise };
}

/** Channel c's range as an output channel of `l` (its filter) and as an input channel. */
function outRange(l: Layer, c: number): number {
  const inner = l.w.length / l.dims[0];
  let r = 0;
  for (let i = c * inner; i < (c + 1) * inner; i++) r = Math.max(r, Math.abs(l.w[i]));
  return r;
}

function inputChannels(l: Layer): number {
  return l.depthwise ? l.dims[0] : l.dims[1];
}

/** Visit the weights of input channel c of `l` (a depthwise filter's only channel is its own). */
function forInput(l: Layer, c: number, f: (i: number) => void): void {
  if (l.depthwise) {
    const inner = l.w.length / l.dims[0];
    for (let i = c * inner; i < (c + 1) * inner; i++) f(i);
    return;
  }
  const [m, cin] = l.dims;
  const inner = l.w.length / (m * cin);
  for (let o = 0; o < m; o++) for (let i = (o * cin + c) * inner, end = i + inner; i < end; i++) f(i);
}

function unpadded(n: Node): boolean {
  const auto = attrString(n, 'auto_pad', 'NOTSET');
  return (auto === 'NOTSET' || auto === 'VALID') && (attrNumbers(n, 'pads') ?? []).every((p) => p === 0);
}

/** Move into `b` the part of `a`'s Relu outputs that its BatchNorm statistics say is always there. */
function absorb(a: Layer, b: Layer, st: ChannelStats): boolean {
  if (!a.bias) return false;
  let moved = false;
  for (let c = 0; c < a.dims[0]; c++) {
    const h = Math.max(0, st.mean[c] - ABSORB_SIGMAS * st.std[c]);
    if (!(h > 0)) continue;
    a.bias[c] -= h;
    b.bias ??= new Float64Array(b.dims[0]);
    forInput(b, c, (i) => { b.bias![Math.floor(i / (b.w.length / b.dims[0]))] += b.w[i] * h; });
    moved = true;
  }
  return moved;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function equalizeLayers(graph: Graph, options: EqualizeOptions, stats = new Map<Node, ChannelStats>()): Equalized {
  const readers = consumers(graph);
  const prod = producers(graph);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const only = (t: string): Node | undefined => {
    const r = readers.get(t) ?? [];
    return r.length === 1 && !graphOutputs.has(t) ? r[0] : undefined;
  };
  const shared = (name: string) => (readers.get(name)?.length ?? 0) > 1;
  const layers = new Map<Node, Layer>();
  const layer = (n: Node, base: Omit<Layer, 'w' | 'bias'>): Layer => {
    let l = layers.get(n);
    if (!l) {
      const b = n.inputs[2] ? graph.initializers.get(n.inputs[2]) : undefined;
      l = { ...base, w: Float64Array.from(graph.initializers.get(n.inputs[1])!.data), bias: b && Float64Array.from(b.data) };
      layers.set(n, l);
    }
    return l;
  };

  const pairs: { a: Layer; b: Layer; via?: Node }[] = [];
  for (const n of graph.nodes) {
    const first = weightLayer(graph, n, shared);
    if (!first) continue;
    let next = only(n.outputs[0]);
    let via: Node | undefined;
    if (next && !next.domain && (next.op === 'Relu' || (options.clips && next.op === 'Clip' && clipBounds(graph, next)?.[0] === 0))) {
      via = next;
      next = only(next.outputs[0]);
    }
    const second = weightLayer(graph, next, shared);
    if (!second || next!.inputs[0] !== (via ?? n).outputs[0] || prod.get(next!.inputs[0]) !== (via ?? n)) continue;
    if (first.dims[0] !== (second.depthwise ? second.dims[0] : second.dims[1])) continue;
    pairs.push({ a: layer(n, first), b: layer(next!, second), via });
  }
  if (!pairs.length) return { pairs: [], clips: [], absorbed: [] };

  const absorbed: [string, string][] = [];
  for (const { a, b, via } of pairs) {
    const st = stats.get(a.node);
    // The statistics describe the layer as the folding left it; anything folded into it since would make them stale.
    if (!via || !st || a.node.inputs[1] !== st.weights || a.node.inputs[2] !== st.bias || !unpadded(b.node)) continue;
    if (absorb(a, b, st)) absorbed.push([a.node.name, b.node.name]);
  }

  const bounded = (a: Layer) => !!a.bias && !(a.depthwise && options.perChannelDepthwise);
  const biasRatio = new Map(pairs.map(({ a }) => [a, bounded(a) ? Math.max(1, maxAbs(a.bias!) / maxAbs(a.w)) : 0]));
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let moved = 0;
    for (const { a, b } of pairs) {
      const bound = biasRatio.get(a)! * maxAbs(a.w);
      for (let c = 0; c < inputChannels(b); c++) {
        const r1 = outRange(a, c);
        let r2 = 0;
        forInput(b, c, (i) => { r2 = Math.max(r2, Math.abs(b.w[i])); });
        if (!(r1 > 0 && r2 > 0)) continue;
        const s = Math.max(Math.sqrt(r1 / r2), bound > 0 ? Math.min(1, Math.abs(a.bias![c]) / bound) : 0);
        moved = Math.max(moved, Math.abs(s - 1));
        const inner = a.w.length / a.dims[0];
        for (let i = c * inner; i < (c + 1) * inner; i++) a.w[i] /= s;
        if (a.bias) a.bias[c] /= s;
        forInput(b, c, (i) => { b.w[i] *= s; });
      }
    }
    if (moved < SETTLED) break;
  }

  const write = (name: string, dims: number[], data: Float64Array): string => {
    const t: Tensor = tensor('float32', dims, data);
    const fresh = uniqueName(graph, `${name}_equalized`);
    graph.initializers.set(fresh, t);
    return fresh;
  };
  for (const l of layers.values()) {
    const biasName = l.node.inputs[2] || `${l.node.name || l.node.inputs[1]}_bias`;
    l.node.inputs = [l.node.inputs[0], write(l.node.inputs[1], l.dims, l.w), ...(l.bias ? [write(biasName, [l.bias.length], l.bias)] : [])];
  }
  const clips: string[] = [];
  for (const { via } of pairs) {
    if (via?.op !== 'Clip') continue;
    via.op = 'Relu';
    via.inputs = [via.inputs[0]];
    via.attrs = {};
    clips.push(via.name);
  }
  removeDead(graph);
  return { pairs: pairs.map(({ a, b }) => [a.node.name, b.node.name]), clips, absorbed };
}
