/** loadModel and the Model it returns: the prepared graph plus a float engine per input shape. */
import { fail } from './errors.js';
import { FloatPlan, type FloatPlanOptions } from './engine/float.js';
import { WasmRuntime } from './engine/wasm.js';
import { inferGraph, resolveInputShapes, type Inferred, type InputShapes } from './passes/infer.js';
import { cloneGraph, numel, type DType, type Graph } from './graph/ir.js';
import {
  addPixelInput, cancelTransposes, channelAffineLayers, foldBatchNorm, foldBiasAdds, foldConstants, foldScaleMuls, recognizeHardActivations, removeIdentities,
  type PixelAffine,
} from './passes/transforms.js';
import { equalizeLayers, type EqualizeOptions } from './passes/equalize.js';
import { decodeModel, type DecodeOptions } from './onnx/decode.js';
import { check, checkBatch, checkFeeds, isRecord, options as optionsOf } from './guard.js';
import { checkFoldedWeights, checkParameters } from './passes/validate.js';

export interface LoadOptions extends DecodeOptions {
  /** Input shape(s): one array for single-input models, or by input name. Required where the
   *  model declares dynamic dims. */
  inputShape?: InputShapes;
}

export interface TensorInfo {
  name: string;
  shape: number[];
  dtype: DType;
}

export type Feeds = Record<string, Float32Array> | Float32Array;

/** What rebuilds a Model in another thread: plain data (structured-cloneable), the decoded graph
 *  rather than the file's bytes so that external data and pixel-input layers come along. */
export interface ModelParts {
  source: Graph;
  shapes: Map<string, number[]>;
  pixelInput?: PixelAffine;
  sha256?: string;
  equalize?: EqualizeOptions;
}

/**
 * Make a decoded graph ready for execution at concrete input shapes: fold constants (the
 * Shape/Gather/Concat chains behind Reshape), drop Identity/Dropout, fold BatchNormalization into
 * Conv/Gemm, constant per-channel Muls and bias Adds into Conv/ConvTranspose/MatMul, recognise
 * hard-sigmoid/hard-swish, give the remaining channel-wise constant affine ops the device's BatchNorm
 * form (a depthwise 1x1 Conv), optionally equalize consecutive layers (passes/equalize.ts), and analyse
 * the result.
 */
export function prepareGraph(decoded: Graph, shapes: Map<string, number[]>, equalize?: EqualizeOptions): { graph: Graph; inferred: Inferred } {
  const graph = cloneGraph(decoded);
  const first = inferGraph(graph, shapes);
  checkParameters(graph, (name) => first.values.get(name)?.value);
  foldConstants(graph, first);
  removeIdentities(graph);
  cancelTransposes(graph);
  const bnStats = foldBatchNorm(graph);
  foldScaleMuls(graph, (name) => first.values.get(name)?.shape);
  foldBiasAdds(graph, (name) => first.values.get(name)?.shape);
  recognizeHardActivations(graph);
  channelAffineLayers(graph, (name) => first.values.get(name)?.shape);
  if (equalize) equalizeLayers(graph, equalize, bnStats);
  const inferred = inferGraph(graph, shapes);
  checkFoldedWeights(graph, inferred);
  return { graph, inferred };
}

export class Model {
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  private readonly plans = new Map<string, Promise<{ plan: FloatPlan; rt: WasmRuntime }>>();

  constructor(
    /** The graph as read from the file. */
    readonly source: Graph,
    /** The prepared graph at the load-time input shapes. */
    readonly graph: Graph,
    readonly inferred: Inferred,
    private readonly shapes: Map<string, number[]>,
    /** Set when the model takes raw 0..255 pixels (see withPixelInput). */
    readonly pixelInput?: PixelAffine,
    /** SHA-256 (hex) of the ONNX file it was loaded from: what a calibration records to name its
     *  model (a pixel-input model keeps its source's). */
    readonly sha256?: string,
    /** Set when consecutive layers are equalized (see withEqualization). */
    readonly equalize?: EqualizeOptions,
  ) {
    const info = (name: string, dtype: DType) => ({ name, shape: inferred.values.get(name)!.shape, dtype });
    this.inputs = graph.inputs.map((v) => info(v.name, v.dtype));
    this.outputs = graph.outputs.map((v) => info(v.name, v.dtype));
  }

  /**
   * The same model taking raw 0..255 pixels: the preprocessing's per-channel affine map becomes
   * its first layer, so that the device quantizes the input losslessly as uint8 (DESIGN.md §4).
   */
  withPixelInput(affine: PixelAffine): Model {
    const numbers = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isFinite(x));
    check(isRecord(affine) && Number.isFinite(affine.scale) && numbers(affine.mean) && numbers(affine.std) && (affine.layout === 'NCHW' || affine.layout === 'NHWC'),
      'withPixelInput', 'give a pixel affine map {scale, mean: number[], std: number[], layout: "NCHW" | "NHWC"} (pixelAffine(spec))');
    if (this.pixelInput) fail('BAD_OPTION', 'the model already takes pixels');
    if (this.inputs.length !== 1) fail('BAD_OPTION', 'pixel input needs a single-input model');
    const source = cloneGraph(this.source);
    addPixelInput(source, affine);
    return Model.fromParts({ ...this.parts(), source, pixelInput: affine });
  }

  /**
   * The same model with consecutive weight layers equalized (cross-layer equalization,
   * passes/equalize.ts): the same function (with `clips`, Clip(0, hi) between equalized layers
   * becomes Relu), weights easier to quantize per tensor. Node and tensor names do not change.
   */
  withEqualization(options: EqualizeOptions): Model {
    if (this.equalize) fail('BAD_OPTION', 'the model is already equalized');
    return Model.fromParts({ ...this.parts(), equalize: options });
  }

  parts(): ModelParts {
    return { source: this.source, shapes: this.shapes, pixelInput: this.pixelInput, sha256: this.sha256, equalize: this.equalize };
  }

  static fromParts({ source, shapes, pixelInput, sha256, equalize }: ModelParts): Model {
    const { graph, inferred } = prepareGraph(source, shapes, equalize);
    return new Model(source, graph, inferred, shapes, pixelInput, sha256, equalize);
  }

  /** Normalize feeds to a record and find the batch size they carry. */
  feedsToRecord(feeds: Feeds): { record: Record<string, Float32Array>; batch: number } {
    checkFeeds(feeds, 'running a model');
    const record = feeds instanceof Float32Array ? this.singleInput(feeds) : feeds;
    let batch = 0;
    for (const inp of this.inputs) {
      const data = record[inp.name];
      if (!data) fail('BAD_INPUT', `missing input "${inp.name}" (the model's inputs are ${this.inputs.map((i) => `"${i.name}"`).join(', ')})`);
      const perSample = numel(inp.shape.slice(1));
      const b = data.length / perSample;
      if (!Number.isInteger(b) || b < 1) {
        fail('BAD_INPUT', `input "${inp.name}" has ${data.length} values, not a multiple of the ${perSample} one sample of shape [${inp.shape}] needs`);
      }
      if (batch && b !== batch) fail('BAD_INPUT', 'inputs carry different batch sizes');
      batch = b;
    }
    return { record, batch };
  }

  private singleInput(data: Float32Array): Record<string, Float32Array> {
    if (this.inputs.length !== 1) fail('BAD_INPUT', `the model has ${this.inputs.length} inputs; pass a record of feeds by name`);
    return { [this.inputs[0].name]: data };
  }

  /** Shapes at a given batch size (the first dim of every input). */
  shapesForBatch(batch: number): Map<string, number[]> {
    return new Map([...this.shapes].map(([k, s]) => [k, [batch, ...s.slice(1)]]));
  }

  /** The analysed graph at a given batch size. */
  prepared(batch: number): { graph: Graph; inferred: Inferred } {
    if (batch === this.inputs[0]?.shape[0]) return { graph: this.graph, inferred: this.inferred };
    return prepareGraph(this.source, this.shapesForBatch(batch), this.equalize);
  }

  /** A float execution plan for a batch size, on its own WASM instance. */
  floatPlan(batch: number, options: FloatPlanOptions = {}): Promise<{ plan: FloatPlan; rt: WasmRuntime }> {
    checkBatch(batch, this, 'floatPlan');
    const key = JSON.stringify([batch, [...(options.keep ?? [])], [...(options.observe ?? [])], !!options.referenceOnly]);
    let p = this.plans.get(key);
    if (!p) {
      p = (async () => {
        const { graph, inferred } = this.prepared(batch);
        const rt = await WasmRuntime.create();
        return { plan: new FloatPlan(rt, graph, inferred, options), rt };
      })();
      this.plans.set(key, p);
      p.catch(() => this.plans.delete(key));
    }
    return p;
  }

  /** Float inference. Feeds may carry any batch size. */
  async run(feeds: Feeds): Promise<Record<string, Float32Array>> {
    const { record, batch } = this.feedsToRecord(feeds);
    const { plan } = await this.floatPlan(batch);
    return plan.run(record);
  }

  /** Bytes of the activation arena at the load-time shapes. */
  async arenaBytes(): Promise<number> {
    return (await this.floatPlan(this.inputs[0]?.shape[0] ?? 1)).plan.arenaBytes;
  }
}

export async function loadModel(bytes: Uint8Array, given?: LoadOptions): Promise<Model> {
  const options = optionsOf(given, 'loadModel');
  const source = decodeModel(bytes, options);
  const shapes = resolveInputShapes(source, options.inputShape);
  const { graph, inferred } = prepareGraph(source, shapes);
  return new Model(source, graph, inferred, shapes, undefined, await sha256Hex(bytes));
}

/** SHA-256 of bytes as hex, with the Web Crypto API that Node and browsers share. */
export async function sha256Hex(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}
