/**
 * TIDL's quantization parameters file: it parses as protobuf text format against the schema of
 * edgeai-tidl-tools' docs/quantization_proto.md (protobufjs), meets that document's requirements
 * for bypassing calibration, and gives back every range (as p2calib's exact scale) and every bias.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from '../sdk/index.js';
import { fromTextFormat, tidlQuantParamsType } from '../sdk/export/tidl-proto.js';
import { rng, smallCnn } from './helpers.js';

const FLT_MAX = 3.4028234663852886e38;

async function calibration(options: sdk.CalibrateOptions) {
  const m = await sdk.loadModel(smallCnn());
  const r = rng(2);
  return sdk.calibrate(m, Array.from({ length: 3 }, () => Float32Array.from({ length: 3 * 12 * 12 }, () => r(-1, 2))), options);
}

for (const options of [{ preset: 'advanced' }, { preset: 'advanced-dw', bits: 16 }] as sdk.CalibrateOptions[]) {
  test(`TIDL quantization parameters (${options.preset}, ${options.bits ?? 8}-bit): the documented schema parses them and every range and bias comes back`, async () => {
    const cal = await calibration(options);
    const text = cal.toTidlQuantParams();
    const type = tidlQuantParamsType();
    const parsed = fromTextFormat(type, text);
    // Through protobufjs' own checks and binary encoding as well.
    const msg = type.toObject(type.decode(type.encode(type.fromObject(parsed)).finish()), { enums: String, defaults: false }) as {
      num_layers: number; quant_type: string; calib_type: string;
      layers: { layer_name: string; layer_type: string; bit_depth: number; outputs: any[]; weights?: any[]; bias?: any[] }[];
    };
    assert.is(msg.num_layers, msg.layers.length);
    assert.is(msg.quant_type, 'SYMMETRIC');
    assert.is(msg.calib_type, options.preset === 'advanced-dw' ? 'PERCHANNEL' : 'PERTENSOR');
    const t = cal.table;
    assert.equal(msg.layers.map((l) => l.layer_name).sort(), Object.keys(t.tensors).sort(), 'one layer per stored tensor');
    for (const l of msg.layers) {
      const e = t.tensors[l.layer_name];
      const [o] = l.outputs;
      // The documented requirements: real ranges, inside (FLT_MIN, FLT_MAX).
      assert.ok(o.min > -FLT_MAX && o.max < FLT_MAX && o.max > o.min, `${l.layer_name}: range`);
      // The range fills the format's integer range exactly: TIDL's power-of-2 scale from it is ours.
      const levels = e.signed ? 2 ** (e.bits - 1) - 1 : 2 ** e.bits - 1;
      assert.is(Math.fround(levels * 2 ** -e.scaleLog2), o.max, `${l.layer_name}: max`);
      assert.is(Math.log2(levels / o.max) <= e.scaleLog2 && Math.log2((levels + 1) / o.max) >= e.scaleLog2, true);
      assert.is(o.min, e.signed ? -o.max : 0);
      assert.equal(o.scale, [e.scale]);
      assert.is(l.bit_depth, e.bits / 8);
      assert.is(o.element_type, (e.bits === 8 ? 0 : 2) + (e.signed ? 1 : 0));
    }
    const byName = new Map(msg.layers.map((l) => [l.layer_name, l]));
    for (const [name, layer] of Object.entries(t.layers)) {
      const l = byName.get(layer.output)!;
      assert.ok(l, `layer ${name} has an entry`);
      assert.match(l.layer_type, /^TIDL_(Convolution|InnerProduct)Layer$/);
      const [b] = l.bias!;
      assert.is(b.size, layer.bias.length);
      assert.is(b.value.length, b.size, 'as many bias values as its size (the documented requirement)');
      assert.equal(b.value, layer.bias, `${name}: every bias round-trips`);
      const [w] = l.weights!;
      assert.equal(w.scale, layer.weightScale);
      assert.is(w.size, layer.weightScale.length);
    }
    assert.ok(msg.layers.some((l) => l.layer_type === 'TIDL_DataLayer'));
    assert.ok(msg.layers.some((l) => l.layer_type === 'TIDL_EltWiseLayer'));
  });
}

test('TIDL quantization parameters reader: unknown fields, bad values and braces are one-line errors', () => {
  const type = tidlQuantParamsType();
  for (const [text, want] of [
    ['num_layers: 1\nlayres {\n}\n', /line 2: "layres" is not a field/],
    ['num_layers: x\n', /"x" is not a number/],
    ['quant_type: SIMETRIC\n', /not a TidlQuantType/],
    ['layers {\n  layer_name: "a"\n', /missing "}"/],
    ['layers {\n  outputs { min: 0 max: 1 }\n}\n}\n', /unexpected "}"/],
  ] as const) {
    try {
      fromTextFormat(type, text);
      assert.unreachable(text);
    } catch (e) {
      assert.instance(e, sdk.P2Error);
      assert.match((e as Error).message, want);
    }
  }
  // The example of the TIDL document reads as written.
  const example = fromTextFormat(type, `num_layers: 1\nquant_type: SYMMETRIC\ncalib_type: PERTENSOR\nlayers {\n  layer_name: "conv1a"\n  layer_type: "TIDL_ConvolutionLayer"\n  bit_depth: 1\n  outputs {\n    min: 0\n    max: 4.09663105\n    size: 1\n    element_type: 0\n    scale: 56.387794494628906\n    zero_point: 0\n  }\n  bias {\n    min: -0.5\n    max: 0.5\n    size: 2\n    value: -0.5\n    value: 0.5\n  }\n}\n`);
  assert.equal((example.layers as any[])[0].bias[0].value, [-0.5, 0.5]);
});

test.run();
