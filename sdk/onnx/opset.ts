/**
 * Rewrite a prepared graph for a newer default-domain opset (the QDQ export needs >= 13 for
 * per-axis QuantizeLinear). Only the ops whose signature changed between the opsets p2calib reads
 * are touched; attributes that became inputs turn into initializers.
 */
import { fail } from '../errors.js';
import { attrNumber, attrNumbers, attrString, tensor, type Graph, type Node } from '../graph/ir.js';

function constant(graph: Graph, base: string, dtype: 'int64' | 'float32', dims: number[], values: number[]): string {
  let name = base;
  for (let i = 1; graph.initializers.has(name); i++) name = `${base}_${i}`;
  graph.initializers.set(name, tensor(dtype, dims, values));
  return name;
}

function dropAttrs(n: Node, ...names: string[]): void {
  n.attrs = Object.fromEntries(Object.entries(n.attrs).filter(([k]) => !names.includes(k)));
}

export function upgradeOpset(graph: Graph, target: number, rankOf: (tensor: string) => number): void {
  const from = graph.opset;
  if (from >= target) return;
  for (const n of graph.nodes) {
    if (n.domain) continue;
    const ints = (name: string) => attrNumbers(n, name);
    switch (n.op) {
      case 'Upsample':
      case 'Resize': {
        if (n.op === 'Resize' && from >= 11) break;
        // Upsample and opset-10 Resize: asymmetric coordinates, nearest rounds down when enlarging.
        const scales = n.op === 'Upsample' && from < 9 ? ints('scales') : undefined;
        const scaleInput = scales ? constant(graph, `${n.name}_scales`, 'float32', [scales.length], scales) : n.inputs[1];
        const mode = attrString(n, 'mode', 'nearest');
        n.op = 'Resize';
        n.inputs = [n.inputs[0], '', scaleInput];
        n.attrs = {
          mode: { type: 'string', value: mode === 'bilinear' ? 'linear' : mode },
          coordinate_transformation_mode: { type: 'string', value: 'asymmetric' },
          nearest_mode: { type: 'string', value: 'floor' },
        };
        break;
      }
      case 'Clip':
        if (from < 11) {
          const lo = attrNumber(n, 'min', -3.4028234663852886e38);
          const hi = attrNumber(n, 'max', 3.4028234663852886e38);
          n.inputs = [n.inputs[0], constant(graph, `${n.name}_min`, 'float32', [], [lo]), constant(graph, `${n.name}_max`, 'float32', [], [hi])];
          dropAttrs(n, 'min', 'max');
        }
        break;
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum':
        if (from < 13 && ints('axes')) {
          const axes = ints('axes')!;
          n.inputs = [n.inputs[0], constant(graph, `${n.name}_axes`, 'int64', [axes.length], axes)];
          dropAttrs(n, 'axes');
        }
        break;
      case 'Split':
        if (from < 13 && ints('split')) {
          const split = ints('split')!;
          n.inputs = [n.inputs[0], constant(graph, `${n.name}_split`, 'int64', [split.length], split)];
          dropAttrs(n, 'split');
        }
        break;
      case 'Slice':
        if (from < 10) {
          const starts = ints('starts') ?? [], ends = ints('ends') ?? [];
          const axes = ints('axes') ?? starts.map((_, i) => i);
          n.inputs = [
            n.inputs[0],
            constant(graph, `${n.name}_starts`, 'int64', [starts.length], starts),
            constant(graph, `${n.name}_ends`, 'int64', [ends.length], ends),
            constant(graph, `${n.name}_axes`, 'int64', [axes.length], axes),
          ];
          dropAttrs(n, 'starts', 'ends', 'axes');
        }
        break;
      case 'Pad':
        if (from < 11) {
          const pads = ints('pads') ?? ints('paddings') ?? [];
          n.inputs = [n.inputs[0], constant(graph, `${n.name}_pads`, 'int64', [pads.length], pads), constant(graph, `${n.name}_value`, 'float32', [], [attrNumber(n, 'value', 0)])];
          dropAttrs(n, 'pads', 'paddings', 'value');
        }
        break;
      case 'Softmax':
      case 'LogSoftmax':
        // Before 13 the input was flattened at `axis`; equal to the new rule only on the last axis.
        const rank = rankOf(n.inputs[0]);
        const a = attrNumber(n, 'axis', 1);
        if (from < 13 && a !== -1 && a !== rank - 1) {
          fail('UNSUPPORTED', `node "${n.name}": ${n.op} before opset 13 on a non-final axis cannot be exported at opset ${target}`);
        }
        break;
      case 'BatchNormalization':
        dropAttrs(n, 'spatial', 'is_test', 'consumed_inputs');
        break;
      default:
        break;
    }
  }
  graph.opset = target;
  graph.irVersion = Math.max(graph.irVersion, target >= 21 ? 10 : target >= 19 ? 9 : 7);
}
