/**
 * Text-line images for the built-in demo, rendered with sharp from SVG: varied words, fonts,
 * weights, sizes, colours and margins, upright or rotated 180 degrees — the two classes of
 * PP-OCR's text-direction classifier. Seeded, so every run renders the same images.
 */
import sharp from 'sharp';
import { fail } from '../../sdk/errors.js';
import { seededRandom } from '../../sdk/node/datasets.js';

const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not ' +
  'what all were we when your can said there use an each which she do how their if will up other about out many then them ' +
  'these so some her would make like him into time has look two more write go see number no way could people my than first ' +
  'water been call who oil its now find long down day did get come made may part over new sound take only little work know ' +
  'place year live me back give most very after thing our just name good sentence man think say great where help through ' +
  'much before line right too mean old any same tell boy follow came want show also around form three small set put end ' +
  'does another well large must big even such because turn here why ask went men read need land different home us move try ' +
  'kind hand picture again change off play spell air away animal house point page letter mother answer found study still ' +
  'learn should America world invoice total amount date paid receipt station north street market coffee price order ' +
  'Tokyo Paris Berlin Mumbai Lagos Lima Oslo Cairo Quebec Zurich'
).split(' ');

const FONTS = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono', 'DejaVu Sans Condensed', 'sans-serif', 'serif', 'monospace'];

export interface TextLine {
  png: Buffer;
  text: string;
  rotated: boolean;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function phrase(r: () => number): string {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const words: string[] = [];
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const kind = r();
    if (kind < 0.12) words.push(String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 4)))));
    else if (kind < 0.17) words.push(`${Math.floor(r() * 100)}.${String(Math.floor(r() * 100)).padStart(2, '0')}`);
    else {
      let w = pick(WORDS);
      if (r() < 0.25) w = w[0].toUpperCase() + w.slice(1);
      else if (r() < 0.06) w = w.toUpperCase();
      words.push(w);
    }
  }
  let s = words.join(' ');
  // A single short token is ambiguous upside down (e.g. "69", "ON"); real lines are longer.
  while (s.length < 5) s += ` ${pick(WORDS)}`;
  if (r() < 0.15) s += pick([':', '.', ',', '!', '?']);
  return s;
}

/** Render one line of text at a random style; rotated lines are turned by 180 degrees. */
async function render(r: () => number, rotated: boolean): Promise<TextLine> {
  const text = phrase(r);
  const size = 16 + Math.floor(r() * 28);
  const font = FONTS[Math.floor(r() * FONTS.length)];
  const weight = r() < 0.3 ? 'bold' : 'normal';
  const style = r() < 0.2 ? 'italic' : 'normal';
  const bg = 200 + Math.floor(r() * 56);
  const fg = Math.floor(r() * 90);
  const tint = () => Math.max(0, Math.min(255, Math.round((r() - 0.5) * 30)));
  const colour = (v: number) => `rgb(${Math.min(255, v + tint())},${Math.min(255, v + tint())},${Math.min(255, v + tint())})`;
  const width = Math.ceil(text.length * size * 0.75 + size * 2);
  const height = Math.ceil(size * 2);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="100%" height="100%" fill="${colour(bg)}"/>` +
    `<text x="${size / 2}" y="${size * 1.35}" font-family="${font}" font-size="${size}" font-weight="${weight}" font-style="${style}" fill="${colour(fg)}">${escapeXml(text)}</text></svg>`;
  // Trim the empty canvas to the ink, then margins like a text detector's crop.
  const inked = await sharp(Buffer.from(svg)).flatten().trim({ threshold: 40 }).toBuffer({ resolveWithObject: true }).catch(() => undefined);
  if (!inked || inked.info.width < 4 || inked.info.height < 4) {
    fail('IO', 'the demo could not render text: no usable font found (install fonts, e.g. apt-get install fonts-dejavu-core)');
  }
  const m = () => 1 + Math.floor(r() * size * 0.3);
  const background = { r: bg, g: bg, b: bg };
  let img = sharp(inked.data).extend({ top: m(), bottom: m(), left: m(), right: m(), background });
  if (rotated) img = sharp(await img.toBuffer()).rotate(180);
  return { png: await img.png().toBuffer(), text, rotated };
}

/** `count` lines from `seed`, alternating upright and rotated. */
export async function textLines(seed: number, count: number): Promise<TextLine[]> {
  const r = seededRandom(seed);
  const out: TextLine[] = [];
  for (let i = 0; i < count; i++) out.push(await render(r, i % 2 === 1));
  return out;
}
