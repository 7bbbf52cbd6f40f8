import { modelVariables } from '../model/trainable-model';
import type { Trainer } from '../train/trainer';

/** A plugin's saveState() as comparable text. */
export interface PluginStateText {
  json: string;
  tensors: Record<string, string>;
}

/**
 * The plugin's saveState() as comparable text: JSON and each tensor's dtype, shape and
 * values. Names tfjs numbers per model instance (variables, layers) are replaced by their
 * position, so two trainers of identically built models compare equal. Taken as text, it
 * outlives the trainer (the round trip disposes each trainer before building the next).
 */
export function pluginStateOf(trainer: Trainer, name: string): PluginStateText | undefined {
  const plugin = trainer.plugins.find((p) => p.name === name);
  if (!plugin?.saveState) return undefined;
  const positions = new Map<string, string>();
  modelVariables(trainer.model).forEach((v, i) => positions.set(v.name, `<variable ${i}>`));
  trainer.model.layersModel?.layers.forEach((l, i) => positions.set(l.name, `<layer ${i}>`));
  const rename = (s: string) => positions.get(s) ?? s;
  const plain = (v: unknown): unknown => {
    if (typeof v === 'string') return rename(v);
    if (Array.isArray(v)) return v.map(plain);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [rename(k), plain(x)]));
    return v;
  };
  const s = plugin.saveState();
  const tensors: Record<string, string> = {};
  for (const [k, t] of Object.entries(s.tensors ?? {})) tensors[rename(k)] = `${t.dtype}[${t.shape}] ${Array.from(t.dataSync()).join(',')}`;
  return { json: JSON.stringify(plain(s.json ?? null)), tensors };
}

/** Where two plugin states differ, or undefined when they are equal. */
export function stateDifference(a: PluginStateText | undefined, b: PluginStateText | undefined): string | undefined {
  if (!a || !b) return a === b ? undefined : 'one trainer has no saveState()';
  if (a.json !== b.json) return `json ${b.json.slice(0, 200)} instead of ${a.json.slice(0, 200)}`;
  for (const k of new Set([...Object.keys(a.tensors), ...Object.keys(b.tensors)])) {
    if (a.tensors[k] !== b.tensors[k]) return `tensor '${k}' is ${b.tensors[k]?.slice(0, 200) ?? 'missing'} instead of ${a.tensors[k]?.slice(0, 200) ?? 'missing'}`;
  }
  return undefined;
}
