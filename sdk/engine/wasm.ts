/**
 * The WASM kernel module and the memory of one instance. JS owns the instance's linear memory:
 * a bump allocator hands out long-lived regions (packed weights, the activation arena) above
 * __heap_base; kernels receive byte offsets and never allocate.
 */
import { fail } from '../errors.js';
import type { KernelExports } from '../ops/kernel-api.js';
import { kernelFn, type KernelName } from '../ops/op.js';
import { KERNELS_WASM_BASE64 } from './kernels.wasm.js';

let compiled: Promise<WebAssembly.Module> | undefined;

function kernelBytes(): Uint8Array<ArrayBuffer> {
  const bin = atob(KERNELS_WASM_BASE64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** Compiled once per thread and shared by every instance. */
export function kernelModule(): Promise<WebAssembly.Module> {
  compiled ??= WebAssembly.compile(kernelBytes());
  return compiled;
}

/** Use a module compiled in another thread (WebAssembly.Module can be posted to workers) instead
 *  of compiling the embedded bytes again. */
export function useKernelModule(module: WebAssembly.Module): void {
  compiled = Promise.resolve(module);
}

const PAGE = 65536;
/** WASM32 address space, less a margin. */
const MAX_BYTES = 4 * 1024 * 1024 * 1024 - PAGE * 16;

export class WasmRuntime {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  private top: number;

  private constructor(instance: WebAssembly.Instance) {
    this.exports = instance.exports as unknown as KernelExports;
    this.memory = this.exports.memory;
    this.top = this.exports.heap_base();
  }

  static async create(): Promise<WasmRuntime> {
    const instance = await WebAssembly.instantiate(await kernelModule(), {
      env: { abort: () => { throw new Error('kernel abort'); } },
    });
    return new WasmRuntime(instance);
  }

  kernel<K extends KernelName>(name: K): KernelExports[K] {
    return kernelFn(this, name);
  }

  /** Reserve zero-filled, 16-byte aligned memory for the instance's lifetime. */
  alloc(bytes: number, what = 'buffer'): number {
    const ptr = (this.top + 15) & ~15;
    const end = ptr + bytes + 64; // kernels may read a few vectors past the end
    if (end > MAX_BYTES) fail('TOO_LARGE', `${what} needs ${bytes} bytes; WASM memory is limited to 4 GiB`);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        fail('TOO_LARGE', `${what} needs ${bytes} bytes; the WASM memory could not grow to ${end} bytes`);
      }
    }
    this.top = end;
    return ptr;
  }

  /** Bytes in use so far. */
  get used(): number {
    return this.top;
  }

  /**
   * Hand out again, zero-filled, the memory allocated since `used` was `mark`: for an engine
   * replaced by another (a calibration worker's fixed-point plan, once per spec tried), whose
   * regions nothing reads any more.
   */
  release(mark: number): void {
    if (mark > this.top) throw new Error(`wasm release: mark ${mark} is above the top ${this.top}`);
    this.bytes(mark, this.top - mark).fill(0);
    this.top = mark;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  bytes(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length);
  }
}
