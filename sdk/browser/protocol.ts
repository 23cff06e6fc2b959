/** Messages between the page (browser/client.ts) and the calibration Web Worker (browser/worker.ts).
 *  Every reply carries the id of the request it answers. (The same script also serves as a
 *  calibration worker of the pool, browser/pool.ts, which speaks sdk/quant/protocol.ts.) */
import type { ErrorCode } from '../errors.js';
import type { ImageCalibrationJob, ImageCalibrationResult, JobProgress } from '../image-calibration.js';
import type { InspectReport } from '../inspect.js';

/** Encoded images (Files, Blobs or their bytes); structured-cloned to the workers. */
export type EncodedImage = Blob | ArrayBuffer | Uint8Array;

export type WorkerRequest =
  | { id: number; type: 'inspect'; model: Blob | Uint8Array; inputShape?: number[] }
  | { id: number; type: 'calibrate'; model: Blob | Uint8Array; images: EncodedImage[]; job: ImageCalibrationJob };

export type WorkerReply =
  | { id: number; type: 'progress'; progress: JobProgress }
  | { id: number; type: 'inspect'; report: InspectReport }
  | { id: number; type: 'result'; result: ImageCalibrationResult }
  | { id: number; type: 'error'; code?: ErrorCode; message: string };
