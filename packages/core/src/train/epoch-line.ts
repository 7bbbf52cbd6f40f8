import type { Logs } from './callbacks';

/**
 * A value with about three significant figures, the way tfjs-node's fit logger prints
 * metrics: two decimals from 1 up, more decimals below 1, exponent form below 1e-4.
 */
export function shortNumber(x: number): string {
  if (!Number.isFinite(x) || x === 0 || Math.abs(x) > 1) return x.toFixed(2);
  const decimals = 2 - Math.floor(Math.log10(Math.abs(x)));
  return decimals > 4 ? x.toExponential(2) : x.toFixed(decimals);
}

/**
 * `1234ms 567us/step - acc=0.912 loss=0.253 val_acc=0.901 val_loss=0.274`: keys sorted and
 * time per sample (per batch when the sample count is unknown), as tfjs-node prints them.
 */
export function epochLine(ms: number, samplesOrSteps: number, logs: Logs): string {
  const metrics = Object.keys(logs)
    .sort()
    .map((k) => `${k}=${shortNumber(logs[k])}`)
    .join(' ');
  return `${ms.toFixed(0)}ms ${((ms / Math.max(samplesOrSteps, 1)) * 1000).toFixed(0)}us/step - ${metrics}`;
}
