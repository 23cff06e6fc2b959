/**
 * The SDK's Web Worker script (bundled as dist/browser/p2calib-worker.js), in one of two roles set
 * by the messages it gets: the page's calibration worker (browser/protocol.ts: calibration,
 * histograms and agreement run here so that the page stays responsive; progress is posted as it
 * goes), or, started by that one, a calibration worker of its pool (quant/protocol.ts), which
 * decodes and preprocesses the images it is sent.
 */
import type { SizedSpec } from '../data/preprocess.js';
import { P2Error } from '../errors.js';
import { calibrateImageSet } from '../image-calibration.js';
import { inspectModel } from '../inspect.js';
import { serveCalibrationWorker } from '../quant/protocol.js';
import { decodeImage, loadImageTensor } from './images.js';
import { startWebWorkers } from './pool.js';
import type { EncodedImage, WorkerReply, WorkerRequest } from './protocol.js';

/** The dedicated worker's global scope, typed only as far as it is used (the DOM lib is in scope). */
const scope = self as unknown as {
  location: { href: string };
  onmessage: ((e: MessageEvent<WorkerRequest | { op: string }>) => void) | null;
  postMessage(message: unknown, options?: { transfer: Transferable[] }): void;
};

const reply = (message: WorkerReply, transfer: Transferable[] = []) => scope.postMessage(message, { transfer });
const bytes = async (model: Blob | Uint8Array) => (model instanceof Blob ? new Uint8Array(await model.arrayBuffer()) : model);

async function handle(req: WorkerRequest): Promise<void> {
  if (req.type === 'inspect') {
    reply({ id: req.id, type: 'inspect', report: await inspectModel(await bytes(req.model), { inputShape: req.inputShape }) });
    return;
  }
  const result = await calibrateImageSet(await bytes(req.model), req.images, req.job, {
    decode: (image) => decodeImage(image),
    // The pool runs this same script.
    startWorkers: (count, init) => startWebWorkers(count, init, scope.location.href),
    onProgress: (progress) => reply({ id: req.id, type: 'progress', progress }),
  });
  // Copies own their buffers (small encodings may sit in a shared pool slab), so they can move.
  const [qdq, calibrated] = [result.qdq.slice(), result.calibrated.slice()];
  reply({ id: req.id, type: 'result', result: { ...result, qdq, calibrated } }, [qdq.buffer, calibrated.buffer]);
}

let serve: ((message: unknown) => void) | undefined;
serveCalibrationWorker(
  { post: (message, transfer) => scope.postMessage(message, { transfer: transfer ?? [] }), onMessage: (handler) => { serve = handler; } },
  (spec) => (image: EncodedImage) => loadImageTensor(image, spec as SizedSpec),
);

scope.onmessage = (e) => {
  const m = e.data;
  if ('op' in m) return serve!(m);
  handle(m).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    reply({ id: m.id, type: 'error', code: err instanceof P2Error ? err.code : undefined, message });
  });
};
