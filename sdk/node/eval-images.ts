/**
 * What eval computes per image: decoding, the shared preprocessing, the float model and, when there
 * is one, the fixed-point model. Eval runs it in this thread or in worker threads
 * (eval-worker.ts), then scores the outputs in image order, so the result does not depend on how
 * many workers ran them.
 */
import { relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadCalibration } from '../calibration.js';
import { normalize, pixelSpec, type SizedSpec } from '../data/preprocess.js';
import { kernelModule } from '../engine/wasm.js';
import { fail, P2Error, type ErrorCode } from '../errors.js';
import type { CalibrationTable } from '../export/table.js';
import { Model, type ModelParts } from '../model.js';
import { decodeImage, imageGeometry } from './images.js';

/** Runs one preprocessed image (batch 1) and returns every output by name. */
export type Runner = (input: Float32Array) => Promise<Record<string, Float32Array>>;

/** The fixed-point model beside the float one; `pixels`: it takes raw 0..255 pixels (the
 *  preprocessing's affine map is its first layer). */
export interface FixedRunner {
  run: Runner;
  pixels?: boolean;
}

/** One image's outputs, and its decoded size (for its labels). */
export interface ImageOutputs {
  width: number;
  height: number;
  float: Record<string, Float32Array>;
  fixed?: Record<string, Float32Array>;
}

export function imageRunner(model: Model, spec: SizedSpec, fixed?: FixedRunner): (file: string) => Promise<ImageOutputs> {
  const size = model.inputs[0].shape.slice(1).reduce((a, b) => a * b, 1);
  const rawPixels = pixelSpec(spec);
  return async (file) => {
    const name = relative(process.cwd(), file);
    const img = await decodeImage(file, name);
    const { image, plan } = await imageGeometry(img, spec, 'sharp', name);
    const input = normalize(image, spec, new Float32Array(size), 0, plan);
    const float = await model.run(input);
    const out: ImageOutputs = { width: img.width, height: img.height, float };
    if (fixed) out.fixed = await fixed.run(fixed.pixels ? normalize(image, rawPixels, new Float32Array(size), 0, plan) : input);
    return out;
  };
}

/** What a worker thread needs to build its own runner. */
export interface EvalWorkerInit {
  model: ModelParts;
  spec: SizedSpec;
  table?: CalibrationTable;
  kernels: WebAssembly.Module;
}

/** The runner a worker builds: the float model from its parts, the fixed one from the table. */
export function runnerFromInit(init: EvalWorkerInit): (file: string) => Promise<ImageOutputs> {
  const model = Model.fromParts(init.model);
  const cal = init.table && loadCalibration(model, init.table);
  return imageRunner(model, init.spec, cal && { run: (x) => cal.run(x), pixels: !!cal.model.pixelInput });
}

type Reply = { id: number; value?: ImageOutputs; error?: { code?: ErrorCode; message: string } };

/** An image runner in a worker thread, a few images in flight. */
export class EvalWorker {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: ImageOutputs) => void; reject: (e: Error) => void }>();
  private failed?: Error;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(r.error.code ? new P2Error(r.error.code, r.error.message) : new Error(`eval worker: ${r.error.message}`));
      else p.resolve(r.value!);
    });
    const failAll = (e: Error) => {
      this.failed ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`eval worker thread exited (code ${code})`)));
  }

  static async start(init: Omit<EvalWorkerInit, 'kernels'>): Promise<EvalWorker> {
    const w = new EvalWorker(new Worker(new URL('./eval-worker.js', import.meta.url)));
    await w.request({ op: 'init', init: { ...init, kernels: await kernelModule() } });
    return w;
  }

  run(file: string): Promise<ImageOutputs> {
    return this.request({ op: 'run', file });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.failed ??= new Error('eval worker: closed');
    await this.worker.terminate();
  }

  private request(message: object): Promise<ImageOutputs> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...message });
    });
  }
}

/** Start `count` eval workers; if one fails to start, end the others and throw its error. */
export async function startEvalWorkers(count: number, init: Omit<EvalWorkerInit, 'kernels'>): Promise<EvalWorker[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => EvalWorker.start(init)));
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(workers.map((w) => w.close()));
    throw failed.reason;
  }
  if (!workers.length) fail('BAD_OPTION', 'eval needs at least one worker');
  return workers;
}
