import { basename } from 'node:path';
import { escapeControl, fail } from '../../sdk/errors.js';
import { loadModel, sha256Hex } from '../../sdk/model.js';
import { pixelSpec, sizeSpec } from '../../sdk/data/preprocess.js';
import { readCalibration, readCalibrationTable, recordedInputShape } from '../../sdk/node/calibration-files.js';
import { readModelFile } from '../../sdk/node/files.js';
import { checkModel } from '../../sdk/export/provenance.js';
import { loadImageTensor } from '../../sdk/node/images.js';
import { writeTraceDir } from '../../sdk/node/traces.js';
import { decodeModel } from '../../sdk/onnx/decode.js';
import { captureTraces } from '../../sdk/trace/capture.js';
import { DEFAULT_TRACE_BASE, traceFiles } from '../../sdk/trace/format.js';
import { imageInputShape, parse, parseInputShape } from '../args.js';
import { PREPROCESS_HELP, PREPROCESS_OPTIONS, specForCalibration } from '../preprocess.js';

export const help = `Usage: p2calib simulate MODEL.onnx --calibration DIR --image IMG --trace-dir DIR [options]

Run one image through the calibrated model in fixed point, with the device's integer arithmetic,
and write every layer's output as TIDL trace files: <base><dataId>_<batch>_<dim1>_<dim2>_
<channels>_<width>x<height>.y (raw uint8/int8/uint16/int16, NCHW), the dequantized float32 twin
<...>_float.bin, and layer_info.txt (trace ids -> ONNX nodes and tensors, element type, scale).
Compare them with the device's or TIDL's PC-emulation traces using p2calib compare.

Options:
  --calibration D   the folder p2calib calibrate wrote (calibration.json)
  --image F         the image to run
  --trace-dir D     where to write the traces (created; a non-empty folder needs --force)
  --trace-base B    file name prefix of the traces (default ${DEFAULT_TRACE_BASE})
  --input-shape S   model input shape when it has dynamic dims, e.g. 1,3,224,224
  --force           write into a non-empty --trace-dir
  --json            print one JSON object {"traceDir","layers","files","fallbacks","outputs"}

${PREPROCESS_HELP}
  The preprocessing and input shape recorded in calibration.json are the defaults (flags override
  them, with a warning when the result differs; a calibration without them falls back to the
  imagenet preset). A calibration made with --pixel-input takes raw pixels: only the geometry is
  applied.

Example:
  p2calib simulate mobilenetv2-12-fp32.onnx --calibration mnv2-calib --image cat.jpg --trace-dir traces/
  p2calib compare traces/ device-traces/`;

export async function run(argv: string[]): Promise<number> {
  const { values, pos } = parse(argv, {
    calibration: { type: 'string' }, image: { type: 'string' }, 'trace-dir': { type: 'string' }, 'trace-base': { type: 'string' },
    'input-shape': { type: 'string' }, force: { type: 'boolean' }, ...PREPROCESS_OPTIONS,
  }, ['MODEL']);
  if (values.help) return console.log(help), 0;
  for (const flag of ['calibration', 'image', 'trace-dir']) if (!values[flag]) fail('BAD_OPTION', `--${flag} is required`);
  const base = (values['trace-base'] as string | undefined) ?? DEFAULT_TRACE_BASE;
  if (/[/\\\0]/.test(base)) fail('BAD_OPTION', `--trace-base must be a file name prefix (no "/"), got "${base}"`);
  const { bytes, options } = readModelFile(pos[0]);
  const table = readCalibrationTable(values.calibration as string);
  checkModel(table.provenance, { sha256: await sha256Hex(bytes) });
  const unsized = specForCalibration(values, table.provenance?.preprocessing, 'imagenet');
  const given = parseInputShape(values['input-shape'] as string | undefined) ?? recordedInputShape(table);
  const inputShape = imageInputShape(decodeModel(bytes, options), given, unsized);
  const source = await loadModel(bytes, { ...options, inputShape });
  if (source.inputs.length !== 1) fail('BAD_OPTION', `simulating an image needs a single-input model; this one has ${source.inputs.length}`);
  const cal = readCalibration(source, table);
  const spec = sizeSpec(unsized, source.inputs[0].shape);
  const image = await loadImageTensor(values.image as string, cal.table.input.pixels ? pixelSpec(spec) : spec);
  const plan = await cal.fixedPlan(1);
  const layers = captureTraces(plan, { [cal.model.inputs[0].name]: image });
  const files = traceFiles(layers, base);
  const dir = writeTraceDir(values['trace-dir'] as string, files, !!values.force);
  const outputs = plan.outputs.map((o) => ({ name: o.name, shape: o.shape, type: o.type }));
  if (values.json) {
    console.log(JSON.stringify({ traceDir: dir, layers: layers.length, files: files.size, fallbacks: plan.fallbacks, outputs }));
    return 0;
  }
  console.log([
    `simulated ${basename(pos[0])} on ${basename(values.image as string)} in fixed point (${cal.table.bits}-bit, ${cal.table.input.pixels ? 'raw pixel' : 'float'} input)`,
    `wrote ${layers.length} layer traces (${files.size} files with the float twins and layer_info.txt) to ${dir}`,
    ...outputs.map((o) => `output ${escapeControl(o.name)} [${o.shape.join('x')}] ${o.type}`),
    plan.fallbacks.length ? `float fallback (no documented device arithmetic): ${escapeControl(plan.fallbacks.join(', '))}` : 'float fallback: none',
  ].join('\n'));
  return 0;
}
