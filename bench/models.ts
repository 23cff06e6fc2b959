/**
 * The shared real models the benchmarks run, each with its input shape and preprocessing
 * (../shared/assets/README.md, ../shared/assets/preprocess/), and a real image as its input:
 * kernels' speed can depend on values (denormals, zero skipping), so no synthetic tensors.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadImageTensor } from '../sdk/node/images.js';
import { parseSpec, presetSpec, sizeSpec, type SizedSpec } from '../sdk/data/preprocess.js';
import type { Node } from '../sdk/graph/ir.js';

export const ASSETS = join(process.cwd(), '../shared/assets');

export interface BenchModel {
  name: string;
  file: string;
  shape: number[];
  spec: SizedSpec;
  images: string;
}

const preset = (name: string) => presetSpec(name);
const fromFile = (name: string, shape: number[]) =>
  sizeSpec(parseSpec(JSON.parse(readFileSync(join(ASSETS, 'preprocess', `${name}.json`), 'utf8'))), shape);

const IMAGENET = 'images/imagenet-sample';
const COCO = 'images/coco128-val/images';

/** In the order of the issue's table; MobileNetV2 first (the figures kept comparable). */
export function benchModels(): BenchModel[] {
  const m = (name: string, file: string, shape: number[], spec: SizedSpec, images = COCO): BenchModel => ({
    name, file: join(ASSETS, 'models', file), shape, spec, images: join(ASSETS, images),
  });
  return [
    m('mobilenetv2', 'mobilenetv2-12-fp32.onnx', [1, 3, 224, 224], preset('imagenet'), IMAGENET),
    m('yolox-nano', 'yolox-nano.onnx', [1, 3, 416, 416], preset('yolox')),
    m('deeplabv3', 'deeplabv3-mobilenetv2-257-nhwc.onnx', [1, 257, 257, 3], preset('deeplab')),
    m('ultraface', 'ultraface-rfb-320.onnx', [1, 3, 240, 320], preset('ultraface')),
    m('ppocrv4-rec', 'ppocrv4-rec.onnx', [1, 3, 48, 320], fromFile('ppocrv4-rec', [1, 3, 48, 320])),
    m('ppocrv4-det', 'ppocrv4-det.onnx', [1, 3, 480, 640], fromFile('ppocrv4-det', [1, 3, 480, 640])),
    m('tbefn', 'tbefn-180x320.onnx', [1, 3, 180, 320], fromFile('tbefn-180x320', [1, 3, 180, 320])),
    m('agllnet', 'agllnet-256.onnx', [1, 3, 256, 256], fromFile('agllnet-256', [1, 3, 256, 256])),
  ];
}

/** The models named in a comma-separated list (all when the list is empty). */
export function selectModels(list: string | undefined): BenchModel[] {
  const all = benchModels();
  if (!list) return all;
  const names = list.split(',');
  const unknown = names.filter((n) => !all.some((m) => m.name === n));
  if (unknown.length) throw new Error(`unknown model(s) ${unknown.join(', ')} (models: ${all.map((m) => m.name).join(', ')})`);
  return all.filter((m) => names.includes(m.name));
}

/** The first `n` images (sorted names) of the model's image set. */
export function imageFiles(model: BenchModel, n: number): string[] {
  return readdirSync(model.images).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().slice(0, n).map((f) => join(model.images, f));
}

export function loadInputs(model: BenchModel, n: number): Promise<Float32Array[]> {
  return Promise.all(imageFiles(model, n).map((f) => loadImageTensor(f, model.spec)));
}

export const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
export const geomean = (a: number[]) => Math.exp(a.reduce((s, x) => s + Math.log(x), 0) / a.length);

/**
 * Timed rounds of several runners, interleaved so that load from other processes hits them alike:
 * `warmup` rounds, then rounds until each runner has `runs` times or the rounds have taken
 * `budgetMs` (at least `minRuns`). Returns each runner's times.
 */
export async function interleave(
  runners: (() => unknown)[], o: { runs: number; minRuns: number; warmup: number; budgetMs: number },
): Promise<number[][]> {
  const times = runners.map(() => [] as number[]);
  const t0 = performance.now();
  for (let i = 0; ; i++) {
    if (i >= o.warmup && (times[0].length >= o.runs || (times[0].length >= o.minRuns && performance.now() - t0 > o.budgetMs))) break;
    for (const [k, r] of runners.entries()) {
      const t = performance.now();
      await r();
      if (i >= o.warmup) times[k].push(performance.now() - t);
    }
  }
  return times;
}

/** Op-type key of a profile: convolutions split by kind, since their kernels differ. */
export function opKey(node: Node, params: unknown): string {
  const p = params as { group?: number; c?: number; kh?: number; kw?: number; sh?: number; sw?: number; linear?: boolean } | undefined;
  if (node.op === 'Conv' && p) {
    const kind = p.group === p.c && p.group! > 1 ? ' depthwise' : p.group! > 1 ? ' grouped' : '';
    return `Conv ${p.kh}x${p.kw}/${p.sh}${p.sw !== p.sh ? `x${p.sw}` : ''}${kind}`;
  }
  if (node.op === 'ConvTranspose' && p) return `ConvTranspose ${p.kh}x${p.kw}/${p.sh}${p.group! > 1 ? ' grouped' : ''}`;
  if ((node.op === 'Resize' || node.op === 'Upsample') && p) return `${node.op} ${p.linear ? 'linear' : 'nearest'}`;
  return node.op;
}

/** Add each step's time to its op key (steps timed between onStep callbacks). */
export function stepTimer(per: Map<string, number>, key: (node: Node) => string): (node: Node) => void {
  let last = performance.now();
  return (node) => {
    const now = performance.now();
    const k = key(node);
    per.set(k, (per.get(k) ?? 0) + now - last);
    last = now;
  };
}

/** "op ms (share), ..." for the largest entries of a profile summed over `runs` runs. */
export function formatProfile(per: Map<string, number>, runs: number, top = 8): string {
  const total = [...per.values()].reduce((a, b) => a + b, 0);
  return [...per].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, ms]) => `${k} ${(ms / runs).toFixed(ms / runs < 10 ? 2 : 0)} ms (${((100 * ms) / total).toFixed(0)} %)`).join(', ');
}
