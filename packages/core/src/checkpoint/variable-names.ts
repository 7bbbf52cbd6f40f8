/**
 * Whether a saved model variable's name and a model variable's name can be the same
 * variable. tfjs names a variable `<layer>/<weight>` and makes names unique per process by
 * appending `_<n>` (the second model built with a layer 'fc1' gets 'fc1/kernel_1'; model
 * builders do the same to layer names, such as revsilo's 'revbifpn_grow1_blocks0_2'), and a
 * layer given no name gets one numbered per class and process ('dense_Dense3'), as does a
 * `tf.variable` given none ('17'). These change when the same model is built in a new
 * process or after other models, so they are not compared: only the names the user gave
 * layers and variables, and the weight names. A layer's path ('encoder/fc1') compares the
 * same way, so a plugin that records layers by path (LoRA's targets) follows this rule too.
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
 * and a per-process number from 1 ('dense_Dense3', 'batch_normalization_BatchNormalization1',
 * 'my_scale_myScale2'), not one the user chose, so the same model built again gets another.
 * Any class is tried, not only the layer's own: a layer built from another's config keeps
 * its name (LoRA's 'dense_Dense3' is a LoraDense). A class may itself end in digits or hold
 * '_' ('Block2' gives 'block2_Block21'), so every split of the trailing digits and of the
 * '_'s is tried.
 */
export function isGeneratedLayerName(name: string): boolean {
  const digits = /\d+$/.exec(name)?.[0].length ?? 0;
  for (let k = 1; k <= digits; k++) {
    if (name[name.length - k] === '0') continue; // the number has no leading zero
    const rest = name.slice(0, -k);
    for (let at = rest.indexOf('_'); at >= 0; at = rest.indexOf('_', at + 1)) {
      const className = rest.slice(at + 1);
      if (className && toSnakeCase(className) === rest.slice(0, at)) return true;
    }
  }
  return false;
}

/** tfjs-layers' toSnakeCase (not exported), which names unnamed layers. */
function toSnakeCase(name: string): string {
  const snake = name.replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  // tfjs's own guard: a class starting with '_' would give a scope starting with '_'.
  return snake[0] === '_' ? 'private' + snake : snake;
}

/** The name's segments, each without a trailing `_<n>` (on any segment: a layer's name is uniquified too), made-up ones as AUTO. */
function segments(name: string): string[] {
  return name.split('/').map((s) => (isGeneratedLayerName(s) || /^\d+$/.test(s) ? AUTO : s.replace(/(?:_\d+)+$/, '')));
}
