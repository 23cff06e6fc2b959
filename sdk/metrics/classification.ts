/** Classification metrics: top-1/top-5 against labels, and top-1 agreement between two models. */

/** Indices of the k largest scores, best first (ties: the lower index first, deterministic). */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i];
    if (best.length === k && !(v > scores[best[k - 1]])) continue;
    let j = Math.min(best.length, k - 1);
    while (j > 0 && v > scores[best[j - 1]]) j--;
    best.splice(j, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

/** Running top-1/top-5 counts over images; results in percent. */
export class TopKAccuracy {
  private n = 0;
  private hit1 = 0;
  private hit5 = 0;

  /** One image: its class scores and its label (index into the scores). */
  add(scores: ArrayLike<number>, label: number): void {
    const top = topK(scores, 5);
    this.n++;
    if (top[0] === label) this.hit1++;
    if (top.includes(label)) this.hit5++;
  }

  get count(): number { return this.n; }

  result(): { top1: number; top5: number } {
    return { top1: (100 * this.hit1) / Math.max(1, this.n), top5: (100 * this.hit5) / Math.max(1, this.n) };
  }
}

/** Whether two models' score vectors give the same top-1 class (float-vs-fixed agreement). */
export function sameTop1(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return topK(a, 1)[0] === topK(b, 1)[0];
}
