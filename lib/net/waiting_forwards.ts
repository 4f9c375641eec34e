/**
 * Forwards a loaded device state asked for whose host port was taken (EADDRINUSE): on one host the
 * source back-end still listens there until it closes, so the destination tries again every second
 * until the port is free, the forward is removed or the device closes. What happens goes to the
 * device's events (given up: the back-end logs a warning) or notices (opened: logged as information).
 */
export const FORWARD_RETRY_MS = 1000;

export class WaitingForwards {
  /** Native spec -> the spec as the user writes it, in the order they came. */
  private readonly waiting = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private readonly events: string[] = [];
  private readonly notices: string[] = [];

  /** `open(native)` throws as device.native.forward does. */
  constructor(private readonly open: (nativeSpec: string) => void) {}

  /** The forwards still waiting, as the user writes them. */
  list(): string[] {
    return [...this.waiting.values()];
  }

  /** The same, spelled out as native takes them. */
  keys(): string[] {
    return [...this.waiting.keys()];
  }

  add(nativeSpec: string, spec: string): void {
    this.waiting.set(nativeSpec, spec);
    if (!this.timer) {
      this.timer = setInterval(() => this.retry(), FORWARD_RETRY_MS);
      this.timer.unref();
    }
  }

  /** Drops a waiting forward whose native spec starts with `key` (proto:host:hostport); false if none. */
  remove(key: string): boolean {
    for (const nativeSpec of this.waiting.keys()) {
      if (nativeSpec === key || nativeSpec.startsWith(`${key}:`)) {
        this.waiting.delete(nativeSpec);
        if (this.waiting.size === 0) this.stop();
        return true;
      }
    }
    return false;
  }

  /** What went wrong since the last call: forwards given up. */
  takeEvents(): string[] {
    return this.events.splice(0);
  }

  /** What went well since the last call: forwards opened once their port was free. */
  takeNotices(): string[] {
    return this.notices.splice(0);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private retry(): void {
    for (const [nativeSpec, spec] of [...this.waiting]) {
      try {
        this.open(nativeSpec);
        this.notices.push(`forward ${spec} from the loaded device state is open: its host port was freed`);
      } catch (err) {
        if ((err as { code?: string }).code === 'EADDRINUSE') continue;
        this.events.push(`forward ${spec} from the loaded device state given up: ${(err as Error).message}`);
      }
      this.waiting.delete(nativeSpec);
    }
    if (this.waiting.size === 0) this.stop();
  }
}
