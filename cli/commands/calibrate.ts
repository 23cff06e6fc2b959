import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { escapeControl, fail } from '../../sdk/errors.js';
import { loadModel } from '../../sdk/model.js';
import { decodeModel } from '../../sdk/onnx/decode.js';
import { calibrateImages } from '../../sdk/node/calibrate-images.js';
import { prepareCalibrationDir, saveCalibration } from '../../sdk/node/calibration-files.js';
import { openDataset } from '../../sdk/node/datasets.js';
import { readModelFile } from '../../sdk/node/files.js';
import { MAX_ITERATIONS, type BiasCalibration, type CalibrateOptions, type OutputRanges, type Preset } from '../../sdk/quant/calibrate.js';
import { readText } from '../../sdk/node/datasets.js';
import { tidlConfig, type TidlMapping } from '../../sdk/tidl-config.js';
import { withConfigFile } from '../config.js';
import { writeReport } from './report.js';
import type { QdqRounding } from '../../sdk/export/qdq.js';
import type { CalibrationTable } from '../../sdk/export/table.js';
import type { BiasMode } from '../../sdk/device/spec.js';
import { STRICT_HELP, STRICT_OPTION, choice, imageInputShape, intOption, numberOption, parse, parseInputShape, skipPolicy, warn, type Options } from '../args.js';
import { PREPROCESS_HELP, PREPROCESS_OPTIONS, describeSpec, unsizedSpecFromFlags } from '../preprocess.js';
import { sizeSpec } from '../../sdk/data/preprocess.js';
import { progress } from '../progress.js';

export const help = `Usage: p2calib calibrate MODEL.onnx --images DIR|LIST --out DIR [options]

Calibrate a float model for TIDL's power-of-2 fixed point (TI's Post Training Calibration) on
images, and write into --out: model.qdq.onnx (QDQ, for ONNX Runtime and TIDL >= 9.1 with
prequantized_model=1), model.calibrated.onnx (float, PACT2 clips and calibrated weights/biases)
and calibration.json (per tensor range/clip/scale/bits, per layer shifts/scales/bias/SQNR).

Options:
  --images P          a folder of images (recursive) or a text file listing image paths
  --out D             output folder; a non-empty one is refused without --force
  --preset P          simple | advanced (default) | advanced-dw
  --bits B            8 (default) | 16
  --sixteen-bit L     comma-separated node or tensor names computed in 16 bits (mixed precision)
  --mixed-precision F automatic mixed precision (TIDL's mixed_precision_factor): the inference
                      cost allowed relative to all-8-bit, 1 to 4 (e.g. 1.25); the tensors to
                      compute in 16 bits are chosen by their measured gain in output SQNR per
                      extra cost (a 16-bit MAC costs 4 8-bit ones; README "Mixed precision")
  --iterations N      bias-calibration passes over the images (default 1, at most ${MAX_ITERATIONS})
  --batch N           images per bias update (default 8)
  --estimator E       range estimator: minmax | percentile:<p> | entropy | mse (default: the preset's)
  --output-ranges R   peak (default: model outputs and the tensors feeding them keep the extremes
                      seen over the images, as the task reads their peaks) | average (the running
                      average of every other point, and the devkit's everywhere)
  --verdict-threshold DB  layers below this SQNR get a verdict (default 12 at 8 bits, 30 at 16)
  --bias-calibration V  tidl (default: compare outputs after the activation, factor/10 at the
                      start and end) | devkit (compare the layer's own output)
  --bias-factor F     bias calibration factor, 0 to 1 (default 0.05)
  --bias-mode M       mma (default: TIDL's biasA*biasB split) | int16 (plain int16 bias)
  --keep-clip-bounds  Relu6/Clip saturate at their own bounds (6·2^s) too; by default they are PACT2
                      clips saturating at the power-of-2 range only (a Clip(0,6) at 8), as the
                      device does in power-of-2 mode
  --equalize          cross-layer equalization before calibration (data-free; the exported models
                      carry the equalized weights)
  --qdq-rounding R    onnx (default: the form TIDL imports; ONNX rounds ties to even) | device
                      (ONNX Runtime rounds ties up as the device does; for evaluating in ORT)
  --pixel-input       the exported models take raw 0..255 pixels and apply the preprocessing's
                      mean/scale themselves (uint8 input, no loss on the first layer)
  --float-nodes L     comma-separated nodes kept in float (node names, output tensor names or op
                      types; TIDL's deny_list): their weights stay float and the QDQ model has
                      no Q/DQ on them; p2calib's fixed-point engine runs them as float fallback
  --tidl-config F     edgeai-tidl-tools compile options (JSON, YAML or key = value lines):
                      tensor_bits, accuracy_level and its advanced_options switches,
                      calibration_frames/iterations, the 16-bit name lists, deny_list, ...
                      (README table); one line on stderr per key says what it became or why
                      it was ignored; the flags here win over it
  --config F          a JSON object of these options by flag name, e.g. {"preset":
                      "advanced-dw", "sixteen-bit": ["Conv_0"]}; flags given here win over it
  --report F          also write the layer-by-layer HTML report (as p2calib report)
  --input-shape S     model input shape when it has dynamic dims, e.g. 1,3,224,224
  --workers N         worker threads decoding and calibrating images in parallel (default and
                      at most: the number of cores, ${availableParallelism()} here, and of images; the
                      result does not depend on it)
  --subsample         bin a stride-2 subsample of 4-D activations at seeded offsets (the devkit's)
  --limit N           use the first N images (after --seed shuffling)
  --seed N            shuffle the images with this seed before --limit; also seeds --subsample
${STRICT_HELP}
  --force             overwrite the files in a non-empty --out
  --json              print one JSON object: {"preset","images","workers","seconds","files":{...},
                      "thresholds","verdicts":[...],"compromises":{...},"fallbacks":[...]}
  --verbose           stack traces on errors

${PREPROCESS_HELP}
  Without --preprocess the imagenet preset is used (and said on stderr). The preprocessing goes
  into calibration.json; eval and simulate use it unless given their own.

Examples:
  p2calib calibrate mobilenetv2-12-fp32.onnx --images imagenet-sample --limit 100 \\
      --preset advanced-dw --out calib/
  p2calib calibrate yolox-nano.onnx --images coco128-val/images --preprocess yolox --out yolox-calib/
  p2calib calibrate model.onnx --images imgs/ --preprocess spec.json --pixel-input --json --out out/`;

const PRESET_NAMES: Preset[] = ['simple', 'advanced', 'advanced-dw'];

const OPTIONS: Options = {
  images: { type: 'string' }, out: { type: 'string' }, preset: { type: 'string' }, bits: { type: 'string' },
  'sixteen-bit': { type: 'string' }, 'mixed-precision': { type: 'string' }, iterations: { type: 'string' }, batch: { type: 'string' }, estimator: { type: 'string' },
  'bias-calibration': { type: 'string' }, 'output-ranges': { type: 'string' }, 'verdict-threshold': { type: 'string' }, 'bias-factor': { type: 'string' }, 'bias-mode': { type: 'string' }, 'qdq-rounding': { type: 'string' },
  'pixel-input': { type: 'boolean' }, 'keep-clip-bounds': { type: 'boolean' }, equalize: { type: 'boolean' }, subsample: { type: 'boolean' }, 'input-shape': { type: 'string' }, limit: { type: 'string' }, seed: { type: 'string' },
  workers: { type: 'string' }, force: { type: 'boolean' }, config: { type: 'string' }, 'tidl-config': { type: 'string' }, 'float-nodes': { type: 'string' },
  report: { type: 'string' }, ...STRICT_OPTION, ...PREPROCESS_OPTIONS,
};

const list = (v: string | boolean | undefined) => (v as string | undefined)?.split(',').map((s) => s.trim()).filter(Boolean);

export async function run(argv: string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS, ['MODEL']);
  const { pos } = parsed;
  if (parsed.values.help) return console.log(help), 0;
  const values = withConfigFile(parsed.values, OPTIONS, parsed.values.config as string | undefined);
  let tidl: TidlMapping | undefined;
  if (values['tidl-config'] !== undefined) {
    const file = values['tidl-config'] as string;
    tidl = tidlConfig(readText(file, 'TIDL config file'), file);
    for (const n of tidl.notes) console.error(`p2calib: tidl-config: ${n}`);
  }
  if (!values.images) fail('BAD_OPTION', '--images is required');
  if (!values.out) fail('BAD_OPTION', '--out is required');
  // Every flag is checked before anything is created.
  const requested = intOption(values.workers, 'workers');
  const rounding = choice<QdqRounding>(values['qdq-rounding'], 'qdq-rounding', ['onnx', 'device']);
  const seed = intOption(values.seed, 'seed', 0);
  const bits = choice(values.bits, 'bits', ['8', '16'] as const);
  const flags: CalibrateOptions = {
    preset: choice(values.preset, 'preset', PRESET_NAMES),
    bits: bits && (Number(bits) as 8 | 16),
    sixteenBit: list(values['sixteen-bit']),
    mixedPrecision: values['mixed-precision'] === undefined ? undefined : { factor: numberOption(values['mixed-precision'], 'mixed-precision', { min: 1, max: 4 })! },
    floatNodes: list(values['float-nodes']),
    iterations: intOption(values.iterations, 'iterations', 1, MAX_ITERATIONS),
    batchSize: intOption(values.batch, 'batch'),
    estimator: values.estimator as string | undefined,
    biasCalibration: choice<BiasCalibration>(values['bias-calibration'], 'bias-calibration', ['tidl', 'devkit']),
    biasCalibrationFactor: numberOption(values['bias-factor'], 'bias-factor', { min: 0, max: 1 }),
    biasMode: choice<BiasMode>(values['bias-mode'], 'bias-mode', ['mma', 'int16']),
    outputRanges: choice<OutputRanges>(values['output-ranges'], 'output-ranges', ['peak', 'average']),
    keepClipBounds: !!values['keep-clip-bounds'],
    equalize: values.equalize === undefined ? undefined : !!values.equalize,
    verdictThreshold: numberOption(values['verdict-threshold'], 'verdict-threshold', { min: 0, max: 200 }),
  };
  const limit = intOption(values.limit, 'limit') ?? tidl?.calibrationFrames;
  if (values.report !== undefined && existsSync(values.report as string) && !values.force) fail('IO', `--report ${values.report} exists; pass --force to overwrite it`);
  const outDir = prepareCalibrationDir(values.out as string, !!values.force);
  const { bytes, options } = readModelFile(pos[0]);
  const unsized = unsizedSpecFromFlags(values, 'imagenet');
  const inputShape = imageInputShape(decodeModel(bytes, options), parseInputShape(values['input-shape'] as string | undefined), unsized);
  const model = await loadModel(bytes, { ...options, inputShape });
  if (model.inputs.length !== 1) fail('BAD_OPTION', `calibrating from images needs a single-input model; this one has ${model.inputs.length}`);
  const spec = sizeSpec(unsized, model.inputs[0].shape);
  // Said on stderr (also with --json): the default is a guess that eval and simulate then follow.
  if (values.preprocess === undefined) console.error(`p2calib: note: no --preprocess given: using the imagenet preset (${describeSpec(spec)})`);
  const skip = skipPolicy(values);
  const { files, root } = openDataset(values.images as string, { limit, seed, ...skip });
  // More workers than cores only adds memory and contention (each has its own engines and model).
  const cores = availableParallelism();
  if (requested !== undefined && requested > cores) warn(`--workers ${requested} is more than the ${cores} cores; using ${cores}`);
  const bar = progress('calibrating');
  const started = Date.now();
  const cal = await calibrateImages(model, files, spec, {
    // The flags win over the TIDL options.
    ...tidl?.options,
    ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
    pixelInput: !!values['pixel-input'],
    workers: Math.min(requested ?? cores, cores),
    subsample: !!values.subsample,
    seed,
    ...skip,
    imageRoot: root,
    source: {
      modelFile: basename(pos[0]),
      modelPath: resolve(pos[0]),
      options: {
        qdqRounding: rounding ?? 'onnx', limit: limit ?? null, imageSeed: seed ?? null,
        ...(values['tidl-config'] !== undefined ? { tidlConfig: basename(values['tidl-config'] as string) } : {}),
        ...(values.config !== undefined ? { config: basename(values.config as string) } : {}),
      },
    },
    onProgress: (p) => bar.update(p.pass * files.length + p.done, p.passes * files.length),
  });
  bar.done();
  const seconds = (Date.now() - started) / 1000;
  const written = saveCalibration(cal, outDir, { force: true, rounding });
  if (values.report !== undefined) await writeReport(cal, files.slice(0, 16), basename(pos[0]), resolve(values.report as string));
  const t = cal.table;
  const { verdicts, thresholds } = t.diagnostics!;
  if (values.json) {
    console.log(JSON.stringify({
      preset: t.preset, images: t.images, workers: cal.timings!.workers, seconds, files: written,
      ...(t.mixedPrecision ? { mixedPrecision: { ...t.mixedPrecision, candidates: undefined, seconds: cal.timings!.mixedPrecision! / 1000 } } : {}), thresholds, verdicts, compromises: t.compromises, fallbacks: t.fallbacks,
    }));
    return 0;
  }
  console.log([
    `calibrated ${basename(pos[0])}: preset ${t.preset} (${t.estimator}), ${t.bits}-bit, ${t.images} images in ${seconds.toFixed(1)} s`,
    t.input.pixels
      ? 'input: raw 0..255 pixels (uint8); the exported models apply the preprocessing mean/scale themselves'
      : 'input: preprocessed float tensors, as the float model takes them',
    `preprocessing: ${describeSpec(spec)} (recorded: eval and simulate use it by default)`,
    `bias calibration: ${t.biasCalibration}, bias form: ${t.biasMode}; output ranges: ${t.outputRanges}`,
    ...mixedSummary(t, cal.timings!.mixedPrecision),
    ...summary(t),
    `wrote ${written.qdq}`, `      ${written.calibrated}`, `      ${written.table}`,
    `      ${written.tidl} (for TIDL: advanced_options:quant_params_proto_path)`,
  ].join('\n'));
  return 0;
}

/** The mixed-precision choice in a line or two. */
function mixedSummary(t: CalibrationTable, ms?: number): string[] {
  const m = t.mixedPrecision;
  if (!m) return [];
  const layers = m.chosen.flatMap((g) => g.nodes);
  const shown = layers.slice(0, 8).map((n) => escapeControl(n)).join(', ') + (layers.length > 8 ? ', … (all in calibration.json "mixedPrecision")' : '');
  const weightsOnly = m.chosen.filter((g) => g.weights).length;
  return [
    `mixed precision ${m.factor}: ${m.chosen.length} of ${m.candidates.length} groups in 16 bits${weightsOnly ? ` (${weightsOnly} with 16-bit weights only)` : ''} (${m.measured} measured; ${m.strategy === 'greedy' ? 'by measured loss per cost' : m.strategy === 'prefix' ? 'the groups from the input on' : 'weights alone'}) (${layers.length} nodes${layers.length ? `: ${shown}` : ''}), ` +
      `cost ${m.cost.toFixed(3)}x all-8-bit; SQNR of the outputs and their sources before bias calibration ${m.outputSqnr.base.toFixed(1)} -> ${m.outputSqnr.chosen.toFixed(1)} dB (all 16-bit ${m.outputSqnr.all16.toFixed(1)}) on ${m.images} images ` +
      `(sensitivity pass ${((ms ?? 0) / 1000).toFixed(1)} s)`,
  ];
}

/** The verdicts (those whose error is their own in full; the inherited ones by name), the
 *  compromises and the float fallbacks, in a few lines. */
function summary(t: CalibrationTable): string[] {
  const { verdicts, thresholds } = t.diagnostics!;
  const own = verdicts.filter((v) => v.cause.kind !== 'inherited');
  const inherited = verdicts.filter((v) => v.cause.kind === 'inherited');
  const measured = Object.values(t.tensors).filter((e) => e.sqnr !== undefined).length;
  const lines = [
    `layers below their SQNR threshold (fixed vs float; ${thresholds[8]} dB at 8 bits, ${thresholds[16]} dB at 16): ${verdicts.length} of ${measured} tensors`,
    ...own.flatMap((v) => [`  ${escapeControl(v.node)} (${escapeControl(v.op)}) ${v.sqnr.toFixed(1)} dB: ${v.cause.text}`, `      remedy: ${v.remedy.text}`]),
  ];
  const worst = Object.entries(t.layers).filter(([, l]) => l.sqnr !== undefined).sort((a, b) => a[1].sqnr! - b[1].sqnr!).slice(0, 3);
  if (worst.length) lines.push(`lowest SQNR layers: ${worst.map(([name, l]) => `${escapeControl(name)} ${l.sqnr!.toFixed(1)} dB`).join(', ')}`);
  if (inherited.length) {
    const shown = inherited.slice(0, 8).map((v) => `${escapeControl(v.node)} ${v.sqnr.toFixed(1)} dB`);
    if (inherited.length > shown.length) shown.push(`… (all in calibration.json "diagnostics")`);
    lines.push(`  ${inherited.length} more inherit their error from their inputs: ${shown.join(', ')}`);
  }
  const compromised = Object.entries(t.compromises ?? {});
  if (compromised.length) {
    lines.push(`compromises the device's rules forced on ${compromised.length} nodes (calibration.json "compromises"): ` +
      compromised.map(([node, cs]) => `${escapeControl(node)} (${[...new Set(cs.map((c) => c.kind))].join(', ')})`).join(', '));
  }
  const fallbacks = t.fallbacks ?? [];
  if (fallbacks.length) {
    const ops = [...new Set(fallbacks.map((f) => escapeControl(f.op)))];
    lines.push(`float fallback (no documented device arithmetic): ${fallbacks.length} nodes (${ops.join(', ')})`);
  }
  return lines;
}
