/**
 * The calibration Web Worker (bundled as dist/browser/p2calib-worker.js): calibration, histograms
 * and agreement run here so that the page stays responsive; progress is posted as it goes.
 */
import { decodeImage } from './images.js';
import { P2Error } from '../errors.js';
import { calibrateImageSet } from '../image-calibration.js';
import { inspectModel } from '../inspect.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

/** The dedicated worker's global scope, typed only as far as it is used (the DOM lib is in scope). */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
};

const bytes = async (model: Blob | Uint8Array) => (model instanceof Blob ? new Uint8Array(await model.arrayBuffer()) : model);

async function handle(req: WorkerRequest): Promise<void> {
  if (req.type === 'inspect') {
    scope.postMessage({ id: req.id, type: 'inspect', report: await inspectModel(await bytes(req.model), { inputShape: req.inputShape }) });
    return;
  }
  const result = await calibrateImageSet(await bytes(req.model), req.images, req.job, (image, i) => decodeImage(image, req.names[i]), (progress) =>
    scope.postMessage({ id: req.id, type: 'progress', progress }),
  );
  // Copies own their buffers (small encodings may sit in a shared pool slab), so they can move.
  const [qdq, calibrated] = [result.qdq.slice(), result.calibrated.slice()];
  scope.postMessage({ id: req.id, type: 'result', result: { ...result, qdq, calibrated } }, [qdq.buffer, calibrated.buffer]);
}

scope.onmessage = (e) => {
  const req = e.data;
  handle(req).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    scope.postMessage({ id: req.id, type: 'error', code: err instanceof P2Error ? err.code : undefined, message });
  });
};
