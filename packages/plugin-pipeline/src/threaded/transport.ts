import { MessageChannel, type MessagePort } from 'node:worker_threads';

/** What stages send each other: activations forward, gradients backward (data as transferable buffers). */
export type StageMessage =
  | { type: 'forward'; sample: number; data: Float32Array; shape: number[] }
  /** `penalty`: the weight penalties of the stages after the receiver at this sample's update (absent: none). */
  | { type: 'backward'; sample: number; data: Float32Array; shape: number[]; penalty?: number };

/**
 * One direction-agnostic link between two neighbouring stages. The executor only needs
 * these three calls, so stages on other hosts can later talk through a broker instead
 * of a MessagePort.
 */
export interface StageLink {
  send(message: StageMessage): void;
  onMessage(handler: (message: StageMessage) => void): void;
  close(): void;
}

/** Makes the two ends of the link between stage s and stage s + 1, as values a Worker can receive. */
export interface Transport {
  /** The two ends as transferable handles (given to the workers at start). */
  pair(): { upstream: MessagePort; downstream: MessagePort };
  /** Wraps a received end. */
  link(end: MessagePort): StageLink;
}

/** Today's transport: a worker_threads MessageChannel; the Float32Array buffers are transferred, not copied. */
export const messagePortTransport: Transport = {
  pair() {
    const { port1, port2 } = new MessageChannel();
    return { upstream: port1, downstream: port2 };
  },
  link(end) {
    return {
      send: (message) => end.postMessage(message, [message.data.buffer as ArrayBuffer]),
      onMessage: (handler) => end.on('message', handler),
      close: () => end.close(),
    };
  },
};
