/**
 * The failed workers' reasons for a rejection, each said once with the workers that gave
 * it: a setup module that throws fails every worker with the same message (and stack),
 * which listed once per worker buried the one line that matters. Distinct reasons stay
 * apart, in the order of the first worker that gave each:
 * `workers 0-2, 4 failed: Error: ...; worker 3 exited with code 7`.
 */
export function describeFailures(workers: readonly { index: number; failure?: string }[]): string {
  const byReason = new Map<string, number[]>();
  for (const { index, failure } of [...workers].sort((a, b) => a.index - b.index)) {
    if (failure !== undefined) byReason.set(failure, [...(byReason.get(failure) ?? []), index]);
  }
  return [...byReason].map(([reason, indices]) => `${indices.length > 1 ? 'workers' : 'worker'} ${indexRanges(indices)} ${reason}`).join('; ');
}

/** Ascending indices as ranges: [0, 1, 2, 4] -> '0-2, 4'. */
function indexRanges(indices: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < indices.length; ) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j] + 1) j++;
    parts.push(j > i ? `${indices[i]}-${indices[j]}` : `${indices[i]}`);
    i = j + 1;
  }
  return parts.join(', ');
}
