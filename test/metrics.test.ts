import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sameTop1, topK, TopKAccuracy } from '../sdk/metrics/classification.js';
import { averagePrecision, BoxAgreement, DetectionAP, iou, matchBoxes, nms, parseYoloLabels, type Box } from '../sdk/metrics/detection.js';
import { detectionHead } from '../sdk/metrics/heads.js';
import { decodePriorBoxes, parsePriorSpec, PRIOR_PRESETS, priorBoxes } from '../sdk/metrics/prior-box.js';
import { decodeYolox } from '../sdk/metrics/yolox.js';
import { ErrorStats } from '../sdk/metrics/error.js';
import {
  argmaxClasses, COCO_PANOPTIC_TO_VOC, IGNORE, mapMask, MeanIoU, parseClassMap, resizeLabels, type LabelMap,
} from '../sdk/metrics/segmentation.js';
import { P2Error } from '../sdk/errors.js';

const close = (a: number, b: number, eps = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= eps, `${msg} ${a} vs ${b}`);
const box = (x1: number, y1: number, x2: number, y2: number, cls = 0, score = 1): Box => ({ x1, y1, x2, y2, cls, score });

test('topK: order, ties to the lower index, k larger than the list', () => {
  assert.equal(topK([0.1, 0.5, 0.3, 0.5, 0.2], 3), [1, 3, 2]);
  assert.equal(topK([3, 1], 5), [0, 1]);
});

test('top-1/top-5 and agreement on constructed scores', () => {
  const acc = new TopKAccuracy();
  const scores = (best: number[]) => Float32Array.from({ length: 10 }, (_, i) => (best.includes(i) ? 10 - best.indexOf(i) : 0));
  acc.add(scores([3, 1, 2, 4, 5]), 3); // top-1 hit
  acc.add(scores([1, 3, 2, 4, 5]), 3); // top-5 hit only
  acc.add(scores([1, 2, 4, 5, 6]), 3); // miss
  acc.add(scores([7, 0, 1, 2, 4]), 7); // top-1 hit
  assert.equal(acc.result(), { top1: 50, top5: 75 });
  assert.ok(sameTop1([1, 2, 0], [0, 3, 1]));
  assert.not.ok(sameTop1([1, 2, 0], [3, 2, 1]));
  assert.ok(sameTop1([5, 2, 5], [3, 2, 1])); // ties go to the first index
});

test('IoU, per-class NMS', () => {
  close(iou(box(0, 0, 2, 2), box(1, 1, 3, 3)), 1 / 7);
  assert.is(iou(box(0, 0, 1, 1), box(1, 0, 2, 1)), 0);
  const kept = nms([
    box(0, 0, 10, 10, 0, 0.9),
    box(1, 0, 11, 10, 0, 0.8), // IoU 9/11 with the first: suppressed
    box(1, 0, 11, 10, 1, 0.7), // other class: kept
    box(5, 0, 15, 10, 0, 0.6), // IoU 5/15 with the first: kept
  ], 0.5);
  assert.equal(kept.map((b) => b.score), [0.9, 0.7, 0.6]);
});

test('all-point AP by hand: TP FP TP FP with 3 ground truths is 1/3 + 1/3 * 2/3', () => {
  close(averagePrecision([true, false, true, false], 3), 1 / 3 + (1 / 3) * (2 / 3));
  close(averagePrecision([true, true], 2), 1);
  assert.is(averagePrecision([false], 1), 0);
});

test('DetectionAP: duplicates are false positives, each ground truth matches once, mean over present classes', () => {
  const ap = new DetectionAP(0.5);
  // Image 1: class 0 has one object, found twice (second is a duplicate) ; class 1 object missed.
  ap.add([box(0, 0, 10, 10, 0, 0.9), box(0, 0, 10, 9, 0, 0.8), box(50, 50, 60, 60, 2, 0.5)], [box(0, 0, 10, 10, 0), box(20, 20, 30, 30, 1)]);
  // Image 2: class 0 object found with a low score after a false positive.
  ap.add([box(40, 40, 50, 50, 0, 0.95), box(0, 0, 10, 10, 0, 0.3)], [box(1, 1, 10, 10, 0)]);
  // Class 0 ranking: 0.95 FP, 0.9 TP, 0.8 FP, 0.3 TP over 2 positives:
  // precision 0, 1/2, 1/3, 2/4; recall 0, 1/2, 1/2, 1 -> envelope 1/2 at both steps -> AP 0.5.
  // Class 1: no detection -> 0. Class 2 has no ground truth: not averaged.
  const r = ap.result();
  close(r.perClass[0], 50);
  close(r.perClass[1], 0);
  assert.is(r.perClass[2], undefined);
  close(r.map, 25);
});

test('YOLOX decoding: grid offsets, exp sizes, obj*cls scores, stride order', () => {
  // 64x64 input: grids 8x8 (stride 8), 4x4 (16), 2x2 (32) = 84 rows of 5 + 2 classes.
  const rows = 84, L = 7;
  const out = new Float32Array(rows * L);
  const row = 64 + 2 * 4 + 1; // stride 16, gx = 1, gy = 2
  out.set([0.5, 0.25, Math.log(2), 0, 0.8, 0.25, 0.5], row * L);
  const boxes = decodeYolox(out, L, { width: 64, height: 64, scoreThreshold: 0.01 });
  assert.is(boxes.length, 1);
  const b = boxes[0];
  // centre ((0.5+1)*16, (0.25+2)*16) = (24, 36), size (2*16, 1*16)
  [8, 28, 40, 44].forEach((v, i) => close([b.x1, b.y1, b.x2, b.y2][i], v, 1e-5));
  assert.is(b.cls, 1);
  close(b.score, 0.4, 1e-6);
  try {
    decodeYolox(new Float32Array(83 * L), L, { width: 64, height: 64 });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, P2Error);
    assert.match((e as Error).message, /need 84 rows/);
  }
});

test('matchBoxes: highest score first, best IoU of the same class, each reference once', () => {
  const ref = [box(0, 0, 10, 10, 0), box(20, 0, 30, 10, 0), box(0, 0, 10, 10, 1)];
  const dets = [box(1, 0, 11, 10, 0, 0.5), box(0, 0, 10, 10, 0, 0.9), box(21, 0, 31, 10, 0, 0.7), box(0, 0, 10, 10, 2, 0.8)];
  // 0.9 takes ref 0 (IoU 1); 0.7 takes ref 1; 0.5 overlaps ref 0 only, already taken; class 2 has no reference.
  assert.equal(matchBoxes(dets, ref, 0.5), [-1, 0, 1, -1]);
});

test('BoxAgreement by hand: precision over the fixed boxes, recall over the float boxes, 100 when empty', () => {
  const a = new BoxAgreement(0.5);
  // Image 1: float has 3 boxes, fixed finds 2 of them (one shifted: IoU 9/11) and one extra.
  a.add([box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)], [box(1, 0, 11, 10, 0, 0.9), box(20, 0, 30, 10, 0, 0.8), box(60, 60, 70, 70, 0, 0.7)]);
  // Image 2: neither has a box.
  a.add([], []);
  const r = a.result();
  assert.equal([r.float, r.fixed, r.matched], [3, 3, 2]);
  close(r.precision, 200 / 3);
  close(r.recall, 200 / 3);
  close(r.meanIou, (9 / 11 + 1) / 2);
  assert.equal(new BoxAgreement().result(), { precision: 100, recall: 100, float: 0, fixed: 0, matched: 0, meanIou: 1 });
});

test('priors: UltraFace\'s generator (centres (i + 0.5) / cells, sizes min/size, cell by cell) and SSD\'s steps, max sizes and aspect ratios', () => {
  const uf = priorBoxes(PRIOR_PRESETS.ultraface, 320, 240);
  // 40x30x3 + 20x15x2 + 10x8x2 + 5x4x3 = 4420 priors, as the shared UltraFace has boxes.
  assert.is(uf.length / 4, 4420);
  // Prior 4: stride-8 cell (1, 0), its second size (16 px).
  [1.5 * 8 / 320, 0.5 * 8 / 240, 16 / 320, 16 / 240].forEach((v, i) => close(uf[16 + i], v, 1e-12));
  // The last prior: stride 64, the cell (4, 3) of a 5x4 map (ceil(240 / 64) = 4 rows), 256 px;
  // centres by cells: (4.5 / 5, 3.5 / 4); clipped to 1 high.
  [4.5 / 5, 3.5 / 4, 256 / 320, 1].forEach((v, i) => close(uf[uf.length - 4 + i], v, 1e-12));
  // By stride (SSD's step): the same cell is centred at 3.5 * 64 / 240.
  const bySteps = priorBoxes({ ...PRIOR_PRESETS.ultraface, centers: 'stride' }, 320, 240);
  close(bySteps[bySteps.length - 3], 3.5 * 64 / 240, 1e-12);
  const ssd = priorBoxes({ strides: [10], minSizes: [[20]], maxSizes: [[80]], aspectRatios: [[4]], featureMaps: [[1, 1]], clip: true }, 100, 50);
  // One cell: the square 20, sqrt(20*80) = 40, then 20*2 x 20/2 and 20/2 x 20*2; clipped to [0, 1].
  const want = [[0.05, 0.1, 0.2, 0.4], [0.05, 0.1, 0.4, 0.8], [0.05, 0.1, 0.4, 0.2], [0.05, 0.1, 0.1, 0.8]];
  assert.equal(Array.from(ssd).map((v) => Number(v.toFixed(12))), want.flat());
});

test('prior-box decoding: SSD offsets with variances, decoded corners, per-class candidates, background dropped', () => {
  const spec = parsePriorSpec({ strides: [16], minSizes: [[16]], centerVariance: 0.1, sizeVariance: 0.2 });
  // A 32x16 input: 2x1 cells, priors (8, 8, 16, 16) and (24, 8, 16, 16) in pixels.
  const scores = Float32Array.from([0.2, 0.7, 0.1, /* prior 1 */ 0.1, 0.3, 0.6]);
  const offsets = Float32Array.from([0, 0, 0, 0, /* prior 1 */ 5, -2.5, Math.log(2) / 0.2, 0]);
  const boxes = decodePriorBoxes(scores, offsets, { width: 32, height: 16, priors: spec }, 0.25);
  // Prior 0: class 1 (0.7) -> label class 0, the prior itself. Prior 1: classes 1 (0.3) and 2 (0.6):
  // centre (24 + 5*0.1*16, 8 - 2.5*0.1*16) = (32, 4), size (32, 16).
  assert.equal(boxes.map((b) => [b.cls, Number(b.score.toFixed(6)), b.x1, b.y1, b.x2, b.y2].map((v) => Number(v.toFixed(6)))), [
    [0, 0.7, 0, 0, 16, 16], [0, 0.3, 16, -4, 48, 12], [1, 0.6, 16, -4, 48, 12],
  ]);
  // Decoded corners (no priors), normalized; logits through softmax; no background class.
  const corners = decodePriorBoxes(Float32Array.from([0, Math.log(3)]), Float32Array.from([0.25, 0.5, 0.5, 1]), { width: 32, height: 16, scores: 'softmax', background: false }, 0.5);
  assert.equal(corners.map((b) => [b.cls, Number(b.score.toFixed(6)), b.x1, b.y1, b.x2, b.y2]), [[1, 0.75, 8, 8, 16, 16]]);
  assert.throws(() => parsePriorSpec({ strides: [8], minSizes: [[1], [2]] }), /one list per level/);
  assert.throws(() => parsePriorSpec({ strides: [8], minSizes: [[1]], variance: 1 }), /unknown field "variance"/);
  assert.throws(() => parsePriorSpec('ssd300'), /no prior preset "ssd300"/);
});

test('detectionHead: a score/box pair is a prior-box head, a [1,N,5+C] grid output YOLOX; anything else is refused', () => {
  const uf = detectionHead([{ name: 'scores', shape: [1, 4420, 2] }, { name: 'boxes', shape: [1, 4420, 4] }], 320, 240);
  assert.is(uf.kind, 'prior-box');
  assert.match(uf.describe, /scores "scores" \(1 class after the background\), boxes "boxes" \(decoded corners\)/);
  // Four classes: the box output is told by its name, whatever the order.
  assert.match(detectionHead([{ name: 'loc', shape: [1, 6, 4] }, { name: 'conf', shape: [1, 6, 4] }], 32, 32).describe, /boxes "loc"/);
  assert.is(detectionHead([{ name: 'out', shape: [1, 3549, 85] }], 416, 416).kind, 'yolox');
  assert.throws(() => detectionHead([{ name: 'scores', shape: [1, 4420, 2] }, { name: 'boxes', shape: [1, 4420, 4] }], 320, 240, { priors: { strides: [8], minSizes: [[8]] } }), /lays 1200 priors/);
  assert.throws(() => detectionHead([{ name: 'out', shape: [1, 1000] }], 224, 224), /no output holds a YOLOX head.*"out" \[1,1000\]/);
});

test('YOLO label files: normalized centre boxes to pixels; bad lines are user errors', () => {
  const [b] = parseYoloLabels('3 0.5 0.25 0.2 0.1\n\n', 200, 100);
  assert.equal([b.cls, b.x1, b.y1, b.x2, b.y2], [3, 80, 20, 120, 30]);
  assert.throws(() => parseYoloLabels('x 1 2', 10, 10, 'a.txt'), /a\.txt:1/);
});

test('mIoU by hand on a 2x3 map, with ignored pixels and classes absent from both', () => {
  const map = (data: number[]): LabelMap => ({ width: 3, height: 2, data: Int32Array.from(data) });
  const m = new MeanIoU(4);
  m.add(map([0, 0, 1, 1, 1, 0]), map([0, 1, 1, 1, IGNORE, 0]));
  // Scored pixels (5): class 0: TP 2 (px 0, 5), FP 1 (px 1), FN 0 -> 2/3; class 1: TP 2, FN 1 -> 2/3.
  const r = m.result();
  close(r.perClass[0]!, 200 / 3);
  close(r.perClass[1]!, 200 / 3);
  assert.is(r.perClass[2], null);
  close(r.miou, 200 / 3);
});

test('class maps: COCO panoptic -> VOC, unlabeled ignored, everything else background', () => {
  const m = mapMask(Uint8Array.of(0, 1, 5, 72, 100, 44), 6, 1, COCO_PANOPTIC_TO_VOC);
  assert.equal(Array.from(m.data), [IGNORE, 15, 1, 20, 0, 5]);
  const custom = parseClassMap({ classes: { 7: 1 }, other: 0 });
  assert.equal(Array.from(mapMask([7, 8], 2, 1, custom).data), [1, 0]);
  assert.throws(() => parseClassMap({ classes: { a: 1 } }), /not "<mask value>": <class index>/);
});

test('argmax in both layouts, nearest label resize with floor(x * in / out)', () => {
  // 1x2 image, 3 classes: pixel 0 -> class 2, pixel 1 -> class 0
  assert.equal(Array.from(argmaxClasses([0, 1, 5, 9, 1, 2], 2, 1, 3, 'NHWC').data), [2, 0]);
  assert.equal(Array.from(argmaxClasses([0, 9, 1, 1, 5, 2], 2, 1, 3, 'NCHW').data), [2, 0]);
  const r = resizeLabels({ width: 3, height: 1, data: Int32Array.of(1, 2, 3) }, 5, 1);
  assert.equal(Array.from(r.data), [1, 1, 2, 2, 3]); // sources floor(x*3/5) = 0 0 1 1 2
});

test('SQNR and cosine similarity by hand, independent of how images are grouped', () => {
  const e = new ErrorStats();
  e.add([1, 2], [1, 1]);
  close(e.sqnr(), 10 * Math.log10(5));
  close(e.cosine(), 3 / Math.sqrt(10));
  const split = new ErrorStats();
  split.add([1], [1]);
  split.add([2], [1]);
  close(split.sqnr(), e.sqnr());
  const same = new ErrorStats();
  same.add([1, -2], [1, -2]);
  assert.is(same.sqnr(), Infinity);
  close(same.cosine(), 1);
});

test.run();
