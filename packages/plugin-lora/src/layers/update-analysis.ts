import * as tf from '@tensorflow/tfjs';
import { configError, stateError } from '../common/errors';
import { type Spectrum, spectrumOf } from '../common/spectrum';
import { isContainer } from './catalog';
import { LoraLayer } from './lora-layer';
import { localName } from './rebuild';

export interface LayerUpdate {
  layer: string;
  /** The kernel seen as a matrix: [fan-in, fan-out] (conv kernels: kh*kw*in x out). */
  shape: [number, number];
  pre: Spectrum;
  ft: Spectrum;
  delta: Spectrum;
  /** ||W_ft - W_pre||_F / ||W_pre||_F */
  relativeUpdate: number;
}

export interface UpdateAnalysis {
  fraction: number;
  layers: LayerUpdate[];
}

/** Every 2-D-or-more kernel of a model by layer path; LoRA layers give their effective kernel. */
function kernelsOf(model: tf.LayersModel): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const walk = (c: tf.LayersModel, prefix: string): void => {
    for (const l of c.layers) {
      const path = prefix + l.name;
      if (isContainer(l)) walk(l, `${path}/`);
      else if (l instanceof LoraLayer) out.set(path, l.effectiveKernel());
      else {
        const k = l.weights.find((w) => ['kernel', 'embeddings'].includes(localName(w)) && w.shape.length >= 2);
        if (k) out.set(path, tf.clone(k.read()));
      }
    }
  };
  walk(model, '');
  return out;
}

/**
 * Spectral analysis of a finetuning update (paper §4.6): for every weight matrix the
 * two models share (matched by layer path; conv kernels reshaped to [kh*kw*in, out]),
 * the singular values and explained-variance rank of W_pre, W_ft and Delta = W_ft - W_pre.
 * `tuned` may be a LoRA model: its effective kernels (K + s A B) are used.
 */
export function analyzeUpdate(base: tf.LayersModel, tuned: tf.LayersModel, opts: { fraction?: number | undefined } = {}): UpdateAnalysis {
  const fraction = opts.fraction ?? 0.9;
  // Checked before any kernel is copied, so a bad value costs nothing and names this call.
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    throw configError(`analyzeUpdate: option 'fraction' must be in (0, 1] (got ${String(fraction)}); use 0.9 for the paper's rank90.`);
  }
  const pre = kernelsOf(base);
  const ft = kernelsOf(tuned);
  try {
    const layers: LayerUpdate[] = [];
    for (const [path, w0] of pre) {
      const w1 = ft.get(path);
      if (!w1) continue;
      if (JSON.stringify(w0.shape) !== JSON.stringify(w1.shape)) {
        throw configError(`analyzeUpdate: layer '${path}' has kernel shape [${w0.shape}] in the base model but [${w1.shape}] in the tuned one.`);
      }
      const cols = w0.shape[w0.rank - 1];
      const rows = w0.size / cols;
      // NaN or Inf has no spectrum; merge refuses such weights too.
      const finite = (s: Spectrum | null, why: () => string): Spectrum => {
        if (s) return s;
        throw stateError(`analyzeUpdate: ${why()}, so it has no rank or spectrum. Analyze finite weights (an earlier checkpoint, or a model whose training did not diverge).`);
      };
      const weights = (model: string) => () => `the kernel is not finite in layer ${path} of the ${model} model; its weights hold NaN or Inf`;
      const p = finite(spectrumOf(w0, rows, cols, fraction), weights('base'));
      const f = finite(spectrumOf(w1, rows, cols, fraction), weights('tuned'));
      const delta = tf.sub(w1, w0);
      let d: Spectrum;
      try {
        d = finite(spectrumOf(delta, rows, cols, fraction), () => `the update (tuned - base) of layer ${path} overflows float32 (the kernels differ by more than ~3.4e38)`);
      } finally {
        delta.dispose();
      }
      layers.push({ layer: path, shape: [rows, cols], pre: p, ft: f, delta: d, relativeUpdate: p.norm > 0 ? d.norm / p.norm : Infinity });
    }
    if (layers.length === 0) throw configError(`analyzeUpdate: the two models share no weight matrix (layers are matched by name).`);
    return { fraction, layers };
  } finally {
    tf.dispose([...pre.values(), ...ft.values()]);
  }
}

/** The analysis as a printable table. */
export function formatAnalysis(a: UpdateAnalysis): string {
  const pct = Math.round(a.fraction * 100);
  const rows = [
    ['layer', 'matrix', 'max rank', `rank${pct}(W_pre)`, `rank${pct}(W_ft)`, `rank${pct}(dW)`, '|dW|/|W_pre|'],
    ...a.layers.map((l) => [l.layer, `${l.shape[0]}x${l.shape[1]}`, String(Math.min(...l.shape)), String(l.pre.rank), String(l.ft.rank), String(l.delta.rank), l.relativeUpdate.toPrecision(3)]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}
