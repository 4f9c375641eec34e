/**
 * Typed access to the js port's shared rings (native/net/frame_rings.h): where each index,
 * descriptor and slot lies in the one buffer native maps. The offsets come from native's layout
 * object; the field positions inside a ring header are fixed there by a static_assert. Indexes
 * and the flag are read and written with Atomics, one aligned access each (the rule for every
 * index shared with native code).
 */
import type { NativeFrameRings } from '../binding';

/** u32 positions inside a ring header (each index on its own 64-byte line), then its descriptors. */
const HEAD = 0;
const TAIL = 16;
const DESCS = 32;
/** u32 position of the consumer flag in the flags page. */
const CONSUMER = 0;

/** One ring: toward JS (guest TX, JS consumes) or from JS (guest RX, JS produces). */
export class FrameRingView {
  constructor(
    private readonly u32: Uint32Array,
    /** Position of its header in u32 units. */
    private readonly at: number,
    private readonly mask: number,
  ) {}

  head(): number {
    return Atomics.load(this.u32, this.at + HEAD);
  }
  tail(): number {
    return Atomics.load(this.u32, this.at + TAIL);
  }
  setHead(v: number): void {
    Atomics.store(this.u32, this.at + HEAD, v >>> 0);
  }
  setTail(v: number): void {
    Atomics.store(this.u32, this.at + TAIL, v >>> 0);
  }
  descLen(index: number): number {
    return this.u32[this.at + DESCS + 2 * (index & this.mask) + 1];
  }
  setDesc(index: number, offset: number, len: number): void {
    const i = this.at + DESCS + 2 * (index & this.mask);
    this.u32[i] = offset;
    this.u32[i + 1] = len;
  }
}

/** The whole mapping: the flags page and every pair's two rings and their slots. */
export class FrameLayout {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly pairs: number;
  readonly slots: number;
  readonly slotSize: number;
  readonly slotsStart: number;
  readonly toJs: FrameRingView[];
  readonly fromJs: FrameRingView[];
  private readonly u32: Uint32Array;

  constructor(n: NativeFrameRings) {
    this.buffer = n.buffer;
    this.bytes = new Uint8Array(n.buffer);
    this.u32 = new Uint32Array(n.buffer);
    this.pairs = n.pairs;
    this.slots = n.slots;
    this.slotSize = n.slotSize;
    this.slotsStart = n.slotsStart;
    const ring = (pair: number, fromJs: number) =>
      new FrameRingView(this.u32, (n.ringsStart + (2 * pair + fromJs) * n.ringStride) / 4, n.slots - 1);
    this.toJs = Array.from({ length: n.pairs }, (_, p) => ring(p, 0));
    this.fromJs = Array.from({ length: n.pairs }, (_, p) => ring(p, 1));
  }

  /** Byte offset of a slot: ring 0 toward JS, 1 from JS. */
  slotOffset(pair: number, fromJs: number, index: number): number {
    return this.slotsStart + ((2 * pair + fromJs) * this.slots + (index & (this.slots - 1))) * this.slotSize;
  }

  /**
   * Where a view into this buffer lies: the toward-JS slot it starts in as pair * slots + slot, or -1
   * when it is not inside one toward-JS slot (a program's own bytes, or a view past a slot's end).
   */
  toJsSlotOf(view: Uint8Array): number {
    if (view.buffer !== this.buffer) return -1;
    const rel = view.byteOffset - this.slotsStart;
    if (rel < 0) return -1;
    const slot = Math.floor(rel / this.slotSize);
    if ((rel % this.slotSize) + view.byteLength > this.slotSize) return -1;
    const ring = Math.floor(slot / this.slots);
    if (ring % 2 !== 0 || ring >= 2 * this.pairs) return -1;
    return (ring / 2) * this.slots + (slot % this.slots);
  }

  /** While set, guest TX is queued toward JS; while clear, the port drops it. */
  setConsumer(on: boolean): void {
    Atomics.store(this.u32, CONSUMER, on ? 1 : 0);
  }
}
