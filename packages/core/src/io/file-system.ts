import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/** The files tfjs-node's `file://` handler writes, under the same names. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/**
 * A Node IOHandler in tfjs-node's file layout, so `model.save('file://dir')` writes what
 * tfjs-node writes (`dir/model.json` with a `weightsManifest` naming `weights.bin`, and
 * `dir/weights.bin`) and `tf.loadLayersModel('file://dir/model.json')` reads it (or any
 * model.json whose manifest lists several weight files, as the converter writes them).
 *
 * Saving: `target` is a directory (created if missing; a file there is an error). The
 * weights go first and model.json last, each written to a temporary name and renamed, so
 * a reader never sees a model.json whose weights are missing or half written.
 * Loading: `target` is the model.json file, or a directory holding one.
 */
export function fileSystem(target: string): tf.io.IOHandler {
  const where = path.resolve(target);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new TapfitError(ErrorCodes.CONFIG, `file://${target}: binary (GraphDef) model topologies cannot be saved; save a tfjs-layers model.`);
      }
      if (fs.existsSync(where) && !fs.statSync(where).isDirectory()) {
        throw new TapfitError(ErrorCodes.CONFIG, `file://${target}: '${where}' is a file; saving needs a directory (it is created if missing), e.g. file://${target.replace(/\.json$/, '')}.`);
      }
      fs.mkdirSync(where, { recursive: true });
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
      };
      if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature != null) modelJson.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata != null) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      const weights = artifacts.weightData ? Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData)) : Buffer.alloc(0);
      writeAtomically(path.join(where, WEIGHTS_BIN), weights);
      writeAtomically(path.join(where, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const file = fs.existsSync(where) && fs.statSync(where).isDirectory() ? path.join(where, MODEL_JSON) : where;
      if (!fs.existsSync(file)) {
        throw new TapfitError(ErrorCodes.CONFIG, `file://${target}: '${file}' does not exist; pass the path of a model.json (or of the directory model.save wrote).`);
      }
      const json = JSON.parse(fs.readFileSync(file, 'utf8')) as tf.io.ModelJSON;
      const dir = path.dirname(file);
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const buffers = manifest.flatMap((group) =>
          group.paths.map((p) => {
            const weightsFile = path.join(dir, p);
            if (!fs.existsSync(weightsFile)) throw new TapfitError(ErrorCodes.CONFIG, `file://${target}: the weights file '${weightsFile}' named in ${MODEL_JSON} does not exist.`);
            return toArrayBuffer(fs.readFileSync(weightsFile));
          }),
        );
        return [manifest.flatMap((group) => group.weights), tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

function writeAtomically(file: string, data: string | Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

function toArrayBuffer(buffer: Buffer): ArrayBuffer {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
}
