/**
 * The js port's JavaScript end: `frames()` hands the program each burst of guest TX frames as views
 * into the shared rings (native/net/frame_rings.h), `send()` queues frames for guest RX. A view the
 * program got and sends back is queued by reference (no copy: the port copies it straight into the
 * guest), anything else is copied into a slot of the ring.
 *
 * The device has no worker threads: this thread serves it (`serveInline`, one native call per
 * batch and per send), so a burst costs no hand-over between threads. Between calls a poll handle
 * on the device's inline fd (readable when the guest kicked a queue) serves it too: frames move
 * while the program is busy elsewhere, and a waiting next() or send() wakes. Before sleeping the
 * program looks again for up to the device's poll budget (`pollUs`), with the guest's kicks off, as
 * the workers of the other ports do.
 *
 * Slots toward JS are returned to the port (its tail moved) when the program asks for the next
 * batch, except those a queued send still points at: they wait until the port has copied them.
 */
import { native, type NativeNetDevice, type NativePoller } from '../binding';
import { VhostUserError } from '../errors';
import { FrameLayout } from './frame_layout';
import { pickPair } from './flow_hash';

/** One burst of guest TX frames: Ethernet frames without the virtio-net header, valid until the next iteration. */
export type FrameBatch = Uint8Array[];

export interface SendOptions {
  /** The queue pair to send on; default: by flow hash over the pairs the driver enabled. */
  pair?: number;
}

/** How the frames sent so far were queued (a diagnostic: an echo should copy none). */
export interface SendCounts {
  referenced: number;
  copied: number;
}

/** Most frames in one batch: bounds the time between two looks at the rings. */
const MAX_BATCH = 256;

type EndReason = 'disconnected' | 'closed';

export class JsFrames {
  private layout: FrameLayout | null = null;
  /** Per pair, toward JS: the next frame to hand out, and the tail stored (frames given back). */
  private taken: number[] = [];
  private released: number[] = [];
  /** Per pair, toward JS: frames up to here may be given back (those of batches the program is done with). */
  private releasable: number[] = [];
  /** Per toward-JS slot (pair * slots + slot): queued sends pointing at it. */
  private refs = new Uint32Array(0);
  /** Per pair, from JS: our head, the tail we last saw, and per descriptor the slot it points at (-1: own copy). */
  private sent: number[] = [];
  private seen: number[] = [];
  private pointsAt: Int32Array[] = [];
  private views: (Uint8Array | undefined)[] = [];
  private nextPair = 0;
  /** Bumped by every end (disconnect, close): a wait of an older generation is over. */
  private generation = 0;
  /** Bumped by every frames(): an older iterator is over. */
  private iteration = 0;
  private iterating = false;
  private closed = false;
  /** Watches the inline fd from the first frames() or send() until close. */
  private poller: NativePoller | null = null;
  /** How long to look again before sleeping until a kick (the device's pollUs). */
  private readonly pollNs: bigint;
  private waiters = new Set<() => void>();
  readonly counts: SendCounts = { referenced: 0, copied: 0 };

  constructor(
    private readonly device: NativeNetDevice,
    private readonly slots: number,
    private readonly slotSize: number,
    /** The pairs the driver enabled (pair 0 always). */
    private readonly activePairs: () => readonly number[],
    /** Whether a front-end has set up the device since the last disconnect. */
    private readonly live: () => boolean,
    pollUs: number,
  ) {
    this.pollNs = BigInt(pollUs) * 1000n;
  }

  frames(): AsyncIterableIterator<FrameBatch> {
    this.checkOpen();
    if (this.iterating) throw new VhostUserError('EBUSY', 'frames() is already being iterated: one consumer per device');
    const l = this.attach();
    this.iterating = true;
    l.setConsumer(true);
    const generation = this.generation;
    const iteration = ++this.iteration;
    const current = () => generation === this.generation && iteration === this.iteration && this.iterating;
    let pending = false;
    const iterator: AsyncIterableIterator<FrameBatch> = {
      next: async () => {
        if (pending) throw new VhostUserError('EBUSY', 'frames(): next() called again before the previous one resolved');
        pending = true;
        try {
          return await this.next(generation, current);
        } finally {
          pending = false;
        }
      },
      return: async () => {
        if (current()) this.stopIterating();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async send(frames: ArrayLike<Uint8Array>, opts: SendOptions = {}): Promise<void> {
    this.checkOpen();
    if (!this.live()) throw notConnected();
    const l = this.attach();
    const active = this.activePairs();
    if (opts.pair !== undefined && !active.includes(opts.pair)) {
      throw new VhostUserError('EINVAL', `send(): pair ${opts.pair} is not enabled by the guest's driver (enabled: ${active.join(', ')})`);
    }
    // All or nothing: every frame is checked before the first is queued.
    for (let i = 0; i < frames.length; i++) this.check(frames[i], i);
    const generation = this.generation;
    let touched = 0; // a bit per pair with frames queued and not yet published
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      const pair = opts.pair ?? pickPair(f, active);
      while (!this.hasRoom(l, pair)) {
        this.publish(l, touched);
        touched = 0;
        if (!(await this.sleep(generation, () => this.hasRoom(l, pair)))) throw this.endedError();
      }
      this.queue(l, pair, f);
      touched |= 1 << pair;
    }
    this.publish(l, touched);
    // Into the guest now; what it has no buffers for goes when it posts some (its kick is armed).
    this.serve(true);
  }

  private check(f: Uint8Array, i: number): void {
    if (!(f instanceof Uint8Array)) throw new VhostUserError('EINVAL', `send(): frame ${i} is not a Uint8Array`);
    if (f.byteLength === 0 || f.byteLength > this.slotSize) {
      throw new VhostUserError(
        'EMSGSIZE',
        `send(): frame ${i} is ${f.byteLength} bytes; the js port takes 1..${this.slotSize} (raise the device's mtu for longer frames)`,
      );
    }
  }

  /** Whether the ring from JS of `pair` has a free descriptor; its tail is read only when it looked full. */
  private hasRoom(l: FrameLayout, pair: number): boolean {
    if (this.queued(pair) < this.slots) return true;
    this.reap(l, pair);
    return this.queued(pair) < this.slots;
  }

  /** Frames queued on `pair` that the port has not copied out yet, as far as we last looked. */
  private queued(pair: number): number {
    return (this.sent[pair] - this.seen[pair]) >>> 0;
  }

  /** The front-end went away (disconnected) or the device is closing: every loop and wait ends. */
  end(reason: EndReason): void {
    this.generation++;
    if (reason === 'closed') this.closed = true;
    this.layout?.setConsumer(false);
    this.iterating = false;
    this.wakeAll();
    // Native clears the rings in the same call (reset) or unmaps them (close): start afresh.
    if (this.layout) this.clear(this.layout);
    if (reason === 'closed') {
      this.poller?.stop();
      this.poller = null;
      this.layout = null;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new VhostUserError('ESHUTDOWN', 'the device is closed: make a new VhostUserBackend');
  }

  private endedError(): VhostUserError {
    return this.closed ? new VhostUserError('ESHUTDOWN', 'the device was closed while the send waited') : notConnected();
  }

  private attach(): FrameLayout {
    if (this.layout) return this.layout;
    const l = new FrameLayout(this.device.frameRings(this.slots, this.slotSize));
    this.poller = new native.Poller(this.device.inlineFd, () => {
      this.serve(true);
      this.wakeAll();
    });
    this.poller.setRef(false);
    this.layout = l;
    this.clear(l);
    return l;
  }

  private clear(l: FrameLayout): void {
    const zeros = () => new Array<number>(l.pairs).fill(0);
    this.taken = zeros();
    this.released = zeros();
    this.releasable = zeros();
    this.sent = zeros();
    this.seen = zeros();
    this.refs = new Uint32Array(l.pairs * l.slots);
    this.pointsAt = Array.from({ length: l.pairs }, () => new Int32Array(l.slots).fill(-1));
    if (this.views.length !== l.pairs * l.slots) this.views = new Array(l.pairs * l.slots);
  }

  private async next(generation: number, current: () => boolean): Promise<IteratorResult<FrameBatch>> {
    const l = this.layout;
    if (!l || !current()) return { done: true, value: undefined };
    // The program is done with the previous batch.
    for (let p = 0; p < l.pairs; p++) this.releasable[p] = this.taken[p];
    this.giveBack(l);
    for (;;) {
      this.serve(false);
      // Slots the port has copied out of are free now: the ring toward JS may have been full of them.
      for (let p = 0; p < l.pairs; p++) this.reap(l, p);
      const batch = this.collect(l);
      if (batch.length > 0) return { done: false, value: batch };
      if (!(await this.sleep(generation, () => this.moved(l))) || !current()) return { done: true, value: undefined };
    }
  }

  /** Frames waiting toward JS, round robin over the pairs from where the last batch stopped. */
  private collect(l: FrameLayout): FrameBatch {
    const batch: FrameBatch = [];
    for (let k = 0; k < l.pairs && batch.length < MAX_BATCH; k++) {
      const p = (this.nextPair + k) % l.pairs;
      const ring = l.toJs[p];
      const head = ring.head();
      let t = this.taken[p];
      while (t !== head && batch.length < MAX_BATCH) {
        batch.push(this.view(l, p, t, ring.descLen(t)));
        t = (t + 1) >>> 0;
      }
      this.taken[p] = t;
    }
    this.nextPair = (this.nextPair + 1) % l.pairs;
    return batch;
  }

  /** The view of a slot toward JS, reused while the frame length stays the same (no allocation per frame). */
  private view(l: FrameLayout, pair: number, index: number, len: number): Uint8Array {
    const id = pair * l.slots + (index & (l.slots - 1));
    const cached = this.views[id];
    if (cached && cached.byteLength === len) return cached;
    // The port never writes more than a slot; a length past it would only be a corrupted ring.
    const v = new Uint8Array(l.buffer, l.slotOffset(pair, 0, index), Math.min(len, l.slotSize));
    this.views[id] = v;
    return v;
  }

  /** Whether a port moved since we last looked: frames toward JS, or frames from JS copied out. */
  private moved(l: FrameLayout): boolean {
    for (let p = 0; p < l.pairs; p++) if (l.toJs[p].head() !== this.taken[p] || l.fromJs[p].tail() !== this.seen[p]) return true;
    return false;
  }

  private queue(l: FrameLayout, pair: number, f: Uint8Array): void {
    const ring = l.fromJs[pair];
    const index = this.sent[pair];
    const slot = this.slotOf(l, f);
    if (slot >= 0) {
      ring.setDesc(index, f.byteOffset, f.byteLength);
      this.refs[slot]++;
      this.counts.referenced++;
    } else {
      const offset = l.slotOffset(pair, 1, index);
      l.bytes.set(f, offset);
      ring.setDesc(index, offset, f.byteLength);
      this.counts.copied++;
    }
    this.pointsAt[pair][index & (l.slots - 1)] = slot;
    this.sent[pair] = (index + 1) >>> 0;
  }

  /**
   * The toward-JS slot a frame lies in (pair * slots + slot), or -1. A view handed out is recognised
   * by identity with the view cached for the slot its offset names, without reading its .buffer
   * (a slow builtin call); anything else is worked out from its buffer and offset.
   */
  private slotOf(l: FrameLayout, f: Uint8Array): number {
    const rel = f.byteOffset - l.slotsStart;
    if (rel >= 0) {
      const slot = Math.floor(rel / l.slotSize);
      const id = Math.floor(slot / (2 * l.slots)) * l.slots + (slot % (2 * l.slots));
      if (slot % (2 * l.slots) < l.slots && this.views[id] === f) return id;
    }
    return l.toJsSlotOf(f);
  }

  /** Makes the queued frames of the pairs in `pairs` (a bit each) visible to the port. */
  private publish(l: FrameLayout, pairs: number): void {
    for (let p = 0; pairs !== 0; p++, pairs >>>= 1) if (pairs & 1) l.fromJs[p].setHead(this.sent[p]);
  }

  /**
   * One pass of the port over every pair, on this thread: guest TX into the rings toward JS, the
   * rings from JS into guest RX. `arm`: ask the guest for kicks if there is nothing to do (false
   * while we look again soon anyway).
   */
  private serve(arm: boolean): void {
    if (this.layout) this.device.serveInline(arm);
  }

  /** Notes the frames the port of `pair` has copied from JS: the slots they pointed at are free. */
  private reap(l: FrameLayout, pair: number): void {
    const tail = l.fromJs[pair].tail();
    let i = this.seen[pair];
    if (i === tail) return;
    // A tail past our head would be a corrupted ring; never count past what was sent.
    if ((tail - i) >>> 0 > (this.sent[pair] - i) >>> 0) return;
    const points = this.pointsAt[pair];
    let freed = false;
    while (i !== tail) {
      const slot = points[i & (l.slots - 1)];
      if (slot >= 0) {
        this.refs[slot]--;
        freed = true;
      }
      i = (i + 1) >>> 0;
    }
    this.seen[pair] = tail;
    if (freed) this.giveBack(l);
  }

  /** Moves each tail toward JS over the slots the program is done with and no queued send needs. */
  private giveBack(l: FrameLayout): void {
    for (let p = 0; p < l.pairs; p++) {
      let r = this.released[p];
      const end = this.releasable[p];
      const base = p * l.slots;
      while (r !== end && this.refs[base + (r & (l.slots - 1))] === 0) r = (r + 1) >>> 0;
      if (r === this.released[p]) continue;
      this.released[p] = r;
      l.toJs[p].setTail(r);
    }
  }

  /** Leaving the loop: what was not handed out is dropped, and the port drops guest TX until the next frames(). */
  private stopIterating(): void {
    const l = this.layout;
    this.iterating = false;
    if (!l) return;
    l.setConsumer(false);
    for (let p = 0; p < l.pairs; p++) {
      this.taken[p] = l.toJs[p].head();
      this.releasable[p] = this.taken[p];
    }
    this.giveBack(l);
    this.wakeAll();
  }

  /**
   * Waits until `ready()`: first by serving and looking again on each turn of the event loop for up
   * to the poll budget (while traffic flows the next burst comes sooner than a kick would), then
   * with the guest's kicks armed until the poll handle fires. False when the generation ended.
   */
  private async sleep(generation: number, ready: () => boolean): Promise<boolean> {
    if (this.pollNs > 0n) {
      const deadline = process.hrtime.bigint() + this.pollNs;
      do {
        await nextTurn();
        if (generation !== this.generation) return false;
        this.serve(false);
        if (ready()) return true;
      } while (process.hrtime.bigint() < deadline);
    }
    if (!this.layout || generation !== this.generation) return false;
    this.serve(true); // arms the kicks, and looks once more after arming them
    if (ready()) return true;
    await new Promise<void>((resolve) => {
      this.waiters.add(resolve);
      this.poller?.setRef(true);
    });
    return generation === this.generation;
  }

  private wakeAll(): void {
    this.poller?.setRef(false);
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}

/** Resolves on the next turn of the event loop, after the I/O it has pending. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function notConnected(): VhostUserError {
  return new VhostUserError(
    'ENOTCONN',
    "no front-end is connected: send() works while the guest's driver is up (after the backend's 'connect')",
  );
}
