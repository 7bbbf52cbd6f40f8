import { InvalidArgumentError } from 'commander';

/**
 * Parses a whole-number flag value (`--epochs 3`). Anything else ('abc', '2.5', '3x')
 * fails; commander's message names the flag and the value.
 */
export function wholeNumberFlag(min: number): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`It must be a whole number >= ${min}.`);
    return n;
  };
}

/** Collects a repeatable flag's values in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
