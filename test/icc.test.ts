/** Embedded colour profiles (sdk/data/icc.ts): found in JPEG, PNG and WebP, and converted to sRGB
 *  within one level of libvips (lcms2), the conversion the shared models' baselines went through. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { embeddedProfile, toSrgb } from '../sdk/data/icc.js';
import type { RgbImage } from '../sdk/data/resize.js';
import { decodeImage } from '../sdk/node/images.js';
import { ASSETS, HAVE_ASSETS, rng } from './helpers.js';

const W = 61, H = 37;
const noise = (seed: number) => {
  const r = rng(seed);
  return Uint8Array.from({ length: W * H * 3 }, () => Math.floor(r(0, 256)));
};
const raw = { raw: { width: W, height: H, channels: 3 as const } };

/** What libvips makes of the bytes: its own profile conversion to sRGB. */
async function viaLibvips(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await sharp(bytes).toColourspace('srgb').raw().toBuffer());
}
/** The pixels as stored, no conversion. */
async function stored(bytes: Uint8Array): Promise<RgbImage> {
  const { data, info } = await sharp(bytes, { ignoreIcc: true }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}
const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('the embedded profile is found in JPEG, PNG (compressed iCCP) and WebP, byte for byte as libvips reads it', async () => {
  const px = noise(1);
  for (const [format, encode] of [
    ['jpeg', (s: Sharp) => s.jpeg({ quality: 95 })],
    ['png', (s: Sharp) => s.png()],
    ['webp', (s: Sharp) => s.webp({ lossless: true })],
  ] as const) {
    const bytes = await encode(sharp(px, raw).withIccProfile('p3')).toBuffer();
    const found = await embeddedProfile(bytes);
    const { icc } = await sharp(bytes).metadata();
    assert.ok(found && icc, format);
    assert.equal(Buffer.from(found!), icc, format);
    assert.is(await embeddedProfile(await encode(sharp(px, raw)).toBuffer()), undefined, `${format} without a profile`);
  }
  assert.is(await embeddedProfile(new Uint8Array([1, 2, 3])), undefined);
});

test('corrupt or hostile containers give no profile, quickly: huge chunk lengths, truncation, an iCCP inflating to 16 MiB', async () => {
  const webp = new Uint8Array(40);
  webp.set(Buffer.from('RIFF\0\0\0\0WEBPVP8X'), 0);
  webp.set([0xff, 0xff, 0xff, 0xff], 16); // a chunk length of 2^32 - 1
  assert.is(await embeddedProfile(webp), undefined);
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe2, 0x00, 0x02, 0xff, 0xe2, 0xff, 0xff, 0x49]);
  assert.is(await embeddedProfile(jpeg), undefined);
  // A valid PNG whose iCCP chunk inflates to 16 MiB with an RGB profile's header.
  const png = await sharp(noise(5), raw).png().toBuffer();
  const big = Buffer.alloc(16 << 20);
  big.write('RGB ', 16, 'latin1');
  const bomb = deflateSync(big);
  const body = Buffer.concat([Buffer.from('iCCPbomb\0\0'), bomb]);
  const chunk = Buffer.concat([Buffer.alloc(4), body, Buffer.alloc(4)]);
  chunk.writeUInt32BE(body.length - 4, 0);
  const hostile = Buffer.concat([png.subarray(0, 33), chunk, png.subarray(33)]);
  assert.is(await embeddedProfile(hostile), undefined);
});

test('seeded mutations of files with profiles: finding and applying a profile never throws', async () => {
  const r = rng(7);
  const small: RgbImage = { width: 4, height: 2, data: noise(6).subarray(0, 24) };
  const files = await Promise.all([
    sharp(noise(6), raw).withIccProfile('p3').jpeg().toBuffer(),
    sharp(noise(6), raw).withIccProfile('p3').png().toBuffer(),
    sharp(noise(6), raw).withIccProfile('p3').webp().toBuffer(),
  ]);
  for (let i = 0; i < 3000; i++) {
    const src = files[i % 3];
    const b = Uint8Array.from(src.subarray(0, Math.floor(r(0.05, 1) * src.length)));
    for (let k = 0; k < 1 + Math.floor(r(0, 8)); k++) b[Math.floor(r(0, Math.min(b.length, 4096)))] = Math.floor(r(0, 256));
    const profile = await embeddedProfile(b);
    const out = toSrgb(small, profile);
    assert.is(out.data.length, small.data.length);
  }
});

test('Display P3 pixels convert to sRGB within one level of libvips; sRGB profiles leave pixels as stored', async () => {
  for (const seed of [2, 3]) {
    const bytes = await sharp(noise(seed), raw).withIccProfile('p3').png().toBuffer();
    const img = await stored(bytes);
    const ours = toSrgb(img, await embeddedProfile(bytes));
    assert.ok(ours !== img, 'a P3 profile is converted');
    assert.ok(maxDiff(ours.data, await viaLibvips(bytes)) <= 1, `seed ${seed}: ${maxDiff(ours.data, await viaLibvips(bytes))}`);
    // P3 is wider than sRGB: the stored values are not the sRGB ones.
    assert.ok(maxDiff(img.data, ours.data) > 5);
  }
  const srgb = await sharp(noise(4), raw).withIccProfile('srgb').png().toBuffer();
  const img = await stored(srgb);
  assert.is(toSrgb(img, await embeddedProfile(srgb)), img);
  assert.is(toSrgb(img, new Uint8Array(200)), img, 'not a profile this handles: pixels as stored');
});

test('decodeImage applies the profile itself: every photo with a profile in the shared assets stays within one level of libvips', async () => {
  if (!HAVE_ASSETS) {
    console.log('  (skipping: ../shared/assets not found)');
    return;
  }
  // Colour photos with sRGB, Adobe RGB, camera and display profiles; grayscale ones with gray
  // profiles (converted) and with an RGB profile (left as stored, as libvips leaves them).
  let photos = 0, converted = 0;
  for (const dir of ['images/imagenet-sample', 'images/coco128-val/images'].map((d) => join(ASSETS, d))) {
    for (const f of readdirSync(dir).sort()) {
      const bytes = readFileSync(join(dir, f));
      if (!(await sharp(bytes).metadata()).icc) continue;
      photos++;
      const ours = await decodeImage(bytes);
      if (maxDiff(ours.data, (await stored(bytes)).data) > 0) converted++;
      assert.ok(maxDiff(ours.data, await viaLibvips(bytes)) <= 1, f);
    }
  }
  console.log(`  ${photos} photos with profiles, ${converted} converted, all within one level of libvips`);
  assert.ok(photos >= 200 && converted >= 50, `${photos} photos, ${converted} converted`);
});

test.run();
