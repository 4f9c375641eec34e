/**
 * One dispatch step: a request read off the socket is decoded, looked up in the handler table,
 * checked against the negotiated protocol features, run, and answered. Every fd it carried is
 * either handed to the device by its handler or closed here, whatever happens.
 *
 * Error policy (vhost-user spec, REPLY_ACK): a request that fails gets a non-zero REPLY_ACK when the
 * front-end asked for one and REPLY_ACK was negotiated; otherwise the connection is closed with the
 * reason logged, since the front-end has no other way to learn that its request had no effect.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { decodeRequest, encodeReply, replyKind, type Message, type MessageHeader, type ReplyBody } from './codec';
import { HeaderFlag, ProtocolFeature, requestName } from './constants';
import { HANDLERS } from './handlers';
import type { Session } from './session';

/** The connection a session's replies go out on. */
export interface SessionIo {
  send(bytes: Buffer, fds?: number[]): void;
  /** Ends the connection; the reason is logged by the owner. */
  close(reason: Error): void;
}

type AnyHandler = { needs?: number; run(s: Session, m: Message): ReplyBody | undefined };

/** Every fd a decoded message carries. */
export function messageFds(msg: Message): number[] {
  const out: number[] = [];
  if ('fd' in msg && typeof msg.fd === 'number') out.push(msg.fd);
  if ('regions' in msg) for (const r of msg.regions) out.push(r.fd);
  return out;
}

/** Handles one request of session `s`. Never throws. */
export function dispatch(s: Session, io: SessionIo, header: MessageHeader, payload: Buffer, fds: number[]): void {
  const name = requestName(header.request);
  let msg: Message;
  try {
    msg = decodeRequest({ request: header.request, flags: header.flags, payload, fds });
  } catch (err) {
    closeAll(fds);
    fail(s, io, header, name, err, wantsAck(s, header));
    return;
  }
  s.holdFds(messageFds(msg));
  // Decided before the handler runs: a handler may reset what was negotiated (RESET_OWNER).
  const ack = wantsAck(s, header);
  try {
    const handler = HANDLERS[msg.request] as AnyHandler | undefined;
    if (!handler) {
      throw new VhostUserError('ENOTSUP_REQUEST', `${name} is not supported by this device (it was not offered)`, {
        op: name,
      });
    }
    if (handler.needs !== undefined && !s.hasProtocolFeature(handler.needs)) {
      const feature = Object.entries(ProtocolFeature).find(([, n]) => n === handler.needs)?.[0];
      throw new VhostUserError('EPROTO', `${name} requires protocol feature ${feature}, which was not negotiated (SET_PROTOCOL_FEATURES)`, {
        op: name,
      });
    }
    const body = handler.run(s, msg);
    closeAll(s.releaseFds());
    if (body) io.send(encodeReply(header.request, body));
    else if (ack) io.send(encodeReply(header.request, { kind: 'u64', value: 0n }));
  } catch (err) {
    closeAll(s.releaseFds());
    fail(s, io, header, name, err, ack);
  }
}

function wantsAck(s: Session, header: MessageHeader): boolean {
  return (
    (header.flags & HeaderFlag.NEED_REPLY) !== 0 && s.hasProtocolFeature(ProtocolFeature.REPLY_ACK) && replyKind(header.request) === null
  );
}

function fail(s: Session, io: SessionIo, header: MessageHeader, name: string, err: unknown, ack: boolean): void {
  const e = err instanceof Error ? err : new Error(String(err));
  if (ack) {
    s.log('warn', `${name} failed: ${e.message} (nacked)`);
    try {
      io.send(encodeReply(header.request, { kind: 'u64', value: 1n }));
    } catch (sendErr) {
      io.close(sendErr instanceof Error ? sendErr : new Error(String(sendErr)));
    }
    return;
  }
  io.close(new VhostUserError(e instanceof VhostUserError ? e.code : 'EPROTO', `${name} failed: ${e.message}`));
}

function closeAll(fds: number[]): void {
  for (const fd of fds) if (fd >= 0) native.close(fd);
}
