/** ConvTranspose (2-D, or 1-D as 2-D with height 1): strides, dilations, pads, output_padding,
 *  output_shape and auto_pad. */
import { attr, checkRank, input, opError, type OpModule } from './op.js';
import { MAX_SPATIAL, groupAttr, spatialAttrs } from './conv.js';
import { weightFixed, weightLayout } from './fixed.js';

export interface ConvTransposeParams {
  n: number; c: number; h: number; w: number;
  m: number; oh: number; ow: number;
  kh: number; kw: number; sh: number; sw: number; dh: number; dw: number;
  pt: number; pl: number;
  group: number; hasBias: boolean;
}

export const convTranspose: OpModule<ConvTransposeParams> = {
  ops: ['ConvTranspose'],
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
};

/** Fixed point: the TypeScript reference only (no kernel; rare in the CNNs p2calib targets). */
convTranspose.fixed = weightFixed<ConvTransposeParams>(convTranspose, ({ params: p, inputs }) => {
  const wt = inputs[1]!;
  const layout = weightLayout('ConvTranspose', wt.value!, false, p.group);
  const plane = p.oh * p.ow;
  return {
    macParams: { ...p, hasBias: false },
    weightShape: wt.shape,
    channels: p.m,
    weightChannel: layout.channelOf,
    outChannel: (i) => Math.floor(i / plane) % p.m,
    outLength: p.n * p.m * plane,
  };
});
