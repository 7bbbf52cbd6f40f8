import * as tf from '@tensorflow/tfjs';
import { Overrides } from './overrides';

export type FusedConv2d = typeof tf.fused.conv2d;
export type FusedConv2dArgs = Parameters<FusedConv2d>[0];

/** A linear `tf.fused.conv2d` as its two ops: `conv2d`, then the bias added (taped like any op). */
export function conv2dThenBias(args: FusedConv2dArgs): tf.Tensor4D {
  const y = tf.conv2d(args.x as tf.Tensor4D, args.filter as tf.Tensor4D, args.strides, args.pad, args.dataFormat ?? 'NHWC', args.dilations, args.dimRoundingMode);
  return args.bias != null ? tf.add(y, args.bias) : y;
}

/**
 * tfjs-layers' Conv2D calls `tf.fused.conv2d`, and with a linear activation (the usual
 * case when a normalisation or an activation layer follows) tfjs runs it as one kernel
 * whose custom gradient refuses dilations ("dilation rates greater than 1 are not yet
 * supported in gradients"): a dilated Conv2D layer could not train on cpu, webgpu or
 * tensorflow. With a dilation, that case runs as `conv2d` + `add` instead, whose
 * gradients the dilated-conv fix provides (dilated-conv-grad.ts). Values to float32
 * rounding: the bias is added after the sum instead of inside it. Other activations are
 * already unfused under a tape by tfjs; dilation 1 is unchanged.
 */
export function installDilatedFusedConv(o: Overrides): void {
  const fused = tf.fused as unknown as { conv2d: FusedConv2d };
  const original = fused.conv2d;
  const unfused = (args: FusedConv2dArgs) => {
    const dilations = ([] as number[]).concat(args.dilations ?? 1);
    return (args.activation ?? 'linear') !== 'linear' || dilations.every((d) => d === 1) ? original(args) : conv2dThenBias(args);
  };
  o.replace(fused, 'conv2d', unfused as FusedConv2d);
}
