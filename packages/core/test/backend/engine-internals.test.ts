import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TapfitError } from '../../src/errors';
import { checkEngineInternals, registeredLayerClass, SUPPORTED_TFJS, uniqueVariableName } from '../../src/backend';
import { thrown } from '../fixtures';


/** Runs `f` with `key` of `target` hidden (an own property shadowing it, or the own property removed), then restores it. */
function without(target: object, key: string, f: () => void): void {
  const t = target as Record<string, unknown>;
  const own = Object.prototype.hasOwnProperty.call(t, key);
  const value = t[key];
  if (own) delete t[key];
  if (key in t) t[key] = undefined; // a prototype method: shadow it
  try {
    f();
  } finally {
    if (own) t[key] = value;
    else delete t[key];
  }
}

describe('backend: engine internals', () => {
  it('the installed tfjs has the surface tapfit uses', () => {
    expect(() => checkEngineInternals()).not.to.throw();
  });

  for (const [where, key] of [
    ['engine', 'registryFactory'],
    ['engine', 'runKernelFunc'],
    ['engine', 'gradients'],
    ['engine.state', 'gradientDepth'],
    ['engine.state', 'registeredVariables'],
  ] as const) {
    it(`fails naming the tfjs versions when ${where}.${key} is missing`, () => {
      const target = where === 'engine' ? tf.engine() : tf.engine().state;
      without(target, key, () => {
        const err = thrown(() => checkEngineInternals());
        expect(err).to.be.instanceOf(TapfitError);
        expect(err.code).to.equal('TAPFIT_E_TFJS_INTERNALS');
        expect(err.message).to.contain(`${where}.${key}`);
        expect(err.message).to.contain(`@tensorflow/tfjs ${tf.version.tfjs}`);
        expect(err.message).to.contain(`tfjs-core ${tf.version_core}`);
        expect(err.message).to.contain(`supported: ${SUPPORTED_TFJS}`);
        expect(err.message).to.contain('@tensorflow/tfjs@~4.22.0');
      });
      expect(() => checkEngineInternals()).not.to.throw();
    });
  }

  it('fails when the serialization class map is gone', () => {
    without(tf.serialization.SerializationMap.getMap(), 'classNameMap', () => {
      expect(thrown(() => checkEngineInternals()).message).to.contain('classNameMap');
    });
  });

  it('uniqueVariableName avoids the names of live variables only', () => {
    const name = 'engine-internals-test/w';
    expect(uniqueVariableName(name)).to.equal(name);
    const a = tf.variable(tf.zeros([1]), true, name);
    const b = tf.variable(tf.zeros([1]), true, `${name}_1`);
    expect(uniqueVariableName(name)).to.equal(`${name}_2`);
    b.dispose();
    expect(uniqueVariableName(name)).to.equal(`${name}_1`);
    a.dispose();
    expect(uniqueVariableName(name)).to.equal(name);
  });

  it('registeredLayerClass finds what tf.serialization.registerClass registered', () => {
    const dense = registeredLayerClass('Dense')!;
    expect(dense.cls).to.equal(tf.layers.dense({ units: 1 }).constructor);
    const layer = dense.fromConfig(dense.cls, { units: 3 } as unknown as tf.serialization.ConfigDict) as unknown as tf.layers.Layer;
    expect(layer.getConfig().units).to.equal(3);
    expect(registeredLayerClass('NoSuchLayer')).to.equal(undefined);
  });

  it('no source file outside engine-internals.ts touches tfjs internals', () => {
    const packages = path.resolve(__dirname, '../../../..');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !p.endsWith(path.join('backend', 'engine-internals.ts'))) {
          const text = fs.readFileSync(p, 'utf8');
          if (/tf\.engine\(\)|SerializationMap|registryFactory|registeredVariables|activeTape/.test(text)) offenders.push(path.relative(packages, p));
        }
      }
    };
    const sources = fs.readdirSync(packages).map((p) => path.join(packages, p, 'src')).filter((p) => fs.existsSync(p));
    expect(sources.length).to.be.at.least(2);
    sources.forEach(walk);
    expect(offenders).to.deep.equal([]);
  });
});
