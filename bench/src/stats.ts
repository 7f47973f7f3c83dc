/** Order statistics over samples. Sorting a copy is fine: a run yields at most a few hundred thousand. */

/** The p-th percentile (0–100) by the nearest-rank method; NaN when there are no samples. */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN;
}

/** Several percentiles of the same samples, sorting once. */
export function percentiles<P extends number>(samples: ArrayLike<number>, ps: readonly P[]): Record<P, number> {
  const sorted = Float64Array.from(samples).sort();
  const out = {} as Record<P, number>;
  for (const p of ps) {
    const rank = Math.ceil((p / 100) * sorted.length);
    out[p] = sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN);
  }
  return out;
}

/** The median; the mean of the middle two for an even count. NaN values are left out. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? NaN) + upper) / 2;
}

/** A growable array of doubles, for recording without an allocation per sample. */
export class Samples {
  private data: Float64Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Float64Array(capacity);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  get(index: number): number {
    return this.data[index] ?? NaN;
  }

  /** The recorded values (a view: valid until the next push). */
  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}
