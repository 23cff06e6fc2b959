/** ConvTranspose (2-D, or 1-D as 2-D with height 1): strides, dilations, pads, output_padding,
 *  output_shape and auto_pad. */
import type { TensorData } from '../graph/ir.js';
import { BY_WIDTH, attr, checkRank, input, kernelFn, opError, type KernelCall, type OpModule } from './op.js';
import type { KernelExports } from './kernel-api.js';
import { MAX_SPATIAL, conv, convKernel, groupAttr, spatialAttrs, type ConvParams } from './conv.js';
import { bytesOf, weightFixed } from './fixed.js';

export interface ConvTransposeParams {
  n: number; c: number; h: number; w: number;
  m: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; dh: number; dw: number;
  pt: number; pl: number;
  group: number; hasBias: boolean;
}

/**
 * One stride phase along one axis: the outputs o = r + s*q (q < count) are a stride-1 convolution
 * of the input, i = q - pad + t*dil for its taps t, tap t being kernel index taps[t] (kernel
 * indices in decreasing order: the transpose flips the kernel). No taps: the outputs are the bias.
 */
interface AxisPhase { r: number; count: number; taps: number[]; pad: number; dil: number }

function axisPhases(outLen: number, k: number, s: number, d: number, pad: number): AxisPhase[] {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const phases: AxisPhase[] = [];
  for (let r = 0; r < Math.min(s, outLen); r++) {
    // Output r + s*q meets kernel index kk at input q + (r + pad - kk*d) / s, when that divides.
    const taps: number[] = [];
    for (let kk = k - 1; kk >= 0; kk--) if ((((r + pad - kk * d) % s) + s) % s === 0) taps.push(kk);
    const count = Math.ceil((outLen - r) / s);
    phases.push(taps.length ? { r, count, taps, pad: -(r + pad - taps[0] * d) / s, dil: d / gcd(s, d) } : { r, count, taps, pad: 0, dil: 1 });
  }
  return phases;
}

/** A phase of the whole op: where its outputs go and the convolution that computes them. */
interface Phase { y: AxisPhase; x: AxisPhase; conv: ConvParams }

/**
 * ConvTranspose as sh x sw ordinary convolutions, one per output phase (the outputs that share
 * oy mod sh and ox mod sw), each with the part of the flipped kernel that reaches it: exactly the
 * op's multiply-adds, none on inserted zeros, and each output's whole sum in one convolution
 * (so the fixed-point accumulator is the reference's).
 */
function convPhases(p: ConvTransposeParams): Phase[] {
  const ys = axisPhases(p.oh, p.kh, p.sh, p.dh, p.pt), xs = axisPhases(p.ow, p.kw, p.sw, p.dw, p.pl);
  return ys.flatMap((y) => xs.map((x) => {
    const kh = Math.max(1, y.taps.length), kw = Math.max(1, x.taps.length);
    const conv: ConvParams = {
      n: p.n, c: p.c, h: p.h, w: p.w, m: p.m, oh: y.count, ow: x.count, kh, kw, sh: 1, sw: 1, dh: y.dil, dw: x.dil,
      pt: y.pad, pl: x.pad, pb: y.count + (kh - 1) * y.dil - p.h - y.pad, pr: x.count + (kw - 1) * x.dil - p.w - x.pad,
      group: p.group, hasBias: p.hasBias, rank: 4,
    };
    return { y, x, conv };
  }));
}

/** A phase's weights in Conv's layout [m][c/group][kh][kw] from ConvTranspose's [c][m/group][kh][kw]. */
function phaseWeights<T extends TensorData>(p: ConvTransposeParams, ph: Phase, wt: ArrayLike<number>, out: T): T {
  const cg = p.c / p.group, mg = p.m / p.group;
  const { kh, kw } = ph.conv;
  if (!ph.y.taps.length || !ph.x.taps.length) return out;
  for (let oc = 0; oc < p.m; oc++) {
    const g = Math.floor(oc / mg), j = oc % mg;
    for (let ic = 0; ic < cg; ic++) {
      const src = ((g * cg + ic) * mg + j) * p.kh * p.kw;
      for (let ty = 0; ty < kh; ty++) {
        for (let tx = 0; tx < kw; tx++) out[((oc * cg + ic) * kh + ty) * kw + tx] = wt[src + ph.y.taps[ty] * p.kw + ph.x.taps[tx]];
      }
    }
  }
  return out;
}

/** Run the phases' convolutions and put their outputs in place: a phase of a strided op writes a
 *  buffer that `scatter_phase_*` spreads over the output grid. */
function phaseCall(p: ConvTransposeParams, phases: Phase[], calls: KernelCall[], env: {
  exports: KernelExports; alloc(bytes: number): number;
}, bytes: 1 | 2 | 4): KernelCall {
  if (phases.length === 1 && p.sh === 1 && p.sw === 1) return calls[0];
  const planes = p.n * p.m;
  const buf = env.alloc(Math.max(...phases.map((ph) => planes * ph.conv.oh * ph.conv.ow)) * bytes);
  const scatter = kernelFn(env, BY_WIDTH.scatter[bytes]);
  return ([x], [y]) => {
    phases.forEach((ph, k) => {
      calls[k]([x], [buf]);
      scatter(buf, y + (ph.y.r * p.ow + ph.x.r) * bytes, planes, ph.conv.oh, ph.conv.ow, p.oh * p.ow, p.ow, p.sh, p.sw);
    });
  };
}

export const convTranspose: OpModule<ConvTransposeParams> = {
  ops: ['ConvTranspose'],
  fusesActivation: true,
  weights: {
    layout(p, w) {
      // [C_in, M/group, kh, kw]: output channel = group * (M/group) + j.
      const d = w.dims;
      const mg = d[1], inner = d[2] * d[3], cg = d[0] / p.group;
      return { channels: mg * p.group, channelOf: (i) => Math.floor(Math.floor(i / (mg * inner)) / cg) * mg + (Math.floor(i / inner) % mg) };
    },
    channelAxis: () => 1,
  },
  compile(ctx) {
    const x = input(ctx, 0);
    const wt = input(ctx, 1);
    const rank = x.shape.length;
    if (rank !== 3 && rank !== 4) opError(ctx.node, `input must be 3-D or 4-D, got [${x.shape}]`);
    checkRank(ctx, wt, rank, 'weight');
    const group = groupAttr(ctx);
    const s = spatialAttrs(ctx, rank - 2, attr.ints(ctx, 'kernel_shape') ?? wt.shape.slice(2));
    const [n, c] = x.shape;
    const h = rank === 4 ? x.shape[2] : 1;
    const w = x.shape[rank - 1];
    if (wt.shape[0] !== c) opError(ctx.node, `weight [${wt.shape}] does not match ${c} input channels`);
    const m = wt.shape[1] * group;
    const [kh, kw] = s.kernel;
    const [sh, sw] = s.strides;
    const [dh, dw] = s.dilations;
    const outPad = attr.ints(ctx, 'output_padding') ?? new Array(rank - 2).fill(0);
    if (outPad.length !== rank - 2 || outPad.some((d) => !Number.isInteger(d) || d < 0 || d > MAX_SPATIAL)) {
      opError(ctx.node, `output_padding must be ${rank - 2} integers from 0 to ${MAX_SPATIAL}, got [${outPad}]`);
    }
    const [oph, opw] = rank === 4 ? outPad : [0, outPad[0]];
    const full = [sh * (h - 1) + oph + (kh - 1) * dh + 1, sw * (w - 1) + opw + (kw - 1) * dw + 1];
    let outShape = attr.ints(ctx, 'output_shape');
    if (outShape && (outShape.length < rank - 2 || outShape.some((d) => !Number.isInteger(d) || d < 1))) {
      opError(ctx.node, `output_shape must end with ${rank - 2} positive integers, got [${outShape}]`);
    }
    if (outShape && rank === 3) outShape = [1, ...outShape];
    let pads = s.pads;
    let oh: number, ow: number;
    if (outShape || s.autoPad === 'SAME_UPPER' || s.autoPad === 'SAME_LOWER') {
      [oh, ow] = outShape ? outShape.slice(-2) : [h * sh, w * sw];
      const tot = [full[0] - oh, full[1] - ow];
      const lower = s.autoPad === 'SAME_LOWER';
      const begin = tot.map((t) => (lower ? t - Math.floor(t / 2) : Math.floor(t / 2)));
      pads = [begin[0], begin[1], tot[0] - begin[0], tot[1] - begin[1]];
    } else {
      oh = full[0] - pads[0] - pads[2];
      ow = full[1] - pads[1] - pads[3];
    }
    if (oh <= 0 || ow <= 0) opError(ctx.node, 'the output would be empty');
    const b = ctx.inputs[2];
    const shape = rank === 4 ? [n, m, oh, ow] : [n, m, ow];
    return {
      params: { n, c, h, w, m, oh, ow, kh, kw, sh, sw, dh, dw, pt: pads[0], pl: pads[1], group, hasBias: !!b },
      outputs: [{ dtype: x.dtype, shape }],
    };
  },
  reference(p, [x, wt, bias], [y]) {
    const cg = p.c / p.group;
    const mg = p.m / p.group;
    for (let b = 0; b < p.n; b++) {
      for (let oc = 0; oc < p.m; oc++) {
        const base = (b * p.m + oc) * p.oh * p.ow;
        y.fill(p.hasBias ? bias[oc] : 0, base, base + p.oh * p.ow);
      }
      for (let ic = 0; ic < p.c; ic++) {
        const g = Math.floor(ic / cg);
        for (let iy = 0; iy < p.h; iy++) {
          for (let ix = 0; ix < p.w; ix++) {
            const xv = x[((b * p.c + ic) * p.h + iy) * p.w + ix];
            for (let j = 0; j < mg; j++) {
              const oc = g * mg + j;
              for (let ky = 0; ky < p.kh; ky++) {
                const oy = iy * p.sh - p.pt + ky * p.dh;
                if (oy < 0 || oy >= p.oh) continue;
                for (let kx = 0; kx < p.kw; kx++) {
                  const ox = ix * p.sw - p.pl + kx * p.dw;
                  if (ox < 0 || ox >= p.ow) continue;
                  y[((b * p.m + oc) * p.oh + oy) * p.ow + ox] += xv * wt[((ic * mg + j) * p.kh + ky) * p.kw + kx];
                }
              }
            }
          }
        }
      }
    }
  },
  kernel(p, env) {
    const wt = env.inputs[1]?.value?.data;
    if (!wt || (p.hasBias && !env.inputs[2]?.value)) return undefined;
    const phases = convPhases(p);
    const calls = phases.map((ph) => {
      const dims = [p.m, p.c / p.group, ph.conv.kh, ph.conv.kw];
      const data = phaseWeights(p, ph, wt, new Float32Array(p.m * dims[1] * dims[2] * dims[3]));
      return conv.kernel!(ph.conv, { ...env, inputs: [env.inputs[0], { dtype: 'float32', shape: dims, value: { dtype: 'float32', dims, data } }, env.inputs[2]] });
    });
    if (calls.some((c) => !c)) return undefined;
    return phaseCall(p, phases, calls as KernelCall[], env, 4);
  },
};

/** Fixed point: the phases' convolutions run Conv's integer kernels, each output's accumulator
 *  whole in one of them. */
convTranspose.fixed = weightFixed<ConvTransposeParams>(convTranspose, ({ params: p, inputs }) => {
  const wt = inputs[1]!;
  const layout = convTranspose.weights!.layout(p, wt.value!);
  const plane = p.oh * p.ow;
  return {
    macParams: { ...p, hasBias: false },
    weightShape: wt.shape,
    channels: p.m,
    weightChannel: layout.channelOf,
    outChannel: (i) => Math.floor(i / plane) % p.m,
    outLength: p.n * p.m * plane,
  };
}, (f, env) => {
  const p = f.macParams;
  const phases = convPhases(p);
  const calls = phases.map((ph) => {
    const w = phaseWeights(p, ph, f.w, f.w instanceof Int8Array ? new Int8Array(p.m * (p.c / p.group) * ph.conv.kh * ph.conv.kw)
      : new Int16Array(p.m * (p.c / p.group) * ph.conv.kh * ph.conv.kw));
    return convKernel({ ...f, macParams: ph.conv, w }, env);
  });
  return phaseCall(p, phases, calls, env, bytesOf(f.yq) as 1 | 2);
});
