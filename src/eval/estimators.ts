// The paper's evaluation statistics over k sampled responses per question (SPEC.md 5; R1 sec. 3 "Evaluation
// Setup"): pass@1 as the mean correctness of the k samples, the unbiased pass@k of Chen et al. 2021 (eq. 1),
// and cons@k, the correctness of the majority-voted answer. Pure functions over correctness tables.

/** pass@1 of one question: (1/k) sum_i p_i, the fraction of its samples that are correct. */
export function passAt1(correct: readonly boolean[]): number {
  if (correct.length === 0) throw new Error('passAt1: no samples');
  return correct.filter(Boolean).length / correct.length;
}

/**
 * Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, eq. 1): 1 - C(n-c, k) / C(n, k),
 * the chance that k of the n samples drawn without replacement hold at least one correct one. The ratio of
 * binomials is computed as the product prod_{i=n-c+1}^{n} (1 - k/i) (human-eval's `estimate_pass_at_k`),
 * which never forms the huge binomials themselves.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw new Error(`passAtK: needs integers 0 <= c <= n and 1 <= k <= n, got n=${n}, c=${c}, k=${k}`);
  }
  // Fewer than k wrong samples: every draw of k holds a correct one.
  if (n - c < k) return 1;
  let allWrong = 1;
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i;
  return 1 - allWrong;
}

/**
 * The most frequent answer among `answers` (null = no answer extracted, which never wins a vote), ties going
 * to the answer seen first, as a majority vote over the final answers (R1's cons@64). Returns null when no
 * sample gave an answer.
 */
export function majorityAnswer(answers: readonly (string | null)[]): string | null {
  const counts = new Map<string, number>();
  for (const answer of answers) if (answer !== null) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  let best: string | null = null;
  let bestCount = 0;
  // A Map iterates in insertion order, so the strict > leaves ties to the answer seen first.
  for (const [answer, count] of counts) {
    if (count > bestCount) {
      best = answer;
      bestCount = count;
    }
  }
  return best;
}
