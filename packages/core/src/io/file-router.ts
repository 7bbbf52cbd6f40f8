import * as tf from '@tensorflow/tfjs';
import { fileSystem } from './file-system';

const SCHEME = 'file://';
/** Set while this router asks tfjs which other routers take a URL. */
let asking = false;

/**
 * tfjs's IO router for `file://` URLs, serving `fileSystem`. It steps aside when another
 * router takes the URL (tfjs-node's, when tfjs-node is loaded too), so a URL never gets
 * two handlers (which tfjs refuses) whichever package was loaded first.
 */
function fileRouter(kind: 'save' | 'load'): (url: string | string[]) => tf.io.IOHandler | null {
  return (url) => {
    if (typeof url !== 'string' || !url.startsWith(SCHEME) || asking) return null;
    asking = true;
    let others: tf.io.IOHandler[];
    try {
      others = kind === 'save' ? tf.io.getSaveHandlers(url) : tf.io.getLoadHandlers(url);
    } finally {
      asking = false;
    }
    return others.length > 0 ? null : fileSystem(url.slice(SCHEME.length));
  };
}

type Router = Parameters<typeof tf.io.registerSaveRouter>[0];

const REGISTERED = Symbol.for('tapfit.fileRouter');

/** Registers the `file://` save and load routers with tfjs (once per process). @tapfit/core does it when loaded. */
export function registerFileRouter(): void {
  const registry = globalThis as { [REGISTERED]?: boolean };
  if (registry[REGISTERED]) return;
  registry[REGISTERED] = true;
  // tfjs types a router as always returning a handler; at run time null means "not mine".
  tf.io.registerSaveRouter(fileRouter('save') as Router);
  tf.io.registerLoadRouter(fileRouter('load') as Router);
}
