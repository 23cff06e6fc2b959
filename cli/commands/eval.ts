import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { escapeControl, fail } from '../../sdk/errors.js';
import { loadModel, sha256Hex } from '../../sdk/model.js';
import { decodeModel } from '../../sdk/onnx/decode.js';
import { CLASS_MAPS, parseClassMap } from '../../sdk/metrics/segmentation.js';
import { HEAD_KINDS, type HeadKind } from '../../sdk/metrics/heads.js';
import { BOX_SCORES, parsePriorSpec, PRIOR_PRESETS, type BoxScores } from '../../sdk/metrics/prior-box.js';
import { readCalibration, readCalibrationTable, recordedInputShape } from '../../sdk/node/calibration-files.js';
import { openDataset, readText } from '../../sdk/node/datasets.js';
import { imageIdentities } from '../../sdk/node/calibrate-images.js';
import { evaluate, TASKS, type EvalResult, type Metrics, type Task } from '../../sdk/node/evaluate.js';
import { readModelFile } from '../../sdk/node/files.js';
import { checkModel } from '../../sdk/export/provenance.js';
import { STRICT_HELP, STRICT_OPTION, choice, imageInputShape, intOption, numberOption, parse, parseInputShape, skipPolicy, warn } from '../args.js';
import { PREPROCESS_HELP, PREPROCESS_OPTIONS, specForCalibration } from '../preprocess.js';
import { sizeSpec } from '../../sdk/data/preprocess.js';
import { progress } from '../progress.js';

export const help = `Usage: p2calib eval MODEL.onnx --images DIR|LIST --task TASK [options]

Run the model over images and report its accuracy: top-1/top-5 (imagenet), mIoU (segmentation),
mAP@0.5 (detection), or nothing but the run (generic). With --calibration, the fixed-point model
runs beside the float one and the report adds its accuracy, the float-vs-fixed agreement (for
detection: the fixed model's boxes against the float model's, which needs no labels) and
per-output SQNR.

Options:
  --images P        a folder of images (searched recursively) or a text file listing image paths
  --task T          ${TASKS.join(' | ')}
  --labels L        imagenet: class list file, one name per line (wnids such as
                    imagenet-wnids.txt; an image's class is its wnid file-name prefix or its
                    folder's name); without it, one sub-folder per class (sorted)
                    detection: folder of YOLO .txt box files named like the images (optional
                    with --calibration: the float boxes are then the reference)
                    segmentation: folder of single-channel PNG masks named like the images
  --class-map M     segmentation: mask value -> model class: ${Object.keys(CLASS_MAPS).join(', ')}, or a
                    JSON file {"classes":{"<mask value>":class},"ignore":[values],"other":class|-1}
  --calibration D   a folder written by p2calib calibrate (calibration.json): adds the fixed-point
                    model (the device's integer arithmetic) beside the float one
  --input-shape S   model input shape when it has dynamic dims, e.g. 1,3,224,224
  --limit N         evaluate the first N images (after --seed shuffling)
  --seed N          shuffle the images with this seed before --limit
${STRICT_HELP}
  --workers N       worker threads running the models (default and most: the number of
                    cores, ${availableParallelism()} here; at most one per image; the result does not depend on it)
  --head H          detection: ${HEAD_KINDS.join(' | ')}; default: prior-box when two outputs pair as
                    [1,N,classes] scores and [1,N,4] boxes (SSD, UltraFace), else yolox
  --priors P        detection, prior-box: the boxes are offsets against these priors (SSD):
                    ${Object.keys(PRIOR_PRESETS).join(', ')}, or a JSON file {"strides","minSizes","maxSizes",
                    "aspectRatios","featureMaps","centerVariance","sizeVariance","clip"} (README);
                    without, they are decoded corners, normalized to the input size (UltraFace)
  --box-scores S    detection, prior-box: the score output holds ${BOX_SCORES.join(' | ')}
                    (logits through softmax or sigmoid); default probabilities
  --background B    detection, prior-box: first (class 0 is background, default) | none
  --score-threshold detection, mAP: keep candidates above this score (default 0.001)
  --agreement-score detection, float vs fixed: compare the boxes above this score (default 0.5)
  --nms-iou X       detection: per-class NMS IoU threshold (default 0.5)
  --json            print one JSON object: {"images":N,"float":{...},"fixed":{...},"agreement":x}
  --verbose         stack traces on errors

${PREPROCESS_HELP}
  With --calibration, the preprocessing and input shape the calibration was made with are the
  defaults (flags override them, with a warning when the result differs). Otherwise the imagenet
  task defaults to --preprocess imagenet and the other tasks need --preprocess.

Examples:
  p2calib eval mobilenetv2-12-fp32.onnx --task imagenet --images imagenet-sample \\
      --labels imagenet-wnids.txt
  p2calib eval yolox-nano.onnx --task detection --preprocess yolox \\
      --images coco128-val/images --labels coco128-val/detection-labels
  p2calib eval deeplabv3-mobilenetv2-257-nhwc.onnx --task segmentation --preprocess deeplab \\
      --images coco128-val/images --labels coco128-val/segmentation-masks --class-map coco-panoptic-to-voc
  p2calib eval ultraface-rfb-320.onnx --task detection --images coco128-val/images \
      --calibration ultraface-calib/
  p2calib eval mobilenetv2-12-fp32.onnx --task imagenet --images imagenet-sample \
      --labels imagenet-wnids.txt --calibration out/ --json
  p2calib eval model.onnx --task generic --images calib/ --preprocess spec.json --calibration out/ --limit 50`;

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : String(v));

function metricLines(m: Metrics): [string, string][] {
  const pct = (v: number) => `${v.toFixed(1)} %`;
  const lines: [string, string][] = [];
  if (m.top1 !== undefined) lines.push(['top-1', pct(m.top1)], ['top-5', pct(m.top5!)]);
  if (m.miou !== undefined) lines.push(['mIoU', pct(m.miou)]);
  if (m.map50 !== undefined) lines.push(['mAP@0.5', pct(m.map50)]);
  return lines;
}

function boxLine(b: NonNullable<EvalResult['boxes']>): string {
  return `fixed vs float boxes (score > ${b.scoreThreshold}, after NMS, matched at IoU ${b.iou}): precision ${b.precision.toFixed(1)} %, `
    + `recall ${b.recall.toFixed(1)} % (${b.fixed} fixed, ${b.float} float, ${b.matched} matched, mean IoU ${b.meanIou.toFixed(3)})`;
}

function report(r: EvalResult): string {
  const out = [`${r.images} images${r.skipped ? ` (${r.skipped} skipped: no label, or not a usable image)` : ''}, task ${r.task}${r.head ? `, ${r.head}` : ''}`];
  const f = metricLines(r.float);
  if (!r.fixed) {
    out.push(...(f.length ? f.map(([k, v]) => `float ${k} ${v}`) : ['float: no metric for the generic task (add --calibration to compare with fixed point)']));
    return out.join('\n');
  }
  const q = metricLines(r.fixed);
  if (f.length) out.push(`${''.padEnd(10)}${'float'.padStart(9)}${'fixed'.padStart(9)}`);
  f.forEach(([k, v], i) => out.push(`${k.padEnd(10)}${v.padStart(9)}${q[i][1].padStart(9)}`));
  if (r.boxes) out.push(boxLine(r.boxes));
  if (r.agreement !== undefined) out.push(`float/fixed agreement: ${r.agreement.toFixed(1)} % (${r.task === 'imagenet' ? 'top-1 class' : 'pixel classes'})`);
  for (const [name, db] of Object.entries(r.fixed.sqnr ?? {})) out.push(`output "${escapeControl(name)}": SQNR ${fmt(db)} dB, cosine similarity ${r.fixed.cosine![name].toFixed(4)}`);
  return out.join('\n');
}

/** A built-in by name, or a JSON file parsed by `parse` (--class-map, --priors). */
function builtinOrJson<T>(v: string | undefined, flag: string, builtins: Record<string, T>, what: string, parse: (json: unknown, where: string) => T): T | undefined {
  if (v === undefined) return undefined;
  if (builtins[v]) return builtins[v];
  if (!existsSync(v)) fail('BAD_OPTION', `--${flag} "${v}" is neither a built-in ${what} (${Object.keys(builtins).join(', ')}) nor an existing JSON file`);
  try {
    return parse(JSON.parse(readText(v, what)), `--${flag} ${v}`);
  } catch (e) {
    if (e instanceof SyntaxError) fail('BAD_OPTION', `--${flag} ${v}: not valid JSON (${e.message})`);
    throw e;
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values, pos } = parse(argv, {
    images: { type: 'string' },
    task: { type: 'string' },
    labels: { type: 'string' },
    'class-map': { type: 'string' },
    calibration: { type: 'string' },
    'input-shape': { type: 'string' },
    limit: { type: 'string' },
    seed: { type: 'string' },
    'score-threshold': { type: 'string' },
    'nms-iou': { type: 'string' },
    'agreement-score': { type: 'string' },
    head: { type: 'string' },
    priors: { type: 'string' },
    'box-scores': { type: 'string' },
    background: { type: 'string' },
    workers: { type: 'string' },
    ...STRICT_OPTION,
    ...PREPROCESS_OPTIONS,
  }, ['MODEL']);
  if (values.help) return console.log(help), 0;
  const task = values.task as Task | undefined;
  if (!task) fail('BAD_OPTION', `--task is required (${TASKS.join(', ')})`);
  if (!TASKS.includes(task)) fail('BAD_OPTION', `--task "${task}" is not one of ${TASKS.join(', ')}`);
  if (!values.images) fail('BAD_OPTION', '--images is required (a folder or a list file)');
  const limit = intOption(values.limit, 'limit');
  // Capped as calibrate caps it: more workers than cores only add memory and contention.
  const requested = intOption(values.workers, 'workers');
  const cores = availableParallelism();
  if (requested !== undefined && requested > cores) warn(`--workers ${requested} is more than the ${cores} cores; using ${cores}`);
  const workers = Math.min(requested ?? cores, cores);
  const head = choice<HeadKind>(values.head, 'head', HEAD_KINDS);
  const boxScores = choice<BoxScores>(values['box-scores'], 'box-scores', BOX_SCORES);
  const background = choice(values.background, 'background', ['first', 'none'] as const);
  const seed = intOption(values.seed, 'seed', 0);

  const skip = skipPolicy(values);
  const dataset = openDataset(values.images as string, { limit, seed, ...skip });
  const { bytes, options } = readModelFile(pos[0]);
  const table = values.calibration === undefined ? undefined : readCalibrationTable(values.calibration as string);
  // Before the recorded input shape meets a model it may not fit.
  if (table) checkModel(table.provenance, { sha256: await sha256Hex(bytes) });
  const unsized = specForCalibration(values, table?.provenance?.preprocessing, task === 'imagenet' ? 'imagenet' : undefined);
  const given = parseInputShape(values['input-shape'] as string | undefined) ?? (table && recordedInputShape(table));
  const inputShape = imageInputShape(decodeModel(bytes, options), given, unsized);
  const model = await loadModel(bytes, { ...options, inputShape });
  const spec = sizeSpec(unsized, model.inputs[0].shape);
  const cal = table && readCalibration(model, table);
  const calibrated = new Set(table?.provenance?.images?.files?.map((f) => f.sha256).filter(Boolean));
  if (calibrated.size) {
    const shared = imageIdentities(dataset.files).filter((f) => calibrated.has(f.sha256)).length;
    if (shared) console.error(`p2calib: warning: ${shared} of the ${dataset.files.length} images were also calibration images (same content): the fixed-point figures flatter the calibration`);
  }
  const bar = values.json ? undefined : progress('eval');
  const result = await evaluate(model, {
    task,
    dataset,
    spec,
    labels: values.labels as string | undefined,
    classMap: builtinOrJson(values['class-map'] as string | undefined, 'class-map', CLASS_MAPS, 'map', (j, where) => parseClassMap(j, where)),
    detection: {
      head, scores: boxScores, background: background === undefined ? undefined : background === 'first',
      priors: builtinOrJson(values.priors as string | undefined, 'priors', PRIOR_PRESETS, 'prior spec', parsePriorSpec),
      scoreThreshold: numberOption(values['score-threshold'], 'score-threshold', { min: 0 }),
      nmsIou: numberOption(values['nms-iou'], 'nms-iou', { min: 0 }),
      agreementScore: numberOption(values['agreement-score'], 'agreement-score', { min: 0 }),
    },
    calibration: cal,
    workers,
    onProgress: bar ? (d, t) => bar.update(d, t) : undefined,
    ...skip,
  });
  bar?.done();
  if (values.json) {
    const { images, float, fixed, agreement, boxes } = result;
    console.log(JSON.stringify({ images, float, ...(fixed ? { fixed } : {}), ...(agreement !== undefined ? { agreement } : {}), ...(boxes ? { boxes } : {}) }));
  } else {
    console.log(report(result));
  }
  return 0;
}
