// Detection heads end to end: a generated SSD-style model (offsets against priors) scored by
// `p2calib eval` against labels and against its own fixed-point calibration, with 1 and 2
// workers; the shared UltraFace face detector (prior boxes decoded in its graph) and YOLOX.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { presetSpec, sizeSpec } from '../sdk/data/preprocess.js';
import type { Tensor } from '../sdk/graph/ir.js';
import { loadModel } from '../sdk/model.js';
import { detectionHead } from '../sdk/metrics/heads.js';
import { decodePriorBoxes, PRIOR_PRESETS, priorBoxes } from '../sdk/metrics/prior-box.js';
import { openDataset } from '../sdk/node/datasets.js';
import { evaluate } from '../sdk/node/evaluate.js';
import { loadImageTensor } from '../sdk/node/images.js';
import { decodeModel } from '../sdk/onnx/decode.js';
import { encodeModel } from '../sdk/onnx/encode.js';
import { runCli } from './cli-run.js';
import { ASSETS, MODELS, assetTest, buildModel, floats, ints, node } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'p2calib-detection-'));

// 16x16 input, one 8x8 cell per quadrant (stride 8): the face logit is 24 x the cell's mean red,
// the background logit 12 + 8 x its mean green, the box offsets 0.5 x its mean blue (x) and 0: a
// red quadrant is a face whose box is the quadrant's prior (score 1 - 6e-6), a black one scores
// sigmoid(-12) = 6e-6, below any threshold.
const weights = new Array(6 * 3 * 64).fill(0);
const cellMean = (out: number, channel: number, gain: number) => {
  for (let i = 0; i < 64; i++) weights[(out * 3 + channel) * 64 + i] = gain / 64;
};
cellMean(0, 1, 8);
cellMean(1, 0, 24);
cellMean(2, 2, 0.5);
const ssd = join(dir, 'ssd.onnx');
writeFileSync(ssd, buildModel({
  inputs: [{ name: 'x', dims: [1, 3, 16, 16] }],
  outputs: [{ name: 'scores' }, { name: 'boxes' }],
  nodes: [
    node('Conv', ['x', 'w', 'b'], ['head'], { kernel_shape: [8, 8], strides: [8, 8] }),
    node('Transpose', ['head'], ['cells'], { perm: [0, 2, 3, 1] }),
    node('Reshape', ['cells', 'rows'], ['flat']),
    node('Split', ['flat', 'parts'], ['logits', 'boxes'], { axis: 2 }),
    node('Softmax', ['logits'], ['scores'], { axis: 2 }),
  ],
  initializers: {
    w: floats([6, 3, 8, 8], weights), b: floats([6], [12, 0, 0, 0, 0, 0]), rows: ints([3], [1, 4, 6]), parts: ints([2], [2, 4]),
  },
}));
const priorsFile = join(dir, 'priors.json');
writeFileSync(priorsFile, JSON.stringify({ strides: [8], minSizes: [[8]], centerVariance: 0.1, sizeVariance: 0.2 }));

/** A 32x32 image with red quadrants (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). */
async function quadrants(file: string, red: number[], blue = 0, level = 255): Promise<void> {
  const px = Buffer.alloc(32 * 32 * 3);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const q = (y >= 16 ? 2 : 0) + (x >= 16 ? 1 : 0);
      if (red.includes(q)) px[(y * 32 + x) * 3] = level;
      px[(y * 32 + x) * 3 + 2] = blue;
    }
  }
  writeFileSync(file, await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer());
}
const images = join(dir, 'images'), labels = join(dir, 'labels'), calib = join(dir, 'calib');
mkdirSync(images);
mkdirSync(labels);
mkdirSync(calib);
await quadrants(join(images, 'a.png'), [0]);
await quadrants(join(images, 'b.png'), [1, 2]);
// c's face is a darker red: its score (24 * 180/255 - 12: 0.993) ranks below the others.
await quadrants(join(images, 'c.png'), [3], 0, 180);
await quadrants(join(images, 'd.png'), []);
// YOLO labels: a and b right; c's face labelled in the wrong quadrant; d has no label file.
const quad = (q: number) => `0 ${q % 2 ? 0.75 : 0.25} ${q >= 2 ? 0.75 : 0.25} 0.5 0.5`;
writeFileSync(join(labels, 'a.txt'), `${quad(0)}\n`);
writeFileSync(join(labels, 'b.txt'), `${quad(1)}\n${quad(2)}\n`);
writeFileSync(join(labels, 'c.txt'), `${quad(0)}\n`);
for (const [i, red] of [[0, 3], [1], [2], [0, 1, 2, 3], []].entries()) await quadrants(join(calib, `${i}.png`), red, 40 * i);
const PP = ['--preprocess', 'imagenet', '--resize', 'fill', '--size', '16x16', '--mean', '0', '--std', '1'];

test('generated SSD head: eval decodes its offsets against the priors of --priors; mAP by hand', async () => {
  const r = await runCli(['eval', ssd, '--task', 'detection', '--images', images, '--labels', labels, '--priors', priorsFile, ...PP, '--json']);
  assert.is(r.code, 0, r.stderr);
  // Class 0 ranking: a, b, b true positives, then c a false positive, over 4 objects ->
  // precision 1, 1, 1, 3/4 at recall 1/4 .. 3/4: AP = 0.75.
  assert.is(JSON.parse(r.stdout).float.map50, 75);
  const text = await runCli(['eval', ssd, '--task', 'detection', '--images', images, '--labels', labels, '--priors', priorsFile, ...PP]);
  assert.match(text.stdout, /^4 images, task detection, prior boxes: scores "scores" \(1 class after the background\), boxes "boxes" \(offsets against 4 priors\)\nfloat mAP@0.5 75\.0 %\n$/);
  // Without --priors the offsets would be read as corners: the boxes collapse and nothing matches.
  const corners = await runCli(['eval', ssd, '--task', 'detection', '--images', images, '--labels', labels, ...PP, '--json']);
  assert.is(JSON.parse(corners.stdout).float.map50, 0);
});

test('generated SSD head: without labels, the fixed model\'s boxes against the float ones; identical with 1 and 2 workers', async () => {
  const cal = join(dir, 'cal');
  const c = await runCli(['calibrate', ssd, '--images', calib, '--out', cal, ...PP, '--workers', '1']);
  assert.is(c.code, 0, c.stderr);
  const args = ['eval', ssd, '--task', 'detection', '--images', images, '--calibration', cal, '--priors', priorsFile, '--json'];
  const [one, two] = await Promise.all([runCli([...args, '--workers', '1']), runCli([...args, '--workers', '2'])]);
  assert.is(one.code, 0, one.stderr);
  assert.is(two.stdout, one.stdout);
  const j = JSON.parse(one.stdout);
  // Four red quadrants over the images: the float model finds each once; so does the fixed one.
  assert.equal({ ...j.boxes, meanIou: undefined }, { precision: 100, recall: 100, float: 4, fixed: 4, matched: 4, meanIou: undefined, scoreThreshold: 0.5, iou: 0.5 });
  assert.ok(j.boxes.meanIou > 0.95, `mean IoU ${j.boxes.meanIou}`);
  assert.equal(j.float, {});
  // With labels too: both mAPs, and the agreement.
  const both = JSON.parse((await runCli([...args, '--labels', labels])).stdout);
  assert.is(both.float.map50, 75);
  // The same ranking at the top; below it, the fixed softmax's first step (1/256 > 0.001) turns
  // black quadrants into candidates, c's labelled one among them.
  assert.ok(both.fixed.map50 >= 75 && both.fixed.map50 < 100, String(both.fixed.map50));
  assert.is(both.boxes.matched, 4);
  // A detection eval with neither labels nor a calibration has nothing to report.
  const none = await runCli(['eval', ssd, '--task', 'detection', '--images', images, ...PP]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /detection needs --labels DIR, .* or a calibration/);
});

assetTest(test, 'UltraFace: its priors are the ultraface preset, and its in-graph decoding is SSD\'s (offsets cut out of the graph, decoded here)', async () => {
  const graph = decodeModel(readFileSync(join(MODELS, 'ultraface-rfb-320.onnx')));
  const constant = (output: string) => {
    const n = graph.nodes.find((x) => x.op === 'Constant' && x.outputs[0] === output)!;
    return (n.attrs.value.value as Tensor).data as Float32Array;
  };
  // The graph adds the prior centres (Constant 467) to offsets scaled by the prior sizes (465).
  const priors = priorBoxes(PRIOR_PRESETS.ultraface, 320, 240);
  const centres = constant('467'), sizes = constant('465');
  let worst = 0;
  for (let i = 0; i < 4420; i++) {
    for (let k = 0; k < 2; k++) worst = Math.max(worst, Math.abs(priors[4 * i + k] - centres[2 * i + k]), Math.abs(priors[4 * i + 2 + k] - sizes[2 * i + k]));
  }
  assert.ok(worst < 1e-6, `priors differ by ${worst}`);
  // Expose the raw logits (459) and offsets (460) beside the decoded outputs.
  graph.outputs.push({ name: '459', dtype: 'float32', dims: [1, 4420, 2] }, { name: '460', dtype: 'float32', dims: [1, 4420, 4] });
  const model = await loadModel(encodeModel(graph), { inputShape: [1, 3, 240, 320] });
  const spec = sizeSpec(presetSpec('ultraface'), [1, 3, 240, 320]);
  // A group photo: ten faces score above 0.7.
  const out = await model.run(await loadImageTensor(join(ASSETS, 'images/coco128-val/images/000000001000.jpg'), spec));
  const decoded = detectionHead(model.outputs.filter((o) => o.name === 'scores' || o.name === 'boxes'), 320, 240).decode(out, 0.3);
  const fromOffsets = decodePriorBoxes(out['459'], out['460'], { width: 320, height: 240, priors: PRIOR_PRESETS.ultraface, scores: 'softmax' }, 0.3);
  assert.ok(decoded.length >= 10, String(decoded.length));
  assert.is(fromOffsets.length, decoded.length);
  fromOffsets.forEach((b, i) => {
    const d = decoded[i];
    for (const k of ['x1', 'y1', 'x2', 'y2'] as const) assert.ok(Math.abs(b[k] - d[k]) < 1e-3, `${k} ${b[k]} vs ${d[k]}`);
    assert.ok(Math.abs(b.score - d.score) < 1e-5);
  });
});

assetTest(test, 'UltraFace on coco128 faces: fixed-point boxes against float ones (no labels), identical with 1 and 2 workers', async () => {
  const coco = openDataset(join(ASSETS, 'images/coco128-val/images')).files;
  const list = (name: string, files: string[]) => {
    writeFileSync(join(dir, name), files.join('\n'));
    return join(dir, name);
  };
  const model = join(MODELS, 'ultraface-rfb-320.onnx'), cal = join(dir, 'ultraface');
  const c = await runCli(['calibrate', model, '--images', list('uf-cal.txt', coco.slice(0, 8)), '--preprocess', 'ultraface', '--out', cal]);
  assert.is(c.code, 0, c.stderr);
  const args = ['eval', model, '--task', 'detection', '--images', list('uf-eval.txt', coco.slice(8, 20)), '--calibration', cal, '--json'];
  const one = await runCli([...args, '--workers', '1']);
  const two = await runCli([...args, '--workers', '2']);
  assert.is(one.code, 0, one.stderr);
  assert.is(two.stdout, one.stdout);
  const j = JSON.parse(one.stdout);
  assert.is(j.images, 12);
  assert.ok(j.boxes.float >= 10, `${j.boxes.float} float faces`);
  assert.ok(j.boxes.precision >= 60 && j.boxes.recall >= 60, JSON.stringify(j.boxes));
  assert.ok(j.fixed.sqnr.boxes > 25, JSON.stringify(j.fixed.sqnr));
});

assetTest(test, 'YOLOX without labels: a model compared with itself agrees box for box', async () => {
  const model = await loadModel(readFileSync(join(MODELS, 'yolox-nano.onnx')), { inputShape: [1, 3, 416, 416] });
  const r = await evaluate(model, {
    task: 'detection', dataset: openDataset(join(ASSETS, 'images/coco128-val/images'), { limit: 2 }), spec: sizeSpec(presetSpec('yolox'), [1, 3, 416, 416]),
    fixed: { run: (x) => model.run(x) }, detection: { agreementScore: 0.3 },
  });
  assert.match(r.head!, /^YOLOX grids on "output" \(strides 8\/16\/32, 80 classes\)$/);
  assert.ok(r.boxes!.float > 0);
  assert.equal([r.boxes!.precision, r.boxes!.recall, r.boxes!.matched, r.boxes!.meanIou], [100, 100, r.boxes!.float, 1]);
  assert.equal(r.float, {});
});

test.after(() => rmSync(dir, { recursive: true }));
test.run();
