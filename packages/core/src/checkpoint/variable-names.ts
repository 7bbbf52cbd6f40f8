/**
 * Whether a saved model variable's name and a model variable's name can be the same
 * variable. tfjs names a variable `<layer>/<weight>` and makes names unique per process by
 * appending `_<n>` (the second model built with a layer 'fc1' gets 'fc1/kernel_1'; model
 * builders do the same to layer names, such as revsilo's 'revbifpn_grow1_blocks0_2'), and a
 * layer given no name gets one numbered per class and process ('dense_Dense3'), as does a
 * `tf.variable` given none ('17'). These change when the same model is built in a new
 * process or after other models, so they are not compared: only the names the user gave
 * layers and variables, and the weight names.
 */
export function sameVariable(saved: string, now: string): boolean {
  const a = segments(saved);
  const b = segments(now);
  // From the end: the weight, then its layer; an outer scope present on one side only is not compared.
  for (let i = 1; i <= Math.min(a.length, b.length); i++) {
    const x = a[a.length - i];
    const y = b[b.length - i];
    if (x !== y && x !== AUTO && y !== AUTO) return false;
  }
  return true;
}

const AUTO = '\0auto';

/**
 * A tfjs layer name made up for an unnamed layer: snake_case of the class, '_', the class
 * and a per-process number ('dense_Dense3', 'batch_normalization_BatchNormalization1').
 */
function generatedLayerName(segment: string): boolean {
  const m = /^([a-z0-9_]+)_([A-Z][A-Za-z0-9]*?)\d+$/.exec(segment);
  return !!m && m[1] === snakeCase(m[2]);
}

/** tfjs's toSnakeCase. */
const snakeCase = (name: string) => name.replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();

/** The name's segments, each without a trailing `_<n>` (on any segment: a layer's name is uniquified too), made-up ones as AUTO. */
function segments(name: string): string[] {
  return name.split('/').map((s) => (generatedLayerName(s) || /^\d+$/.test(s) ? AUTO : s.replace(/(?:_\d+)+$/, '')));
}
