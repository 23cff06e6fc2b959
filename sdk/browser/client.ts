/** The page's side of the calibration Web Worker: requests as promises, progress as callbacks. */
import { P2Error } from '../errors.js';
import type { ImageCalibrationJob, ImageCalibrationResult, JobProgress } from '../image-calibration.js';
import type { InspectReport } from '../inspect.js';
import type { EncodedImage, WorkerReply, WorkerRequest } from './protocol.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Pending {
  resolve: (value: never) => void;
  reject: (error: Error) => void;
  onProgress?: (p: JobProgress) => void;
}

export class CalibrationWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private next = 1;

  /** `url`: the worker script; by default p2calib-worker.js next to this bundle. */
  constructor(url: string | URL = new URL('./p2calib-worker.js', import.meta.url)) {
    this.worker = new Worker(url, { type: 'module' });
    this.worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const reply = e.data;
      const p = this.pending.get(reply.id);
      if (!p) return;
      if (reply.type === 'progress') return p.onProgress?.(reply.progress);
      this.pending.delete(reply.id);
      if (reply.type === 'error') p.reject(reply.code ? new P2Error(reply.code, reply.message) : new Error(reply.message));
      else p.resolve((reply.type === 'inspect' ? reply.report : reply.result) as never);
    };
    this.worker.onerror = (e) => this.failAll(new Error(`calibration worker failed: ${e.message || 'could not load the worker script'}`));
  }

  private request<T>(req: DistributiveOmit<WorkerRequest, 'id'>, onProgress?: (p: JobProgress) => void): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, onProgress });
      this.worker.postMessage({ ...req, id });
    });
  }

  /** Inputs, outputs (with shapes where they can be inferred), ops and parameters of a model. */
  inspect(model: Blob | Uint8Array, inputShape?: number[]): Promise<InspectReport> {
    return this.request({ type: 'inspect', model, inputShape });
  }

  /** Calibrate on encoded images (in this order); see calibrateImageSet. */
  calibrate(model: Blob | Uint8Array, images: EncodedImage[], job: ImageCalibrationJob, onProgress?: (p: JobProgress) => void): Promise<ImageCalibrationResult> {
    return this.request({ type: 'calibrate', model, images, job }, onProgress);
  }

  /** Stop the worker: pending requests fail with a "cancelled" error. */
  terminate(): void {
    this.worker.terminate();
    this.failAll(new Error('cancelled'));
  }

  private failAll(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}
