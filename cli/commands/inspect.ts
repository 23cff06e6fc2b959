import { escapeControl } from '../../sdk/errors.js';
import { inspectModel } from '../../sdk/inspect.js';
import { readModelFile } from '../../sdk/node/files.js';
import { parse, parseInputShape } from '../args.js';

export const help = `Usage: p2calib inspect MODEL.onnx [--input-shape 1,3,224,224] [--json]

Print a model's inputs and outputs with shapes, op counts, parameter count, unsupported ops, the
activation memory p2calib plans for it and the nodes that run as float fallback in fixed point
(no documented device arithmetic: dequantized, computed in float, requantized).

Options:
  --input-shape S   shape of the input (needed for dynamic dims): "1,3,224,224", or per input
                    "name:1,3,224,224;other:1,10"
  --json            print one JSON object instead of text

Examples:
  p2calib inspect mobilenetv2-12-fp32.onnx --input-shape 1,3,224,224
  p2calib inspect yolox-nano.onnx --json`;

// Names come from the model: a line feed or an escape code in one must not reach the terminal.
const esc = (name: string) => escapeControl(name);
const fmt = (s: (number | string)[]) => `[${s.map((d) => esc(String(d))).join(', ')}]`;

export async function run(argv: string[]): Promise<number> {
  const { values, pos } = parse(argv, { 'input-shape': { type: 'string' } }, ['MODEL']);
  if (values.help) return console.log(help), 0;
  const { bytes, options } = readModelFile(pos[0]);
  const r = await inspectModel(bytes, { ...options, inputShape: parseInputShape(values['input-shape'] as string | undefined) });
  if (values.json) {
    console.log(JSON.stringify(r));
    return 0;
  }
  const lines = [
    `opset ${r.opset}${r.producer ? `, produced by ${esc(r.producer)}` : ''}`,
    'inputs:', ...r.inputs.map((v) => `  ${esc(v.name)} ${v.type} ${fmt(v.shape)}`),
    'outputs:', ...r.outputs.map((v) => `  ${esc(v.name)} ${v.type} ${fmt(v.shape)}`),
    `ops (${Object.values(r.ops).reduce((a, b) => a + b, 0)} nodes):`,
    ...Object.entries(r.ops).sort((a, b) => b[1] - a[1]).map(([op, n]) => `  ${esc(op).padEnd(28)} ${n}`),
    `parameters: ${r.params.toLocaleString('en-US')}`,
    r.arenaBytes !== undefined ? `activation arena: ${(r.arenaBytes / 2 ** 20).toFixed(2)} MiB` : `note: ${esc(r.shapeNote ?? '')}`,
    ...(r.fallback
      ? [r.fallback.length
        ? `float fallback in fixed point (${r.fallback.length}):\n${r.fallback.map((u) => `  ${esc(u.op)} (node "${esc(u.node)}")`).join('\n')}`
        : 'float fallback in fixed point: none']
      : []),
    r.unsupported.length
      ? `unsupported ops (${r.unsupported.length}):\n${r.unsupported.map((u) => `  ${esc(u.op)} (node "${esc(u.node)}")`).join('\n')}`
      : 'unsupported ops: none',
  ];
  console.log(lines.join('\n'));
  return 0;
}
