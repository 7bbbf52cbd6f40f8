import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { backendRegistered } from './engine-internals';
import { resolvePackage } from './tensorflow';
import { installWebgpuShim } from './webgpu-shim';

/**
 * WebGPU in Node: `webgpu` (Dawn, prebuilt, it downloads nothing) provides
 * `navigator.gpu`, and `@tensorflow/tfjs-backend-webgpu` runs tfjs on it. Both
 * are optional peers; on Linux Dawn needs a Vulkan driver (a GPU's, or Mesa's
 * software lavapipe: see the core README, "Getting a GPU").
 */
export const WEBGPU_PACKAGES = ['webgpu', '@tensorflow/tfjs-backend-webgpu'] as const;

/** What the adapter says about itself. */
export interface GpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation of WebGPU (Mesa lavapipe/llvmpipe, SwiftShader, WARP): correct, but no faster than wasm. */
  software: boolean;
}

/** The adapter found, or why there is none. */
export type AdapterProbe = { adapter: GpuAdapter; why?: undefined } | { adapter: null; why: string };

export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
export interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<AdapterLike | null>;
}
interface DawnPackage {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render|\bwarp\b|software/i;

/**
 * An adapter counts as software when WebGPU calls it a fallback adapter (Dawn
 * does for CPU devices), when its architecture is 'software', or when its name
 * is one of the known CPU implementations.
 */
export function classifyAdapter(adapter: AdapterLike): GpuAdapter {
  const info = adapter.info ?? {};
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const out = { vendor: text(info.vendor), architecture: text(info.architecture), device: text(info.device), description: text(info.description) };
  const software = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true || out.architecture.toLowerCase() === 'software' ||
    SOFTWARE_NAMES.test(`${out.description} ${out.device}`);
  return { ...out, software };
}

/**
 * One line, e.g. "llvmpipe: Mesa 25.0.7 (vendor mesa, architecture software; software)", or
 * "nvidia-h200, NVIDIA: 580.159.04 (vendor nvidia; hardware)": Dawn on NVIDIA's Vulkan
 * driver describes the adapter by vendor and driver version only, and names the card in `device`.
 */
export function formatAdapter(a: GpuAdapter): string {
  const describesCard = /[a-z]/.test(a.description.toLowerCase().replace(a.vendor.toLowerCase(), ''));
  const name = (a.device && !describesCard ? [a.device, a.description].filter(Boolean).join(', ') : a.description || a.device) || 'unnamed adapter';
  const parts = [a.vendor && `vendor ${a.vendor}`, a.architecture && `architecture ${a.architecture}`].filter(Boolean).join(', ');
  return `${name} (${parts ? `${parts}; ` : ''}${a.software ? 'software' : 'hardware'})`;
}

/** The packages of WEBGPU_PACKAGES that cannot be resolved. */
export function missingWebgpuPackages(): string[] {
  return WEBGPU_PACKAGES.filter((p) => !resolvePackage(p));
}

let dawn: { gpu: GpuLike; globals: Record<string, unknown> } | null = null;
let active: GpuAdapter | null = null;

/** `navigator.gpu` when something already defined it (a browser, or a caller with its own Dawn flags); otherwise Dawn from `webgpu`. */
function gpuEntryPoint(): GpuLike {
  const existing = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (existing) return existing;
  if (!dawn) {
    const resolved = resolvePackage('webgpu');
    if (!resolved) throw notInstalled(['webgpu']);
    let pkg: DawnPackage;
    try {
      pkg = require(resolved) as DawnPackage;
    } catch (cause) {
      throw new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu': the 'webgpu' package (Dawn) failed to load: ${(cause as Error)?.message ?? String(cause)}. It ships prebuilt binaries for linux-x64/arm64, macOS and Windows and needs Node >= 20.19; reinstall it (npm install webgpu), or uninstall it / choose another backend (TAPFIT_BACKEND=wasm).`, { cause });
    }
    dawn = { gpu: pkg.create([]), globals: pkg.globals };
  }
  return dawn.gpu;
}

/**
 * The adapter tfjs-backend-webgpu would use (high performance), without
 * activating anything. No adapter, or packages not installed, is not an error
 * here: `why` says what is missing. A `webgpu` package that fails to load is.
 */
export async function probeWebgpuAdapter(): Promise<AdapterProbe> {
  const missing = missingWebgpuPackages();
  if (missing.length) return { adapter: null, why: `not installed: ${missing.join(', ')}` };
  const gpu = gpuEntryPoint();
  let adapter: AdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { adapter: null, why: `requestAdapter failed: ${(err as Error)?.message ?? String(err)}` };
  } finally {
    // Dawn completes requests in a callback it queues on the event loop; let it run, or a
    // synchronous read on an active webgpu backend would find it still queued (webgpu-shim/sync-read.ts).
    await new Promise((resolve) => setImmediate(resolve));
  }
  return adapter ? { adapter: classifyAdapter(adapter) } : { adapter: null, why: 'no WebGPU adapter (Dawn found no usable GPU driver, e.g. Vulkan on Linux)' };
}

/**
 * Dawn releases the GPU objects tfjs drops in every step (bind groups, command
 * buffers, staging memory) in finalizers that Node runs only when the event loop
 * turns. A training loop that awaits nothing but settled promises never lets it,
 * and native memory grows until the Vulkan driver crashes (measured on lavapipe:
 * 3-6 MiB per CNN step, a segfault after ~250 steps). On 'webgpu' this turns the
 * event loop once; loops that run many steps call it after each.
 */
export async function releaseDroppedGpuObjects(): Promise<void> {
  if (tf.getBackend() === 'webgpu') await new Promise((resolve) => setImmediate(resolve));
}

/** The adapter of the active 'webgpu' backend, or undefined when another backend is active. */
export function activeWebgpuAdapter(): GpuAdapter | undefined {
  return tf.getBackend() === 'webgpu' && active ? active : undefined;
}

/** `selectBackend('webgpu')`: the adapter, whatever kind, activated; an error naming the fix when there is none. */
export async function activateWebgpu(): Promise<GpuAdapter> {
  const missing = missingWebgpuPackages();
  if (missing.length) throw notInstalled(missing);
  const probe = await probeWebgpuAdapter();
  if (!probe.adapter) {
    throw new TapfitError(
      ErrorCodes.BACKEND,
      `backend 'webgpu' has no adapter: ${probe.why}. Install the GPU's Vulkan driver (NVIDIA, AMD, Intel), or for a software adapter Mesa's lavapipe >= 25 (Debian 12: mesa-vulkan-drivers from bookworm-backports; see the @tapfit/core README, "Getting a GPU"), and check it with vulkaninfo; or choose another backend (TAPFIT_BACKEND=wasm).`,
    );
  }
  await activateOn(probe.adapter);
  return probe.adapter;
}

/**
 * `auto`: activates webgpu on a hardware adapter and returns it; otherwise adds
 * to `skipped` why not (packages missing, no adapter, or a software adapter,
 * which trains slower than wasm) and returns null.
 */
export async function activateHardwareWebgpu(skipped: string[]): Promise<GpuAdapter | null> {
  const probe = await probeWebgpuAdapter();
  if (!probe.adapter) {
    skipped.push(`webgpu: ${probe.why}`);
    return null;
  }
  if (probe.adapter.software) {
    skipped.push(`webgpu adapter ${formatAdapter(probe.adapter)} skipped, software is slower than wasm (selectBackend('webgpu') uses it anyway)`);
    return null;
  }
  await activateOn(probe.adapter);
  return probe.adapter;
}

/**
 * Loads tfjs-backend-webgpu on the probed WebGPU, makes 'webgpu' the active
 * backend and installs the webgpu shim. Any failure is an error, never a fallback.
 */
async function activateOn(adapter: GpuAdapter): Promise<void> {
  exposeNavigatorGpu();
  if (!backendRegistered('webgpu')) {
    try {
      require(resolvePackage('@tensorflow/tfjs-backend-webgpu')!);
    } catch (cause) {
      throw new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu': @tensorflow/tfjs-backend-webgpu failed to load: ${(cause as Error)?.message ?? String(cause)}. Install @tensorflow/tfjs-backend-webgpu@4.22 (the same version as @tensorflow/tfjs), or choose another backend.`, { cause });
    }
    if (!backendRegistered('webgpu')) {
      throw new TapfitError(ErrorCodes.BACKEND, "backend 'webgpu': @tensorflow/tfjs-backend-webgpu registered no 'webgpu' backend with this copy of @tensorflow/tfjs. It registers only if navigator.gpu exists when it is first loaded: do not import it before selectBackend('webgpu') (or define navigator.gpu first), and make its version match @tensorflow/tfjs so npm dedupes them (npm ls @tensorflow/tfjs-core).");
    }
  }
  let ok = false;
  let cause: unknown;
  try {
    ok = await tf.setBackend('webgpu');
  } catch (err) {
    cause = err;
  }
  if (!ok) {
    throw new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu' failed to initialise on ${formatAdapter(adapter)}${cause instanceof Error ? `: ${cause.message}` : ' (tf.setBackend returned false; tfjs logged the reason above)'}. Check the GPU driver (vulkaninfo), or choose another backend (TAPFIT_BACKEND=wasm).`, { cause });
  }
  await installWebgpuShim();
  active = adapter;
}

/** tfjs-backend-webgpu reads `navigator.gpu` and the GPU* constants from the global scope; define what is missing. */
function exposeNavigatorGpu(): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu) return;
  const gpu = gpuEntryPoint();
  for (const [name, value] of Object.entries(dawn?.globals ?? {})) {
    if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
}

function notInstalled(missing: string[]): TapfitError {
  return new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu' needs ${WEBGPU_PACKAGES.join(' and ')}; not installed: ${missing.join(', ')}. npm install webgpu@0.6 @tensorflow/tfjs-backend-webgpu@4.22 (neither downloads anything at install), plus a Vulkan driver on Linux; or choose another backend.`);
}
