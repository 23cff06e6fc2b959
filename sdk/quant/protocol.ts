/**
 * Calibration workers behind messages: the protocol between the coordinator (sdk/calibration.ts)
 * and a worker thread, independent of the transport. Node worker_threads (sdk/node/pool.ts) and
 * browser Web Workers implement the same two small endpoint interfaces:
 *
 *   coordinator side                                   worker side
 *   const w = await RemoteWorker.start(endpoint,       serveCalibrationWorker(endpoint,
 *     { model, setup, loader });                         (config) => loaderFor(config));
 *   // w is a WorkerHandle
 *
 * Messages (structured-cloneable; large results are transferred, not copied):
 *
 *   to the worker                                          reply value
 *   { op: 'init', id, model: ModelParts, setup: WorkerSetup,
 *     kernels: WebAssembly.Module, loader: <config> }      { observed: number[] }
 *   { op: 'ranges', id, item, image, means, slot }         Ranged (pass 1; image: its index)
 *   { op: 'spec', id, spec: QuantSpec }                    undefined (fixed engine ready)
 *   { op: 'bias', version, biases: Float32Array }          none (measures of `version` wait for it)
 *   { op: 'measure', id, item, image, version, req, last }  Measured (image: its cache slot)
 *   { op: 'compare', id, req }                             Compared (the image measured last)
 *   { op: 'close', id }                                    WorkerTimings
 *
 *   from the worker: { id, value } or { id, error: { code?, message } }; id -1 reports an error
 *   outside any request (a bad 'bias' message), which fails the worker.
 *
 * In a browser, the two endpoints over a Web Worker are:
 *
 *   // inside the worker (a module worker importing this file)
 *   serveCalibrationWorker({ post: (m, t) => self.postMessage(m, { transfer: t ?? [] }),
 *     onMessage: (h) => { self.onmessage = (e) => h(e.data); } }, (config) => loaderFor(config));
 *   // coordinator side, for each `new Worker(url, { type: 'module' })` w
 *   { post: (m, t) => w.postMessage(m, { transfer: t ?? [] }), onMessage: (h) => { w.onmessage = (e) => h(e.data); },
 *     onFailure: (h) => { w.onerror = (e) => h(new Error(e.message)); }, terminate: () => w.terminate() }
 *
 * and runCalibration(model, { items, count, start: (setup) => Promise.all(ws.map((w) =>
 * RemoteWorker.start(endpointOf(w), { model: model.parts(), setup, loader }))) }, options).
 *
 * `item` is whatever the worker's loader takes: a file path for the Node pool (the worker decodes
 * and preprocesses it), a tensor, a Blob or an ImageBitmap in a browser. `loader` configures that
 * loader once (the Node pool sends its preprocessing spec). The coordinator sends 'init' and waits
 * for its reply before anything else, waits for 'spec' before any 'measure', and sends 'bias' for a
 * version only after every image of the batch before it has been answered.
 */
import { P2Error, type ErrorCode } from '../errors.js';
import { kernelModule, useKernelModule } from '../engine/wasm.js';
import { Model, type ModelParts } from '../model.js';
import type { QuantSpec } from '../device/spec.js';
import {
  CalibrationWorker, LocalWorker, type Compared, type CompareRequest, type Loader, type MeasureRequest, type Measured, type Ranged, type WorkerHandle,
  type WorkerSetup, type WorkerTimings,
} from './worker.js';

/** One side of a message channel (a worker's global scope, a Node parentPort, ...). */
export interface Endpoint {
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  onMessage(handler: (message: unknown) => void): void;
}

/** The coordinator's side of a worker: also hears when the worker fails, and can end it. */
export interface WorkerEndpoint extends Endpoint {
  onFailure(handler: (error: Error) => void): void;
  terminate(): Promise<void> | void;
}

export interface WorkerInit {
  model: ModelParts;
  setup: WorkerSetup;
  /** Configuration of the worker's loader (e.g. a preprocessing spec). */
  loader: unknown;
}

type Request =
  | { op: 'init'; id: number; model: ModelParts; setup: WorkerSetup; kernels: WebAssembly.Module; loader: unknown }
  | { op: 'ranges'; id: number; item: unknown; image: number; means: boolean; slot: number }
  | { op: 'spec'; id: number; spec: QuantSpec }
  | { op: 'bias'; version: number; biases: Float32Array }
  | { op: 'measure'; id: number; item: unknown; image: number; version: number; req: MeasureRequest; last: boolean }
  | { op: 'compare'; id: number; req: CompareRequest }
  | { op: 'close'; id: number };

interface Reply {
  id: number;
  value?: unknown;
  error?: { code?: ErrorCode; message: string };
}

function toError(e: { code?: ErrorCode; message: string }): Error {
  return e.code ? new P2Error(e.code, e.message) : new Error(`calibration worker: ${e.message}`);
}

/** The typed arrays of a reply (Ranged, Measured, Compared): transferred, not copied. */
function buffersOf(value: unknown): ArrayBuffer[] {
  if (value && typeof value === 'object') {
    return Object.values(value).flatMap((v) => (ArrayBuffer.isView(v) ? [v.buffer as ArrayBuffer] : []));
  }
  return [];
}

/** Answer the coordinator's requests with a LocalWorker whose loader `makeLoader` builds. */
export function serveCalibrationWorker<I>(endpoint: Endpoint, makeLoader: (config: unknown) => Loader<I>): void {
  let worker: LocalWorker<I> | undefined;
  const reply = (id: number, value: Promise<unknown>) => {
    value.then(
      (v) => endpoint.post({ id, value: v } satisfies Reply, buffersOf(v)),
      (e: Error) => endpoint.post({ id, error: { code: e instanceof P2Error ? e.code : undefined, message: e instanceof P2Error ? e.message : e.stack ?? e.message } } satisfies Reply),
    );
  };
  const ready = () => {
    if (!worker) throw new Error('calibration worker: not initialized');
    return worker;
  };
  endpoint.onMessage((message) => {
    const m = message as Request;
    switch (m.op) {
      case 'init':
        return reply(m.id, (async () => {
          useKernelModule(m.kernels);
          worker = new LocalWorker(await CalibrationWorker.create(Model.fromParts(m.model), m.setup), makeLoader(m.loader), m.setup.cacheBytes);
          return { observed: worker.observed };
        })());
      case 'ranges': return reply(m.id, ready().ranges(m.item as I, m.image, m.means, m.slot));
      case 'spec': return reply(m.id, ready().setSpec(m.spec));
      case 'measure': return reply(m.id, ready().measure(m.item as I, m.image, m.version, m.req, m.last));
      case 'compare': return reply(m.id, ready().compare(m.req));
      case 'close': return reply(m.id, ready().close());
      case 'bias':
        try {
          ready().setBiases(m.version, m.biases);
        } catch (e) {
          reply(-1, Promise.reject(e));
        }
    }
  });
}

/** A worker behind an endpoint, seen by the coordinator as a WorkerHandle. */
export class RemoteWorker<I> implements WorkerHandle<I> {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failed?: Error;
  observed: number[] = [];

  private constructor(private readonly endpoint: WorkerEndpoint) {
    endpoint.onMessage((message) => {
      const r = message as Reply;
      if (r.id === -1) return this.fail(toError(r.error!));
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(toError(r.error));
      else p.resolve(r.value);
    });
    endpoint.onFailure((e) => this.fail(e));
  }

  static async start<I>(endpoint: WorkerEndpoint, init: WorkerInit): Promise<RemoteWorker<I>> {
    const w = new RemoteWorker<I>(endpoint);
    const kernels = await kernelModule();
    const { observed } = (await w.request({ op: 'init', id: 0, ...init, kernels })) as { observed: number[] };
    w.observed = observed;
    return w;
  }

  ranges(item: I, image: number, means: boolean, slot: number): Promise<Ranged> {
    return this.request({ op: 'ranges', id: 0, item, image, means, slot }) as Promise<Ranged>;
  }

  async setSpec(spec: QuantSpec): Promise<void> {
    await this.request({ op: 'spec', id: 0, spec });
  }

  setBiases(version: number, biases: Float32Array): void {
    this.endpoint.post({ op: 'bias', version, biases } satisfies Request);
  }

  measure(item: I, image: number, version: number, req: MeasureRequest, last: boolean): Promise<Measured> {
    return this.request({ op: 'measure', id: 0, item, image, version, req, last }) as Promise<Measured>;
  }

  compare(req: CompareRequest): Promise<Compared> {
    return this.request({ op: 'compare', id: 0, req }) as Promise<Compared>;
  }

  async close(): Promise<WorkerTimings> {
    try {
      return (await this.request({ op: 'close', id: 0 })) as WorkerTimings;
    } finally {
      await this.abort();
    }
  }

  /** End the worker now, dropping its queued work. */
  async abort(): Promise<void> {
    this.fail(new Error('calibration worker: terminated'));
    await this.endpoint.terminate();
  }

  private request(m: Request & { id: number }): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    m.id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(m.id, { resolve, reject });
      this.endpoint.post(m);
    });
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** Start a worker behind each endpoint; if one fails to start, end the others and throw its error. */
export async function startWorkers<I>(endpoints: WorkerEndpoint[], init: WorkerInit): Promise<RemoteWorker<I>[]> {
  const started = await Promise.allSettled(endpoints.map((e) => RemoteWorker.start<I>(e, init)));
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(workers.map((w) => w.abort()));
    throw failed.reason;
  }
  return workers;
}
