/** Float vs fixed-point error per tensor: SQNR (dB) and cosine similarity, accumulated over
 *  images (sums of squares and products, so the result does not depend on batching). */
import { sqnrDb } from '../util/math.js';

export class ErrorStats {
  private signal = 0;
  private noise = 0;
  private dot = 0;
  private normB = 0;

  /** `ref` is the float result, `test` the fixed-point one (dequantized). */
  add(ref: ArrayLike<number>, test: ArrayLike<number>): void {
    if (ref.length !== test.length) throw new RangeError(`length ${ref.length} vs ${test.length}`);
    for (let i = 0; i < ref.length; i++) {
      const a = ref[i], b = test[i], d = a - b;
      this.signal += a * a;
      this.noise += d * d;
      this.dot += a * b;
      this.normB += b * b;
    }
  }

  /** 10*log10(sum ref^2 / sum (ref-test)^2); Infinity when identical. */
  sqnr(): number {
    return sqnrDb(this.signal, this.noise);
  }

  cosine(): number {
    const d = Math.sqrt(this.signal * this.normB);
    return d === 0 ? (this.signal === this.normB ? 1 : 0) : this.dot / d;
  }
}
