/**
 * The control side of a vhost-user front-end: connects to a back-end's socket, sends requests with
 * the same codec the back-end uses, and matches replies to them in order. It is the vhost-user
 * VhostTransport (transport.ts): VirtioNetDriver builds the QEMU-like start sequence on top of it.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { Channel } from '../protocol/channel';
import { decodeReply, encodeRequest, parseReplyHeader, replyKind, type Message, type ReplyBody } from '../protocol/codec';
import {
  MEMORY_BASELINE_NREGIONS,
  ProtocolFeature,
  Request,
  VRING_ADDR_F_LOG,
  VirtioFeature,
  bit,
  hasBit,
  requestName,
} from '../protocol/constants';
import {
  MAX_DEVICE_STATE_BYTES,
  STATE_REPLY_NO_FD,
  StateDirection,
  STATE_PHASE_STOPPED,
  errnoName,
} from '../protocol/device_state_transfer';
import { PipeReader, PipeWriter } from '../protocol/pipe_io';
import type { GuestMemory } from './guest_memory';
import type { DeviceOffer, RingAddresses, VhostTransport } from './transport';

interface Pending {
  request: number;
  ack: boolean;
  resolve(body: ReplyBody): void;
  reject(err: Error): void;
}

/** The protocol features this front-end uses (those QEMU uses for a net device). */
const WANTED_PROTOCOL =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.LOG_SHMFD) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.RARP) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS) |
  bit(ProtocolFeature.DEVICE_STATE);
const STATUS_DRIVER_OK = 0x1 | 0x2 | 0x8 | 0x4; // ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK

export class VhostUserFrontend implements VhostTransport {
  readonly kind = 'vhost-user';
  /** Protocol features both sides agreed on (set by the caller after SET_PROTOCOL_FEATURES). */
  protocolFeatures = 0n;
  /** The features last sent with SET_FEATURES. */
  private acked = 0n;
  private readonly channel: Channel;
  private readonly pending: Pending[] = [];
  private closeReason: Error | undefined;
  private closedListeners: ((reason?: Error) => void)[] = [];

  constructor(socketPath: string) {
    const fd = native.connect(socketPath);
    this.channel = new Channel(fd, (b) => parseReplyHeader(b, this.pending[0]?.request ?? -1), {
      onMessage: (header, payload, fds) => {
        for (const f of fds) native.close(f); // no reply we ask for carries fds
        const p = this.pending.shift();
        if (!p) return;
        try {
          const body = decodeReply(p.request, header, payload);
          if (p.ack && body.kind === 'u64' && body.value !== 0n) {
            p.reject(new VhostUserError('EREMOTE', `the back-end refused ${requestName(p.request)} (REPLY_ACK ${body.value})`));
          } else p.resolve(body);
        } catch (err) {
          p.reject(err as Error);
        }
      },
      onClose: (reason) => {
        this.closeReason = reason ?? new VhostUserError('ECONNRESET', 'the back-end closed the connection');
        for (const p of this.pending.splice(0)) p.reject(this.closeReason);
        for (const l of this.closedListeners) l(reason);
      },
    });
  }

  get isOpen(): boolean {
    return this.channel.isOpen;
  }

  onClosed(listener: (reason?: Error) => void): void {
    this.closedListeners.push(listener);
  }

  /**
   * Sends a request. Resolves with its reply when it has one; with `needReply` and REPLY_ACK
   * negotiated, waits for the ack and rejects on a nack. Otherwise resolves at once.
   */
  request(msg: Message, opts: { needReply?: boolean } = {}): Promise<ReplyBody | undefined> {
    if (!this.channel.isOpen) return Promise.reject(this.closeReason ?? new VhostUserError('ENOTCONN', 'not connected'));
    const hasReply = replyKind(msg.request) !== null;
    const ack = !hasReply && !!opts.needReply && hasBit(this.protocolFeatures, ProtocolFeature.REPLY_ACK);
    const { bytes, fds } = encodeRequest(msg, ack);
    if (!hasReply && !ack) {
      this.channel.send(bytes, fds);
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ request: msg.request, ack, resolve, reject });
      try {
        this.channel.send(bytes, fds);
      } catch (err) {
        this.pending.pop();
        reject(err as Error);
      }
    });
  }

  /** Sends a request whose reply is a u64 and returns it. */
  async requestU64(msg: Message): Promise<bigint> {
    const body = await this.request(msg);
    if (body?.kind !== 'u64') throw new VhostUserError('EPROTO', `${requestName(msg.request)}: expected a u64 reply`);
    return body.value;
  }

  /**
   * DEVICE_STATE on a migration's source: the back-end's state, read from a pipe it writes and
   * closes, then CHECK_DEVICE_STATE. Every ring must be stopped first (GET_VRING_BASE).
   */
  async saveState(limit = MAX_DEVICE_STATE_BYTES): Promise<Buffer> {
    const [readEnd, writeEnd] = native.pipe();
    const reader = new PipeReader(readEnd, limit);
    try {
      await this.startTransfer(StateDirection.SAVE, writeEnd);
      const blob = await reader.wait();
      await this.checkTransfer();
      return blob;
    } finally {
      reader.close();
    }
  }

  /** DEVICE_STATE on a migration's destination: `blob` written into a pipe the back-end reads, then CHECK_DEVICE_STATE. */
  async loadState(blob: Buffer): Promise<void> {
    const [readEnd, writeEnd] = native.pipe();
    try {
      await this.startTransfer(StateDirection.LOAD, readEnd);
    } catch (err) {
      native.close(writeEnd);
      throw err;
    }
    const writer = new PipeWriter(writeEnd, blob);
    // A back-end that stopped reading (a blob too large) closed its end: its CHECK says why.
    const written = await writer.wait().then(
      () => null,
      (err: Error) => err,
    );
    writer.close();
    await this.checkTransfer();
    if (written) throw written;
  }

  /** SET_DEVICE_STATE_FD with the back-end's end of the pipe, which is then closed here (only its copy stays). */
  private async startTransfer(direction: number, fd: number): Promise<void> {
    const reply = this.requestU64({ request: Request.SET_DEVICE_STATE_FD, direction, phase: STATE_PHASE_STOPPED, fd });
    native.close(fd);
    const value = await reply;
    const code = Number(value & 0xffn);
    if (code !== 0) throw new VhostUserError('EREMOTE', `the back-end refused SET_DEVICE_STATE_FD: ${errnoName(code)} (see its log)`);
    if ((value & BigInt(STATE_REPLY_NO_FD)) === 0n)
      throw new VhostUserError('ENOTSUP', 'the back-end returned a channel of its own, which this front-end does not take');
  }

  private async checkTransfer(): Promise<void> {
    const result = await this.requestU64({ request: Request.CHECK_DEVICE_STATE });
    if (result !== 0n)
      throw new VhostUserError('EREMOTE', `the back-end's CHECK_DEVICE_STATE failed: ${errnoName(Number(result))} (see its log)`);
  }

  /** GET_FEATURES, then the protocol features, queue count and memory slots, in QEMU's order (vhost_user_backend_init). */
  async probe(): Promise<DeviceOffer> {
    const features = await this.getFeatures();
    let queuePairs = 1;
    if (hasBit(features, VirtioFeature.PROTOCOL_FEATURES)) {
      const pf = await this.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
      const agreed = pf & WANTED_PROTOCOL;
      await this.request({ request: Request.SET_PROTOCOL_FEATURES, value: agreed });
      this.protocolFeatures = agreed;
      if (hasBit(agreed, ProtocolFeature.MQ)) queuePairs = Number(await this.requestU64({ request: Request.GET_QUEUE_NUM }));
      if (hasBit(agreed, ProtocolFeature.CONFIGURE_MEM_SLOTS)) await this.requestU64({ request: Request.GET_MAX_MEM_SLOTS });
    }
    return { features, queuePairs };
  }

  async setOwner(): Promise<void> {
    await this.request({ request: Request.SET_OWNER });
  }

  getFeatures(): Promise<bigint> {
    return this.requestU64({ request: Request.GET_FEATURES });
  }

  /** `needReply`: an ack asked for, as QEMU asks when LOG_ALL changes. */
  async setFeatures(features: bigint, needReply = false): Promise<void> {
    this.acked = features;
    await this.request({ request: Request.SET_FEATURES, value: features }, { needReply });
  }

  /**
   * SET_MEM_TABLE takes at most MEMORY_BASELINE_NREGIONS regions; the rest are added one by one
   * with ADD_MEM_REG (memory slots, as QEMU's hotplugged DIMMs), which needs CONFIGURE_MEM_SLOTS.
   */
  async setMemTable(memory: GuestMemory): Promise<void> {
    const table = memory.table();
    await this.request({ request: Request.SET_MEM_TABLE, regions: table.slice(0, MEMORY_BASELINE_NREGIONS) }, { needReply: true });
    const rest = table.slice(MEMORY_BASELINE_NREGIONS);
    if (rest.length && !hasBit(this.protocolFeatures, ProtocolFeature.CONFIGURE_MEM_SLOTS)) {
      throw new VhostUserError('ENOTSUP', `${table.length} memory regions need CONFIGURE_MEM_SLOTS, which was not negotiated`);
    }
    for (const { fd, ...region } of rest) await this.request({ request: Request.ADD_MEM_REG, region, fd }, { needReply: true });
  }

  async setVringNum(index: number, num: number): Promise<void> {
    await this.request({ request: Request.SET_VRING_NUM, index, num });
  }

  async setVringBase(index: number, num: number): Promise<void> {
    await this.request({ request: Request.SET_VRING_BASE, index, num });
  }

  async getVringBase(index: number): Promise<number> {
    const body = await this.request({ request: Request.GET_VRING_BASE, index, num: 0 });
    if (body?.kind !== 'vringState') throw new VhostUserError('EPROTO', 'GET_VRING_BASE: expected a vring state reply');
    return body.num;
  }

  /** With `log`, as QEMU sends it while migrating: the flag, the used ring's address, and an ack asked for. */
  async setVringAddr(index: number, ring: RingAddresses, memory: GuestMemory, log: boolean): Promise<void> {
    await this.request(
      {
        request: Request.SET_VRING_ADDR,
        index,
        flags: log ? VRING_ADDR_F_LOG : 0,
        descUserAddr: memory.userAddr(ring.descGpa),
        usedUserAddr: memory.userAddr(ring.usedGpa),
        availUserAddr: memory.userAddr(ring.availGpa),
        logGuestAddr: log ? BigInt(ring.usedGpa) : 0n,
      },
      { needReply: log },
    );
  }

  async setVringKick(index: number, fd: number): Promise<void> {
    await this.request({ request: Request.SET_VRING_KICK, index, fd });
  }

  async setVringCall(index: number, fd: number): Promise<void> {
    await this.request({ request: Request.SET_VRING_CALL, index, fd });
  }

  async setVringErr(index: number, fd: number): Promise<void> {
    await this.request({ request: Request.SET_VRING_ERR, index, fd });
  }

  /** SET_VRING_ENABLE, which exists only with PROTOCOL_FEATURES (without them a ring starts on its kick). */
  async enableRing(index: number): Promise<void> {
    if (!hasBit(this.acked, VirtioFeature.PROTOCOL_FEATURES)) return;
    await this.request({ request: Request.SET_VRING_ENABLE, index, num: 1 }, { needReply: true });
  }

  async driverOk(): Promise<void> {
    if (hasBit(this.protocolFeatures, ProtocolFeature.STATUS)) {
      await this.request({ request: Request.SET_STATUS, value: BigInt(STATUS_DRIVER_OK) }, { needReply: true });
    }
  }

  /** Writes raw bytes, for tests that play a misbehaving front-end. */
  sendRaw(bytes: Buffer, fds: number[] = []): void {
    this.channel.send(bytes, fds);
  }

  close(): void {
    this.channel.close();
  }
}
