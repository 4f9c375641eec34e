/**
 * The handler table: what this device does with each front-end request. Read it and you know which
 * part of the protocol the device speaks. Requests absent from the table are refused (see
 * dispatch.ts). The codec has already checked sizes and fd counts; handlers check meaning
 * (ranges, order, negotiated features) and call the device last, because the device call
 * takes ownership of the fds (see Session.handOverFds). Handlers speak to the device only through
 * VhostUserDevice: the table knows no device kind.
 */
import { VhostUserError } from '../errors';
import type { Message, ReplyBody } from './codec';
import { MAX_MEM_SLOTS, ProtocolFeature, Request, VRING_ADDR_F_LOG, VirtioFeature, hasBit, type RequestCode } from './constants';
import { DeviceStateTransfer, STATE_REPLY_NO_FD, stateErrorCode } from './device_state_transfer';
import { macText } from './payloads';
import type { Session } from './session';

/** The message variant(s) whose request union includes C. */
type VariantFor<M, C> = M extends { request: infer R } ? (C extends R ? M : never) : never;
type MessageFor<C extends RequestCode> = VariantFor<Message, C>;

interface Handler<C extends RequestCode> {
  /** Protocol feature the front-end must have negotiated before sending this request. */
  needs?: number;
  run(s: Session, msg: MessageFor<C>): ReplyBody | undefined;
}

type HandlerTable = { [C in RequestCode]?: Handler<C> };

const u64 = (value: bigint | number): ReplyBody => ({ kind: 'u64', value: BigInt(value) });

function unoffered(what: string, mask: bigint, offered: bigint): void {
  const extra = mask & ~offered;
  if (extra !== 0n) {
    throw new VhostUserError('EINVAL', `${what} 0x${mask.toString(16)} has bits the device did not offer: 0x${extra.toString(16)}`);
  }
}

export const HANDLERS: HandlerTable = {
  [Request.GET_FEATURES]: { run: (s) => u64(s.device.features) },

  [Request.SET_FEATURES]: {
    run(s, m) {
      unoffered('SET_FEATURES', m.value, s.device.features);
      s.ackedFeatures = m.value;
      s.device.setFeatures(m.value);
      s.log('info', `features acked: 0x${m.value.toString(16)}${describe(s, m.value)}`);
      return undefined;
    },
  },

  [Request.SET_OWNER]: {
    run(s) {
      s.owner = true;
      return undefined;
    },
  },

  // Deprecated in the spec, still sent by old front-ends on reset: the device forgets everything.
  [Request.RESET_OWNER]: {
    run(s) {
      s.reset();
      return undefined;
    },
  },

  [Request.GET_PROTOCOL_FEATURES]: { run: (s) => u64(s.device.protocolFeatures) },

  [Request.SET_PROTOCOL_FEATURES]: {
    run(s, m) {
      unoffered('SET_PROTOCOL_FEATURES', m.value, s.device.protocolFeatures);
      s.ackedProtocolFeatures = m.value;
      return undefined;
    },
  },

  // The device says what it counts (virtio-net: queue pairs, which QEMU compares with -netdev queues=N).
  [Request.GET_QUEUE_NUM]: { run: (s) => u64(s.device.queueNum) },

  [Request.GET_MAX_MEM_SLOTS]: { needs: ProtocolFeature.CONFIGURE_MEM_SLOTS, run: () => u64(MAX_MEM_SLOTS) },

  // Migration: the front-end's dirty-page log. Always answered (the spec's list of requests that
  // reply names it), once the new log is the one written.
  [Request.SET_LOG_BASE]: {
    needs: ProtocolFeature.LOG_SHMFD,
    run(s, m) {
      if (!s.device.setLogBase)
        throw new VhostUserError('ENOTSUP_REQUEST', 'SET_LOG_BASE is not supported by this device (it was not offered)');
      s.handOverFds();
      s.device.setLogBase(m.fd, m.mmapSize, m.mmapOffset);
      return u64(0);
    },
  },

  // An eventfd to signal log writes with: QEMU's vhost-user never sends it and reads the log when it
  // syncs, so it is accepted and closed (by dispatch), as DPDK does.
  [Request.SET_LOG_FD]: {
    needs: ProtocolFeature.LOG_SHMFD,
    run: () => undefined,
  },

  [Request.SET_MEM_TABLE]: {
    run(s, m) {
      s.handOverFds();
      s.device.setMemTable(m.regions);
      return undefined;
    },
  },

  [Request.ADD_MEM_REG]: {
    needs: ProtocolFeature.CONFIGURE_MEM_SLOTS,
    run(s, m) {
      s.handOverFds();
      s.device.addMemRegion({ ...m.region, fd: m.fd });
      return undefined;
    },
  },

  // The fd some front-ends send along is not needed: dispatch closes it.
  [Request.REM_MEM_REG]: {
    needs: ProtocolFeature.CONFIGURE_MEM_SLOTS,
    run(s, m) {
      s.device.removeMemRegion(m.region);
      return undefined;
    },
  },

  [Request.SET_VRING_NUM]: {
    run(s, m) {
      s.device.setVringNum(s.queue(m.index, 'SET_VRING_NUM'), m.num);
      return undefined;
    },
  },

  [Request.SET_VRING_BASE]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_BASE');
      // A packed ring's base holds both positions and wrap counters in 32 bits; a split ring's is 16.
      const packed = s.ackedFeatures !== null && hasBit(s.ackedFeatures, VirtioFeature.RING_PACKED);
      if (!packed && m.num > 0xffff) throw new VhostUserError('EINVAL', `SET_VRING_BASE: base ${m.num} exceeds 16 bits (split ring)`);
      s.device.setVringBase(q, m.num);
      return undefined;
    },
  },

  [Request.SET_VRING_ADDR]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_ADDR');
      const log = (m.flags & VRING_ADDR_F_LOG) !== 0;
      if (log && !s.device.setLogBase) {
        throw new VhostUserError('ENOTSUP', 'SET_VRING_ADDR: dirty logging (VRING_ADDR_F_LOG) is not supported by this back-end');
      }
      s.device.setVringAddr(q, {
        desc: m.descUserAddr,
        avail: m.availUserAddr,
        used: m.usedUserAddr,
        log: log ? m.logGuestAddr : undefined,
      });
      return undefined;
    },
  },

  [Request.GET_VRING_BASE]: {
    run(s, m) {
      const q = s.queue(m.index, 'GET_VRING_BASE');
      return { kind: 'vringState', index: m.index, num: s.device.getVringBase(q) };
    },
  },

  [Request.SET_VRING_KICK]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_KICK');
      if (m.fd === null) {
        throw new VhostUserError('ENOTSUP', 'SET_VRING_KICK without an eventfd (polling mode) is not supported');
      }
      s.handOverFds();
      s.device.setVringKick(q, m.fd);
      if (s.ringsStartEnabled) s.device.setVringEnable(q, true);
      return undefined;
    },
  },

  // No fd (NOFD): the front-end polls the used ring and wants no calls.
  [Request.SET_VRING_CALL]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_CALL');
      s.handOverFds();
      s.device.setVringCall(q, m.fd ?? -1);
      return undefined;
    },
  },

  [Request.SET_VRING_ERR]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_ERR');
      s.handOverFds();
      s.device.setVringErr(q, m.fd ?? -1);
      return undefined;
    },
  },

  [Request.SET_VRING_ENABLE]: {
    run(s, m) {
      const q = s.queue(m.index, 'SET_VRING_ENABLE');
      if (m.num > 1) throw new VhostUserError('EINVAL', `SET_VRING_ENABLE: state ${m.num} is neither 0 nor 1`);
      s.device.setVringEnable(q, m.num === 1);
      return undefined;
    },
  },

  // The guest migrated here: a port on a network broadcasts a RARP for this MAC.
  [Request.SEND_RARP]: {
    needs: ProtocolFeature.RARP,
    run(s, m) {
      if (s.device.announce) s.log('info', s.device.announce(m.mac));
      else s.log('info', `guest announced MAC ${macText(m.mac)}`);
      return undefined;
    },
  },

  // Migration of the device's own state (DEVICE_STATE): the front-end's pipe end, then the check.
  // Both always reply with a u64: a refusal is its error code (an errno), logged with the reason.
  [Request.SET_DEVICE_STATE_FD]: {
    needs: ProtocolFeature.DEVICE_STATE,
    run(s, m) {
      s.handOverFds();
      s.stateTransfer?.close('a new transfer began');
      s.stateTransfer = null;
      try {
        s.stateTransfer = DeviceStateTransfer.start(s.device, m.direction, m.phase, m.fd);
        return u64(STATE_REPLY_NO_FD);
      } catch (err) {
        s.log('warn', `SET_DEVICE_STATE_FD refused: ${(err as Error).message}`);
        return u64(STATE_REPLY_NO_FD | stateErrorCode(err));
      }
    },
  },

  [Request.CHECK_DEVICE_STATE]: {
    needs: ProtocolFeature.DEVICE_STATE,
    run(s) {
      const transfer = s.stateTransfer;
      s.stateTransfer = null;
      try {
        if (!transfer) throw new VhostUserError('EPROTO', 'no transfer to check: SET_DEVICE_STATE_FD comes first');
        s.log('info', transfer.check());
        return u64(0);
      } catch (err) {
        s.log('warn', `CHECK_DEVICE_STATE: the transfer failed: ${(err as Error).message}`);
        return u64(stateErrorCode(err));
      }
    },
  },

  [Request.NET_SET_MTU]: {
    needs: ProtocolFeature.MTU,
    run(s, m) {
      if (!s.device.setMtu) throw new VhostUserError('ENOTSUP_REQUEST', 'NET_SET_MTU is not supported by this device (it was not offered)');
      s.device.setMtu(m.value);
      return undefined;
    },
  },

  [Request.SET_STATUS]: {
    needs: ProtocolFeature.STATUS,
    run(s, m) {
      if (m.value > 0xffn) throw new VhostUserError('EINVAL', `SET_STATUS: status 0x${m.value.toString(16)} exceeds 8 bits`);
      s.status = Number(m.value);
      return undefined;
    },
  },

  [Request.GET_STATUS]: { needs: ProtocolFeature.STATUS, run: (s) => u64(s.status) },
};

function describe(s: Session, features: bigint): string {
  const names = s.device.describeFeatures(features);
  return names.length ? ` (${names.join(' ')})` : '';
}
