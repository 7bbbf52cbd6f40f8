// Model files in Node: model.save('file://...') and tf.loadLayersModel('file://...') without tfjs-node.
import { registerFileRouter } from './file-router';

export { fileSystem, MODEL_JSON, WEIGHTS_BIN } from './file-system';
export { registerFileRouter };

registerFileRouter();
